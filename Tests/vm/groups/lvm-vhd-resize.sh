#!/bin/bash
# LVMSR VHD VDIs (dconf vdi_type=vhd) with real activation: vdi_resize grows the virtual size
# (data kept, new space reads zeros, sr_scan and the size tag agree, the volume deflated again),
# kill -9 at each resize fault point is recovered by the next verb (the tag follows the VHD), and
# a VDI with children is EPERM. The short companion of the lvm-vhd group.
. "$VM_LIB"

sr=5d2c7b19-3e4f-4a8b-9c1d-6e0f2a3b4c55
vdi=3a1b2c3d-0000-4000-8000-000000000001
snap=3a1b2c3d-0000-4000-8000-000000000002
dconf="<dconf><device>$VM_DISK</device><vdi_type>vhd</vdi_type></dconf>"
vg="VG_XenStorage-$sr"
mib=$((1024 * 1024))
work=/tmp/lvm-vhd-resize
mkdir -p "$work"

vm_on_exit vgremove -f "$vg"
vm_on_exit vgchange -an "$vg"

lv() { echo "/dev/$vg/LV-$1"; }
size_tag() { lvs --noheadings -o lv_tags "$vg/LV-$1" | tr ',' '\n' | sed -n 's/^ *sm_vsize=//p'; }
scan_size() { tr -d '\n' <<< "$DRIVER_OUT" | grep -o "<uuid>$1</uuid>.*" | vm_xml_values size | head -1; }

vm_step "sr_create, sr_attach, a 10 MiB VDI with 1 MiB of data"
vm_check "modprobe" modprobe -a dm_mod
vm_driver_ok LVMSR "$dconf" sr_create "$sr" 0
vm_driver_ok LVMSR "$dconf" sr_attach "$sr"
vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$vdi" $((10 * mib))
vm_driver_ok LVMSR "$dconf" vdi_attach "$sr" "$vdi"
udevadm settle --timeout=30
head -c $mib /dev/urandom > "$work/data"
"$SM_BIN_DIR/sm-vhd" write "$(lv "$vdi")" $((3 * mib)) < "$work/data" || vm_fail "sm-vhd write failed"
vm_driver_ok LVMSR "$dconf" vdi_detach "$sr" "$vdi"

check_data() {
    local size=$1
    vgchange -ay "$vg" >/dev/null && udevadm settle --timeout=30
    "$SM_BIN_DIR/sm-vhd" read "$(lv "$vdi")" $((3 * mib)) $mib | cmp -s - "$work/data" || vm_fail "after resize to $size the data differs"
    [ "$("$SM_BIN_DIR/sm-vhd" read "$(lv "$vdi")" $((size - mib)) $mib | tr -d '\0' | wc -c)" = 0 ] ||
        vm_fail "the new space at the end of $size bytes does not read as zeros"
    vgchange -an "$vg" >/dev/null
}

vm_step "vdi_resize to 3 GiB (the BAT grows): data kept, zeros past it, tag and sr_scan agree"
vm_driver_ok LVMSR "$dconf" vdi_resize "$sr" "$vdi" $((3072 * mib))
[ "$(size_tag "$vdi")" = $((3072 * mib)) ] || vm_fail "size tag $(size_tag "$vdi") after resize"
vm_driver_ok LVMSR "$dconf" sr_scan "$sr"
[ "$(scan_size "$vdi")" = $((3072 * mib)) ] || vm_fail "sr_scan size $(scan_size "$vdi") after resize"
bytes=$(lvs --noheadings --units b --nosuffix -o lv_size "$vg/LV-$vdi" | tr -d ' ')
[ "$bytes" -le $((16 * mib)) ] || vm_fail "the volume was not deflated after resize: $bytes bytes"
check_data $((3072 * mib))

vm_step "kill -9 at each resize fault point: the next verb makes the tag follow the VHD"
size=$((3072 * mib))
for point in lvm-resize.journaled lvm-resize.vhd-resized; do
    size=$((size + 512 * mib))
    export SM_FAULT_POINT=$point
    vm_driver LVMSR "$dconf" vdi_resize "$sr" "$vdi" "$size"
    unset SM_FAULT_POINT
    [ "$DRIVER_STATUS" = 137 ] || vm_fail "$point: exit $DRIVER_STATUS, expected 137"
    vm_driver_ok LVMSR "$dconf" sr_scan "$sr"
    tags=$(vgs --noheadings -o vg_tags "$vg" | tr ',' '\n' | grep -F sm_intent || true)
    [ -z "$tags" ] || vm_fail "$point: intent record left: $tags"
    vgchange -ay "$vg" >/dev/null && udevadm settle --timeout=30
    vhd_size=$("$SM_BIN_DIR/sm-vhd" chain "$(lv "$vdi")" | sed -n 's/.* size=\([0-9]*\) .*/\1/p' | head -1)
    vgchange -an "$vg" >/dev/null
    [ "$(size_tag "$vdi")" = "$vhd_size" ] || vm_fail "$point: tag $(size_tag "$vdi"), VHD $vhd_size"
    echo "  $point: VHD and tag agree at $vhd_size bytes"
    vm_driver_ok LVMSR "$dconf" vdi_resize "$sr" "$vdi" "$size"
    [ "$(size_tag "$vdi")" = "$size" ] || vm_fail "$point: the repeated resize did not reach $size"
    check_data "$size"
done

vm_step "the 4 GiB VDI cannot be snapshotted on a 4 GiB disk: ENOSPC before anything (its child inflated)"
before=$(lvs --noheadings -o lv_name,lv_size "$vg")
vm_driver_status 28 LVMSR "$dconf" vdi_snapshot "$sr" "$vdi" "$snap"
grep -q "bytes free" <<< "$DRIVER_ERR" || vm_fail "ENOSPC does not name the bytes free"
[ "$(lvs --noheadings -o lv_name,lv_size "$vg")" = "$before" ] || vm_fail "the refused snapshot changed the volumes"

vm_step "a VDI with children cannot be resized (EPERM)"
small=3a1b2c3d-0000-4000-8000-000000000003
vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$small" $((10 * mib))
vm_driver_ok LVMSR "$dconf" vdi_snapshot "$sr" "$small" "$snap"
vm_driver_status 1 LVMSR "$dconf" vdi_resize "$sr" "$snap" $((20 * mib))

vm_step "vdi_delete all, sr_detach, sr_delete"
for each in "$snap" "$small" "$vdi"; do vm_driver_ok LVMSR "$dconf" vdi_delete "$sr" "$each"; done
[ "$(lvs --noheadings -o lv_name "$vg" | wc -l)" = 0 ] || vm_fail "volumes left after deleting every VDI"
vm_driver_ok LVMSR "$dconf" sr_detach "$sr"
vm_driver_ok LVMSR "$dconf" sr_delete "$sr"

echo "PASS: $VM_GROUP"
