#!/bin/bash
# LVMSR with VHD VDIs (dconf vdi_type=vhd) and real device-mapper activation, on the group's
# virtio scratch disk: thin vdi_create, inflate on vdi_attach and deflate on vdi_detach, a chain
# of 29 snapshots (30 VHDs, the limit) with data written at every level that reads back through
# every level (the VHD engine through sm-vhd on /dev/VG/LV, and qemu-img on the base, which is a
# plain dynamic VHD), snapshot time at depth 1 and 29, clone, ENOSPC before anything is done,
# kill -9 at every fault point of create, snapshot and clone followed by recovery (every VDI's
# bytes as before, no temporary volume, no intent record), delete of parents (hidden) and of
# everything (the volume group's free extents all back).
. "$VM_LIB"

# The chain's depth in snapshots: 29 (30 VHDs, the limit). lvm-vhd-quick runs this file with 3.
depth=${LVM_VHD_DEPTH:-29}

sr=7a4e2c91-5b3d-4f6a-8c2e-1d9b0f7e3a55
base=1c0ffee0-0000-4000-8000-000000000001
dconf="<dconf><device>$VM_DISK</device><vdi_type>vhd</vdi_type></dconf>"
vg="VG_XenStorage-$sr"
mib=$((1024 * 1024))
size=$((40 * mib))
work=/tmp/lvm-vhd
mkdir -p "$work"

vm_on_exit vgremove -f "$vg"
vm_on_exit vgchange -an "$vg"

lv() { echo "/dev/$vg/LV-$1"; }
uuid_at() { printf '2b0d%04x-0000-4000-8000-%012x' "$1" "$1"; }
lv_bytes() { lvs --noheadings --units b --nosuffix -o lv_size "$vg/LV-$1" | tr -d ' '; }
free_extents() { vgs --noheadings -o vg_free_count "$vg" | tr -d ' '; }
# The guest bytes of a VDI through its whole chain, by the VHD engine (the VDI must be attached).
vdi_digest() { "$SM_BIN_DIR/sm-vhd" read "$(lv "$1")" 0 "$size" | sha256sum | cut -d' ' -f1; }
attach() {
    vm_driver_ok LVMSR "$dconf" vdi_attach "$sr" "$1"
    udevadm settle --timeout=30
}
detach() { vm_driver_ok LVMSR "$dconf" vdi_detach "$sr" "$1"; }
no_leftovers() {
    local names tags
    names=$(lvs --noheadings -o lv_name "$vg" | tr -d ' ' | grep -F '.new' || true)
    [ -z "$names" ] || vm_fail "$1: temporary volumes left: $names"
    tags=$(vgs --noheadings -o vg_tags "$vg" | tr ',' '\n' | grep -F sm_intent || true)
    [ -z "$tags" ] || vm_fail "$1: intent records left: $tags"
}

vm_step "load device-mapper; sr_create with vdi_type=vhd, sr_attach"
vm_check "modprobe" modprobe -a dm_mod
vm_driver_ok LVMSR "$dconf" sr_create "$sr" 0
vgs --noheadings -o vg_tags "$vg" | grep -q 'sm_vdi_type=vhd' || vm_fail "sr_create did not tag the VG as a VHD SR"
vm_driver_ok LVMSR "$dconf" sr_attach "$sr"
total_extents=$(free_extents)
extent=$(vgs --noheadings --units b --nosuffix -o vg_extent_size "$vg" | tr -d ' ')

vm_step "vdi_create is thin: one extent for a 40 MiB VHD; tags record type and size"
vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$base" "$size"
[ "$(lv_bytes "$base")" = "$extent" ] || vm_fail "the new VDI's LV has $(lv_bytes "$base") bytes, expected one extent ($extent)"
tags=$(lvs --noheadings -o lv_tags "$vg/LV-$base" | tr -d ' ')
[ "$tags" = "sm_type=vhd,sm_vsize=$size" ] || vm_fail "the new VDI's tags are '$tags'"

vm_step "vdi_attach inflates to the full VHD size and returns type vhd; write level 0"
attach "$base"
[ "$(vm_xml_values type <<< "$DRIVER_OUT")" = vhd ] || vm_fail "vdi_attach did not report type vhd: $DRIVER_OUT"
[ "$(lv_bytes "$base")" -ge $((size + 20 * 4096)) ] || vm_fail "after vdi_attach the LV has $(lv_bytes "$base") bytes, not inflated"
truncate -s "$size" "$work/expected"
head -c $mib /dev/urandom > "$work/level"
"$SM_BIN_DIR/sm-vhd" write "$(lv "$base")" 0 < "$work/level" || vm_fail "sm-vhd write on the LV failed"
dd if="$work/level" of="$work/expected" bs=$mib seek=0 conv=notrunc status=none
[ "$(vdi_digest "$base")" = "$(sha256sum < "$work/expected" | cut -d' ' -f1)" ] || vm_fail "level 0 does not read back"
detach "$base"
[ "$(lv_bytes "$base")" -le $((4 * mib + 2 * extent)) ] || vm_fail "vdi_detach did not deflate: $(lv_bytes "$base") bytes"
cp "$work/expected" "$work/expected-0"

