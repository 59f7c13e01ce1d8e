#!/bin/bash
# vdi_export and vdi_import of VHD VDIs on an LVM SR (dconf vdi_type=vhd) with real
# device-mapper activation, on the group's virtio scratch disk (Docs/export.md): a FileSR VDI
# (data in a two-file chain) goes FileSR -> LVMSR (raw, and vhd) -> FileSR (raw, and vhd), every
# copy compared byte for byte with the source; the imported VDIs are thin VHDs (deflated, only
# their blocks of data allocated, inactive, no temporary volume or intent record left); an
# export reads a two-volume chain on LVM (after vdi_snapshot) and deactivates what it activated;
# an attached VDI is EBUSY; ENOSPC before anything is created. Not in groups.enabled: run by hand
# (`Tests/vm/run.sh lvm-export`).
. "$VM_LIB"

sr=5e7a1c3d-9b2f-4d6e-8a1c-3f5b7d9e1a24
dconf="<dconf><device>$VM_DISK</device><vdi_type>vhd</vdi_type></dconf>"
vg="VG_XenStorage-$sr"
mib=$((1024 * 1024))
size=$((32 * mib))
work=/tmp/lvm-export
mkdir -p "$work"

vm_on_exit vgremove -f "$vg"
vm_on_exit vgchange -an "$vg"

lv_bytes() { lvs --noheadings --units b --nosuffix -o lv_size "$vg/LV-$1" | tr -d ' '; }
active() { lvs --noheadings -o lv_active "$vg/LV-$1" | tr -d ' '; }
no_leftovers() {
    local names tags
    names=$(lvs --noheadings -o lv_name "$vg" | tr -d ' ' | grep -E '\.(new|importing)$' || true)
    [ -z "$names" ] || vm_fail "$1: temporary volumes left: $names"
    tags=$(vgs --noheadings -o vg_tags "$vg" | tr ',' '\n' | grep -F sm_intent || true)
    [ -z "$tags" ] || vm_fail "$1: intent records left: $tags"
}
# Every VDI volume of the group inactive (what vdi_export and vdi_import leave).
all_inactive() {
    local on
    on=$(lvs --noheadings -o lv_name,lv_active "$vg" | awk '$2 == "active" { print $1 }')
    [ -z "$on" ] || vm_fail "$1: volumes left active: $on"
}

vm_step "load device-mapper; a VHD LVM SR whose extents held random data; a FileSR VDI in a chain"
vm_check "modprobe" modprobe -a dm_mod
vm_driver_ok LVMSR "$dconf" sr_create "$sr" 0
vm_driver_ok LVMSR "$dconf" sr_attach "$sr"
extent=$(vgs --noheadings --units b --nosuffix -o vg_extent_size "$vg" | tr -d ' ')
# Stale bytes (old footers, BAT-like garbage) where the imports will write: the VHD engine must
# read only what it wrote.
vm_check "a stale volume" lvcreate -qq --yes -L 96m -n stale "$vg"
udevadm settle --timeout=30
vm_check "fill it" dd if=/dev/urandom of="/dev/$vg/stale" bs=1M count=96 oflag=direct status=none
vm_check "remove it" lvremove -qq -f "$vg/stale"
file_root=$work/filesr
mkdir -p "$file_root"
file_dconf="<dconf><location>$file_root</location></dconf>"
file_sr=8c2e4a6b-1d3f-4a5c-9e7b-0f2d4b6a8c13
source_vdi=9d3f5b7c-2e4a-4b6d-8f8c-1a3e5c7b9d24
file_snap=ad4a6c8d-3f5b-4c7e-9a9d-2b4f6d8c0e35
vm_driver_ok FileSR "$file_dconf" sr_create "$file_sr" 0
vm_driver_ok FileSR "$file_dconf" sr_attach "$file_sr"
vm_driver_ok FileSR "$file_dconf" vdi_create "$file_sr" "$source_vdi" "$size"
head -c $((3 * mib)) /dev/urandom > "$work/a"
head -c 4096 /dev/urandom > "$work/b"
head -c 5000 /dev/urandom > "$work/c"
vm_check "write data" "$SM_BIN_DIR/sm-vhd" write "$file_root/$file_sr/$source_vdi.vhd" 5000000 < "$work/a"
vm_driver_ok FileSR "$file_dconf" vdi_snapshot "$file_sr" "$source_vdi" "$file_snap"
vm_check "write data" "$SM_BIN_DIR/sm-vhd" write "$file_root/$file_sr/$source_vdi.vhd" 30000000 < "$work/b"
vm_check "write data" "$SM_BIN_DIR/sm-vhd" write "$file_root/$file_sr/$source_vdi.vhd" 6000100 < "$work/c"
"$SM_BIN_DIR/FileSR" "$file_dconf" vdi_export "$file_sr" "$source_vdi" raw > "$work/source.raw" || vm_fail "FileSR vdi_export raw failed"
[ "$(stat -c %s "$work/source.raw")" = "$size" ] || vm_fail "the source's raw export is $(stat -c %s "$work/source.raw") bytes"

