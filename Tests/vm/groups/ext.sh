#!/bin/bash
# EXTSR on the group's virtio scratch disk (a real block device, not a loop device), through the
# whole lifecycle: sr_create, sr_attach, vdi_create, vdi_attach, vdi_detach, vdi_resize, sr_scan,
# vdi_delete, sr_detach, sr_delete; afterwards `blkid -p` finds nothing on the disk.
# Runs the built EXTSR; while EXTSR answers ENOSYS the group says so and fails.
. "$VM_LIB"

sr=3a9e5c17-2b4d-4f60-8e1a-c5d7b9f20e44
vdi=d41c8e6a-7f25-4b93-a0e8-1b6f3c9d2a57
dconf="<dconf><device>$VM_DISK</device></dconf>"
mount_point="/run/sr-mount/$sr"
size=$((64 * 1024 * 1024))
new_size=$((128 * 1024 * 1024))

vm_on_exit umount -l "$mount_point"

# The size sr_scan reports for our VDI.
scanned_size() { tr -d '\n' <<< "$DRIVER_OUT" | sed 's|</vdi>|&\n|g' | grep "<uuid>$vdi</uuid>" | vm_xml_values size; }

vm_step "the scratch disk starts empty"
if found=$(blkid -p "$VM_DISK" 2>&1); then vm_fail "the scratch disk is not empty: $found"; fi

vm_step "sr_create (size 0: the whole disk) and sr_attach"
vm_driver_ok EXTSR "$dconf" sr_create "$sr" 0
found=$(blkid -p -o value -s TYPE "$VM_DISK" || true)
[ "$found" = ext4 ] || vm_fail "sr_create left '$found' on $VM_DISK, expected ext4"
vm_driver_ok EXTSR "$dconf" sr_attach "$sr"
source_device=$(findmnt -n -o SOURCE --target "$mount_point" 2>/dev/null || true)
fstype=$(findmnt -n -o FSTYPE --mountpoint "$mount_point" 2>/dev/null || true)
[ "$fstype" = ext4 ] && [ "$(readlink -f "$source_device")" = "$VM_DISK" ] \
    || vm_fail "after sr_attach, $mount_point is not $VM_DISK mounted as ext4 (found '$source_device' '$fstype')"

vm_step "vdi_create 64 MiB; sr_scan lists it"
vm_driver_ok EXTSR "$dconf" vdi_create "$sr" "$vdi" "$size"
vm_driver_ok EXTSR "$dconf" sr_scan "$sr"
[ "$(scanned_size)" = "$size" ] || vm_fail "sr_scan does not list $vdi with size $size: $DRIVER_OUT"

vm_step "vdi_attach returns a path that exists; vdi_detach"
vm_driver_ok EXTSR "$dconf" vdi_attach "$sr" "$vdi"
path=$(vm_xml_values path <<< "$DRIVER_OUT")
[ -n "$path" ] && [ -e "$path" ] || vm_fail "vdi_attach returned path '$path', which does not exist"
case "$path" in "$mount_point"/*) ;; *) vm_fail "vdi_attach returned $path, outside the SR at $mount_point" ;; esac
vm_driver_ok EXTSR "$dconf" vdi_detach "$sr" "$vdi"

vm_step "vdi_resize to 128 MiB; sr_scan shows the new size"
vm_driver_ok EXTSR "$dconf" vdi_resize "$sr" "$vdi" "$new_size"
vm_driver_ok EXTSR "$dconf" sr_scan "$sr"
[ "$(scanned_size)" = "$new_size" ] || vm_fail "sr_scan does not show $vdi at $new_size after vdi_resize: $DRIVER_OUT"

vm_step "vdi_delete; sr_scan no longer lists it"
vm_driver_ok EXTSR "$dconf" vdi_delete "$sr" "$vdi"
vm_driver_ok EXTSR "$dconf" sr_scan "$sr"
if vm_xml_values uuid <<< "$DRIVER_OUT" | grep -qx "$vdi"; then vm_fail "sr_scan still lists $vdi after vdi_delete"; fi

vm_step "sr_detach unmounts; sr_delete leaves nothing blkid can find"
vm_driver_ok EXTSR "$dconf" sr_detach "$sr"
if findmnt --mountpoint "$mount_point" >/dev/null 2>&1; then vm_fail "$mount_point is still mounted after sr_detach"; fi
vm_driver_ok EXTSR "$dconf" sr_delete "$sr"
if found=$(blkid -p "$VM_DISK" 2>&1); then vm_fail "blkid -p still finds something on $VM_DISK after sr_delete: $found"; fi

echo "PASS: $VM_GROUP"