vm_step "$depth snapshots, data written at every level (chain of $((depth + 1)) VHDs)"
declare -A snapshot_ms
for level in $(seq 1 "$depth"); do
    snap=$(uuid_at "$level")
    start=$(date +%s%N)
    vm_driver_ok LVMSR "$dconf" vdi_snapshot "$sr" "$base" "$snap"
    snapshot_ms[$level]=$((($(date +%s%N) - start) / 1000000))
    # The snapshot holds level-1's data; the leaf gets level's.
    cp "$work/expected" "$work/expected-snap-$level"
    attach "$base"
    head -c $mib /dev/urandom > "$work/level"
    "$SM_BIN_DIR/sm-vhd" write "$(lv "$base")" $((level * mib)) < "$work/level" || vm_fail "write at level $level failed"
    dd if="$work/level" of="$work/expected" bs=$mib seek="$level" conv=notrunc status=none
    detach "$base"
done
echo "  vdi_snapshot at depth 1: ${snapshot_ms[1]} ms, at depth $depth: ${snapshot_ms[$depth]} ms (process wall time)"
if [ "$depth" = 29 ]; then
    vm_driver_status 1 LVMSR "$dconf" vdi_snapshot "$sr" "$base" "$(uuid_at 99)"
    grep -q "limit is 30" <<< "$DRIVER_ERR" || vm_fail "a 31st VHD was not refused for the chain limit: $DRIVER_ERR"
fi

vm_step "sr_scan: parents, read_only, virtual size and LV bytes"
vm_driver_ok LVMSR "$dconf" sr_scan "$sr"
count=$(grep -o '<vdi>' <<< "$DRIVER_OUT" | wc -l)
[ "$count" = $((depth + 1)) ] || vm_fail "sr_scan lists $count VDIs, expected $((depth + 1))"
parent=$(tr -d '\n' <<< "$DRIVER_OUT" | grep -o "<uuid>$base</uuid>.*" | vm_xml_values parent | head -1)
[ "$parent" = "$(uuid_at "$depth")" ] || vm_fail "sr_scan: the leaf's parent is '$parent', expected $(uuid_at "$depth")"

vm_step "every level reads back through its chain (the VHD engine on /dev/VG/LV)"
# Reading needs the volumes active, not attached: one vgchange instead of 30 attach/detach pairs.
activate_all() { vgchange -ay "$vg" >/dev/null && udevadm settle --timeout=30; }
activate_all
[ "$(vdi_digest "$base")" = "$(sha256sum < "$work/expected" | cut -d' ' -f1)" ] || vm_fail "the leaf does not read back"
for level in $(seq 1 "$depth"); do
    snap=$(uuid_at "$level")
    [ "$(vdi_digest "$snap")" = "$(sha256sum < "$work/expected-snap-$level" | cut -d' ' -f1)" ] ||
        vm_fail "snapshot $level does not read back"
    if [ "$level" = 1 ]; then
        # The first snapshot is the original dynamic VHD: qemu reads it too.
        qemu-img convert -f vpc -O raw "$(lv "$snap")" "$work/qemu.raw" || vm_fail "qemu-img cannot read the base VHD"
        truncate -s "$size" "$work/qemu.raw"
        cmp -s "$work/qemu.raw" "$work/expected-snap-1" || vm_fail "qemu-img reads different bytes from the base VHD"
        echo "  qemu-img reads the base VHD on its LV identically"
        if qemu-img convert -f vpc -O raw "$(lv "$(uuid_at 2)")" "$work/qemu2.raw" 2>"$work/qemu.err"; then
            echo "  qemu-img also opened a differencing VHD (it does not follow parents; not compared)"
        else
            echo "  qemu-img cannot read differencing VHDs: $(tail -1 "$work/qemu.err")"
        fi
    fi
done
echo "  the leaf and $depth snapshots read back"
vgchange -an "$vg" >/dev/null

vm_step "vdi_clone of a snapshot (it has children): a new child of it reads the snapshot's bytes"
middle=$(((depth + 1) / 2))
clone_child=$(uuid_at 201)
start=$(date +%s%N)
vm_driver_ok LVMSR "$dconf" vdi_clone "$sr" "$(uuid_at "$middle")" "$clone_child"
echo "  vdi_clone of snapshot $middle: $((($(date +%s%N) - start) / 1000000)) ms"
activate_all
[ "$(vdi_digest "$clone_child")" = "$(sha256sum < "$work/expected-snap-$middle" | cut -d' ' -f1)" ] ||
    vm_fail "the clone of snapshot $middle does not read its bytes"
vgchange -an "$vg" >/dev/null

vm_step "ENOSPC before anything: a clone whose inflated children do not fit"
big=$(uuid_at 300)
vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$big" $((3 * 1024 * mib))
before=$(lvs --noheadings -o lv_name "$vg" | wc -l)
vm_driver_status 28 LVMSR "$dconf" vdi_clone "$sr" "$big" "$(uuid_at 301)"
grep -q "bytes free" <<< "$DRIVER_ERR" || vm_fail "ENOSPC does not name the bytes free: $DRIVER_ERR"
[ "$(lvs --noheadings -o lv_name "$vg" | wc -l)" = "$before" ] || vm_fail "the refused clone changed the volume group"
no_leftovers "refused clone"
vm_driver_ok LVMSR "$dconf" vdi_delete "$sr" "$big"