from_raw=b1e5a7c9-4a6c-4d8f-8b0e-3c5a7e9d1f46
from_vhd=c2f6b8da-5b7d-4e9a-9c1f-4d6b8f0e2a57
vm_step "FileSR -> LVMSR: raw (piped) and vhd (piped) into new VHD VDIs"
"$SM_BIN_DIR/FileSR" "$file_dconf" vdi_export "$file_sr" "$source_vdi" raw \
    | "$SM_BIN_DIR/LVMSR" "$dconf" vdi_import "$sr" "$from_raw" raw "$size" || vm_fail "FileSR -> LVMSR (raw) failed"
"$SM_BIN_DIR/FileSR" "$file_dconf" vdi_export "$file_sr" "$source_vdi" vhd \
    | "$SM_BIN_DIR/LVMSR" "$dconf" vdi_import "$sr" "$from_vhd" vhd 0 || vm_fail "FileSR -> LVMSR (vhd) failed"
no_leftovers "after vdi_import"
all_inactive "after vdi_import"
for vdi in "$from_raw" "$from_vhd"; do
    tags=$(lvs --noheadings -o lv_tags "$vg/LV-$vdi" | tr -d ' ')
    [ "$tags" = "sm_type=vhd,sm_vsize=$size" ] || vm_fail "the imported VDI $vdi has tags '$tags'"
    # Three 2 MiB blocks hold data: deflated, the volume holds them and the metadata, no more.
    bytes=$(lv_bytes "$vdi")
    echo "  LV-$vdi: $bytes bytes for a $size-byte disk with 3 blocks of data"
    [ "$bytes" -le $((3 * 2 * mib + 64 * 1024 + extent)) ] || vm_fail "the imported VDI $vdi is not deflated: $bytes bytes"
done
vm_driver_ok LVMSR "$dconf" sr_scan "$sr"
for vdi in "$from_raw" "$from_vhd"; do grep -q "$vdi" <<< "$DRIVER_OUT" || vm_fail "sr_scan does not list $vdi"; done

vm_step "the imported VHDs on their LVs: the engine and qemu-img read the source's bytes"
for vdi in "$from_raw" "$from_vhd"; do
    vm_driver_ok LVMSR "$dconf" vdi_attach "$sr" "$vdi"
    udevadm settle --timeout=30
    "$SM_BIN_DIR/sm-vhd" read "/dev/$vg/LV-$vdi" 0 "$size" | cmp - "$work/source.raw" || vm_fail "the VHD on LV-$vdi reads differently"
    vm_driver_ok LVMSR "$dconf" vdi_detach "$sr" "$vdi"
done

vm_step "LVMSR -> stdout and -> FileSR (raw and vhd): bytes identical, volumes inactive again"
back=(d3a7c9eb-6c8e-4fab-8d2a-5e7c9a1f3b68 e4b8daf1-7d9f-4abc-9e3b-6f8dab2a4c79 f5c9ebf2-8eaf-4bcd-8f4c-7a9ebc3b5d8a 06dafc03-9fb0-4cde-9a5d-8bafcd4c6e9b)
n=0
for vdi in "$from_raw" "$from_vhd"; do
    "$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$vdi" raw | cmp - "$work/source.raw" || vm_fail "LV-$vdi's raw export (pipe) differs"
    rm -f "$work/out.raw"
    "$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$vdi" raw > "$work/out.raw" || vm_fail "LV-$vdi's raw export into a file failed"
    cmp "$work/out.raw" "$work/source.raw" || vm_fail "LV-$vdi's raw export (file) differs"
    "$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$vdi" vhd > "$work/out.vhd" || vm_fail "LV-$vdi's vhd export failed"
    qemu-img compare -q -f vpc -F raw "$work/out.vhd" "$work/source.raw" || vm_fail "LV-$vdi's vhd export reads differently in qemu-img"
    vm_check "sm-vhd check of LV-$vdi's vhd export" "$SM_BIN_DIR/sm-vhd" check "$work/out.vhd"
    all_inactive "after vdi_export of $vdi"
    "$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$vdi" raw \
        | "$SM_BIN_DIR/FileSR" "$file_dconf" vdi_import "$file_sr" "${back[n]}" raw "$size" || vm_fail "LVMSR -> FileSR (raw) failed"
    "$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$vdi" vhd \
        | "$SM_BIN_DIR/FileSR" "$file_dconf" vdi_import "$file_sr" "${back[n + 1]}" vhd 0 || vm_fail "LVMSR -> FileSR (vhd) failed"
    n=$((n + 2))
