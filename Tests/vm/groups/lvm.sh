#!/bin/bash
# LVMSR with real device-mapper activation, on the group's virtio scratch disk: vdi_attach
# returns a block device that exists; data written through it reads back after detach and attach;
# sr_detach while the LV is held open is EBUSY; sr_delete leaves no VG and no dm device.
# Runs the built LVMSR; while LVMSR answers ENOSYS the group says so and fails.
. "$VM_LIB"

sr=6f1d3c52-8a0e-4c1b-9a57-2e4b7d9c0a11
vdi=0b7e9d24-3c5f-4e8a-b1d6-7a2c9e4f5d30
dconf="<dconf><device>$VM_DISK</device></dconf>"
vg="VG_XenStorage-$sr"
lv="LV-$vdi"
expected_path="/dev/$vg/$lv"
size=$((64 * 1024 * 1024))

# Whatever happens, leave no VG behind for a later group.
vm_on_exit vgremove -f "$vg"
vm_on_exit vgchange -an "$vg"

vm_step "load device-mapper"
vm_check "modprobe" modprobe -a dm_mod

vm_step "sr_create (size 0: the whole disk) and sr_attach"
vm_driver_ok LVMSR "$dconf" sr_create "$sr" 0
vm_check "sr_create made the VG $vg" vgs --noheadings -o vg_name,pv_name,vg_size "$vg"
vm_driver_ok LVMSR "$dconf" sr_attach "$sr"

vm_step "vdi_create a 64 MiB VDI and vdi_attach it"
vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$vdi" "$size"
vm_driver_ok LVMSR "$dconf" vdi_attach "$sr" "$vdi"
path=$(vm_xml_values path <<< "$DRIVER_OUT")
[ "$path" = "$expected_path" ] || vm_fail "vdi_attach returned path '$path', expected $expected_path"
udevadm settle --timeout=30
[ -b "$path" ] || vm_fail "vdi_attach returned $path, which is not a block device"
dm_name=$(dmsetup info -c --noheadings -o name "$(readlink -f "$path")") || vm_fail "$path is not a device-mapper device"
echo "  $path -> $(readlink -f "$path") (dm $dm_name: $(dmsetup table "$dm_name"))"
actual_size=$(blockdev --getsize64 "$path")
[ "$actual_size" -ge "$size" ] || vm_fail "the attached LV has $actual_size bytes, less than the $size asked for"

vm_step "write data through the attached device"
head -c 4194304 /dev/urandom > /tmp/pattern
vm_check "write" dd if=/tmp/pattern of="$path" bs=1M seek=3 oflag=direct status=none

vm_step "vdi_detach, vdi_attach: the data reads back"
vm_driver_ok LVMSR "$dconf" vdi_detach "$sr" "$vdi"
vm_driver_ok LVMSR "$dconf" vdi_attach "$sr" "$vdi"
path=$(vm_xml_values path <<< "$DRIVER_OUT")
udevadm settle --timeout=30
[ -b "$path" ] || vm_fail "after re-attach, $path is not a block device"
read_back=$(dd if="$path" bs=1M skip=3 count=4 iflag=direct status=none | sha256sum)
[ "$read_back" = "$(sha256sum < /tmp/pattern)" ] || vm_fail "the data written before detach does not read back after attach"

vm_step "sr_detach while the LV is held open is EBUSY (16)"
exec {holder}<"$path"
vm_driver_status 16 LVMSR "$dconf" sr_detach "$sr"
[ -b "$path" ] || vm_fail "the refused sr_detach still removed $path"
exec {holder}<&-

vm_step "vdi_detach, vdi_delete, sr_detach, sr_delete"
vm_driver_ok LVMSR "$dconf" vdi_detach "$sr" "$vdi"
vm_driver_ok LVMSR "$dconf" vdi_delete "$sr" "$vdi"
vm_driver_ok LVMSR "$dconf" sr_detach "$sr"
vm_driver_ok LVMSR "$dconf" sr_delete "$sr"

vm_step "no VG and no device-mapper device is left"
udevadm settle --timeout=30
if vgs "$vg" >/dev/null 2>&1; then vm_fail "the VG $vg still exists after sr_delete"; fi
leftover=$(dmsetup ls | grep -F "VG_XenStorage--${sr//-/--}" || true)
[ -z "$leftover" ] || vm_fail "device-mapper devices are left after sr_delete: $leftover"
[ ! -e "/dev/$vg" ] || vm_fail "/dev/$vg is still there after sr_delete"

echo "PASS: $VM_GROUP"