vm_step "a VDI with 1 MiB of data for the clone and fault-point steps"
leaf_digest=$(sha256sum < "$work/expected" | cut -d' ' -f1)
small=$(uuid_at 400)
vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$small" "$size"
attach "$small"
head -c $mib /dev/urandom > "$work/small"
"$SM_BIN_DIR/sm-vhd" write "$(lv "$small")" 0 < "$work/small"
small_digest=$(vdi_digest "$small")
detach "$small"

vm_step "vdi_clone of a leaf: two children of a new base copy; each reads the source's bytes"
clone=$(uuid_at 200)
vm_driver_ok LVMSR "$dconf" vdi_clone "$sr" "$small" "$clone"
activate_all
for vdi in "$small" "$clone"; do
    [ "$(vdi_digest "$vdi")" = "$small_digest" ] || vm_fail "clone: $vdi does not read the source's bytes"
done
vgchange -an "$vg" >/dev/null
attach "$clone"
head -c $mib /dev/urandom | "$SM_BIN_DIR/sm-vhd" write "$(lv "$clone")" $((35 * mib)) || vm_fail "write to the clone failed"
detach "$clone"
activate_all
[ "$(vdi_digest "$small")" = "$small_digest" ] || vm_fail "a write to the clone changed the source"
vgchange -an "$vg" >/dev/null

vm_step "kill -9 at every fault point, then recovery by the next verb"
index=500
for point in lvm-create.journaled lvm-create.written \
    lvm-snapshot.journaled lvm-snapshot.child-created lvm-snapshot.source-renamed lvm-snapshot.committed \
    lvm-clone.journaled lvm-clone.children-created lvm-clone.base-renamed lvm-clone.destination-renamed lvm-clone.committed; do
    index=$((index + 1))
    target=$(uuid_at "$index")
    case $point in
        lvm-create.*) verb=(vdi_create "$sr" "$target" "$size") ;;
        lvm-snapshot.*) verb=(vdi_snapshot "$sr" "$small" "$target") ;;
        lvm-clone.*) verb=(vdi_clone "$sr" "$small" "$target") ;;
    esac
    export SM_FAULT_POINT=$point
    vm_driver LVMSR "$dconf" "${verb[@]}"
    unset SM_FAULT_POINT
    [ "$DRIVER_STATUS" = 137 ] || vm_fail "$point: the driver exited $DRIVER_STATUS, expected 137 (SIGKILL at the fault point)"
    vm_driver_ok LVMSR "$dconf" sr_scan "$sr"
    no_leftovers "after $point"
    listed=$(grep -c "<uuid>$target</uuid>" <<< "$DRIVER_OUT" || true)
    echo "  $point: $target listed after recovery: $listed"
    activate_all
    [ "$(vdi_digest "$small")" = "$small_digest" ] || vm_fail "$point: the source's bytes changed after recovery"
    if [ "$listed" = 1 ] && [ "${point%%.*}" != lvm-create ]; then
        [ "$(vdi_digest "$target")" = "$small_digest" ] || vm_fail "$point: the recovered $target does not read the source's bytes"
    fi
    [ "$(vdi_digest "$base")" = "$leaf_digest" ] || vm_fail "$point: an unrelated VDI's bytes changed"
    vgchange -an "$vg" >/dev/null
done

vm_step "delete: a parent is hidden; deleting every VDI gives every extent back"
vm_driver_ok LVMSR "$dconf" vdi_delete "$sr" "$(uuid_at "$middle")"
lvs --noheadings -o lv_tags "$vg/LV-$(uuid_at "$middle")" | grep -q sm_hidden || vm_fail "the deleted parent is not hidden"
vm_driver_ok LVMSR "$dconf" sr_scan "$sr"
! grep -q "<uuid>$(uuid_at "$middle")</uuid>" <<< "$DRIVER_OUT" || vm_fail "sr_scan lists the hidden parent"
for vdi in $(vm_xml_values uuid <<< "$DRIVER_OUT" | grep -v "^$sr\$"); do
    vm_driver_ok LVMSR "$dconf" vdi_delete "$sr" "$vdi" >/dev/null
done
vm_driver_ok LVMSR "$dconf" sr_scan "$sr"
remaining=$(lvs --noheadings -o lv_name "$vg" | wc -l)
[ "$remaining" = 0 ] || vm_fail "$remaining logical volumes are left after deleting every VDI: $(lvs --noheadings -o lv_name,lv_tags "$vg")"
[ "$(free_extents)" = "$total_extents" ] || vm_fail "free extents $(free_extents), expected all $total_extents back"

vm_step "sr_detach, sr_delete"
vm_driver_ok LVMSR "$dconf" sr_detach "$sr"
vm_driver_ok LVMSR "$dconf" sr_delete "$sr"

echo "PASS: $VM_GROUP"