done
for vdi in "${back[@]}"; do
    "$SM_BIN_DIR/FileSR" "$file_dconf" vdi_export "$file_sr" "$vdi" raw | cmp - "$work/source.raw" \
        || vm_fail "FileSR VDI $vdi after the trip through LVM differs from the source"
    vm_check "sm-vhd check $vdi" "$SM_BIN_DIR/sm-vhd" check "$file_root/$file_sr/$vdi.vhd"
done

vm_step "a chain on LVM: after vdi_snapshot the leaf exports through both volumes"
lvm_snap=17ebfd14-a0c1-4def-8b6e-9cb0de5d7fac
vm_driver_ok LVMSR "$dconf" vdi_snapshot "$sr" "$from_vhd" "$lvm_snap"
vm_driver_ok LVMSR "$dconf" vdi_attach "$sr" "$from_vhd"
udevadm settle --timeout=30
head -c $((2 * mib)) /dev/urandom > "$work/d"
"$SM_BIN_DIR/sm-vhd" write "/dev/$vg/LV-$from_vhd" $((20 * mib + 512)) < "$work/d" || vm_fail "sm-vhd write on the LV failed"
cp "$work/source.raw" "$work/expected.raw"
dd if="$work/d" of="$work/expected.raw" bs=512 seek=$(((20 * mib + 512) / 512)) conv=notrunc status=none
vm_step "vdi_export of an attached VDI is EBUSY (16)"
vm_driver_status 16 LVMSR "$dconf" vdi_export "$sr" "$from_vhd" raw
vm_driver_ok LVMSR "$dconf" vdi_detach "$sr" "$from_vhd"
all_inactive "after vdi_detach"
"$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$from_vhd" raw | cmp - "$work/expected.raw" || vm_fail "the leaf's export through its chain differs"
"$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$lvm_snap" raw | cmp - "$work/source.raw" || vm_fail "the snapshot's export differs"
"$SM_BIN_DIR/LVMSR" "$dconf" vdi_export "$sr" "$from_vhd" vhd > "$work/leaf.vhd" || vm_fail "the leaf's vhd export failed"
qemu-img compare -q -f vpc -F raw "$work/leaf.vhd" "$work/expected.raw" || vm_fail "the leaf's flattened VHD reads differently"
all_inactive "after vdi_export of a chain"

vm_step "ENOSPC before anything: a raw stream larger than the free extents"
free=$(vgs --noheadings --units b --nosuffix -o vg_free "$vg" | tr -d ' ')
too_big=$(((free / mib + 64) * mib))
truncate -s "$too_big" "$work/big.raw"
vm_driver_status 28 LVMSR "$dconf" vdi_import "$sr" 28e0ae25-b1d2-4ef0-9c7f-adc1ef6e8abd raw "$too_big" < "$work/big.raw"
no_leftovers "after ENOSPC"

vm_step "delete everything: every extent is free again"
for vdi in "$from_raw" "$from_vhd" "$lvm_snap"; do vm_driver_ok LVMSR "$dconf" vdi_delete "$sr" "$vdi"; done
left=$(lvs --noheadings -o lv_name "$vg" | tr -d ' ')
[ -z "$left" ] || vm_fail "volumes left after deleting every VDI: $left"
vm_driver_ok LVMSR "$dconf" sr_detach "$sr"
vm_driver_ok LVMSR "$dconf" sr_delete "$sr"
