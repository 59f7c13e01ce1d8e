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

vm_step "vdi_export/vdi_import: FileSR -> LVMSR -> FileSR, raw and vhd, bytes identical (Docs/export.md)"
# Extents that held another volume's data first, so that the import must zero what the stream
# leaves empty; then a FileSR VDI with data in three places, through an LV and back.
vm_driver_status 16 LVMSR "$dconf" vdi_export "$sr" "$vdi" raw
stale=5c1d6b1e-8f2a-4d3b-9c4e-0a1b2c3d4e5f
vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$stale" $((32 * 1024 * 1024))
vm_driver_ok LVMSR "$dconf" vdi_attach "$sr" "$stale"
udevadm settle --timeout=30
vm_check "fill the stale LV" dd if=/dev/urandom of="/dev/$vg/LV-$stale" bs=1M count=32 oflag=direct status=none
vm_driver_ok LVMSR "$dconf" vdi_detach "$sr" "$stale"
vm_driver_ok LVMSR "$dconf" vdi_delete "$sr" "$stale"
file_root=/tmp/export-filesr
mkdir -p "$file_root"
file_dconf="<dconf><location>$file_root</location></dconf>"
file_sr=7a3e5c91-2b4d-4f6a-8c1e-9d0b3a5f7e21
source_vdi=1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6
on_lv=2f3e4d5c-6b7a-4899-8a1b-d2e3f4a5b6c7
back_raw=3a4b5c6d-7e8f-4a9b-8c0d-e1f2a3b4c5d6
back_vhd=4b5c6d7e-8f9a-4b0c-9d1e-f2a3b4c5d6e7
vm_driver_ok FileSR "$file_dconf" sr_create "$file_sr" 0
vm_driver_ok FileSR "$file_dconf" sr_attach "$file_sr"
vm_driver_ok FileSR "$file_dconf" vdi_create "$file_sr" "$source_vdi" $((32 * 1024 * 1024))
head -c 3145728 /dev/urandom > /tmp/export-a
head -c 4096 /dev/urandom > /tmp/export-b
vm_check "write data" "$SM_BIN_DIR/sm-vhd" write "$file_root/$file_sr/$source_vdi.vhd" 5000000 < /tmp/export-a
vm_check "write data" "$SM_BIN_DIR/sm-vhd" write "$file_root/$file_sr/$source_vdi.vhd" 30000000 < /tmp/export-b
"$SM_BIN_DIR/FileSR" "$file_dconf" vdi_export "$file_sr" "$source_vdi" raw > /tmp/export-source.raw || vm_fail "FileSR vdi_export raw failed"
"$SM_BIN_DIR/FileSR" "$file_dconf" vdi_export "$file_sr" "$source_vdi" raw \
    | "$SM_BIN_DIR/LVMSR" "$dconf" vdi_import "$sr" "$on_lv" raw $((32 * 1024 * 1024)) || vm_fail "FileSR -> LVMSR (raw) failed"
lvs --noheadings -o lv_name "$vg" | grep -q importing && vm_fail "an .importing volume is left after vdi_import"
vm_driver_ok LVMSR "$dconf" sr_scan "$sr"
grep -q "$on_lv" <<< "$DRIVER_OUT" || vm_fail "sr_scan does not list the imported VDI $on_lv"
"$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$on_lv" raw | cmp - /tmp/export-source.raw \
    || vm_fail "the LV's raw export differs from the FileSR source (stale extents not zeroed?)"
"$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$on_lv" vhd \
    | "$SM_BIN_DIR/FileSR" "$file_dconf" vdi_import "$file_sr" "$back_vhd" vhd 0 || vm_fail "LVMSR -> FileSR (vhd) failed"
"$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$on_lv" raw \
    | "$SM_BIN_DIR/FileSR" "$file_dconf" vdi_import "$file_sr" "$back_raw" raw $((32 * 1024 * 1024)) || vm_fail "LVMSR -> FileSR (raw) failed"
for vdi_back in "$back_vhd" "$back_raw"; do
    "$SM_BIN_DIR/FileSR" "$file_dconf" vdi_export "$file_sr" "$vdi_back" raw | cmp - /tmp/export-source.raw \
        || vm_fail "FileSR VDI $vdi_back after the trip through the LV differs from the source"
done
vm_check "the VHD that came back from the LV is sound" "$SM_BIN_DIR/sm-vhd" check "$file_root/$file_sr/$back_vhd.vhd"
# Three 2 MiB blocks hold data; the LV's zero blocks must not have been written into the VHD.
vhd_bytes=$(stat -c %s "$file_root/$file_sr/$back_vhd.vhd")
echo "  the VHD from the LV is $vhd_bytes bytes for a 32 MiB disk with 3 blocks of data"
[ "$vhd_bytes" -lt $((8 * 1024 * 1024)) ] || vm_fail "the VHD imported from the LV holds its zero blocks ($vhd_bytes bytes)"
vm_driver_ok LVMSR "$dconf" vdi_delete "$sr" "$on_lv"

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
