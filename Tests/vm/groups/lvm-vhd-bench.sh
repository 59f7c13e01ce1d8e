#!/bin/bash
# A benchmark, not a test of behaviour (run by hand or by Scripts/benchmark-lvm-chain.sh; not in
# groups.enabled): VHD VDIs on LVMSR (dconf vdi_type=vhd) with real activation.
#
#   vdi_snapshot of a VDI whose chain is 1-3 VHDs long and 24-26 long (issue 13: only the source
#   and the new child are activated, so the time must not grow with the depth: ratio <= 1.2);
#   vdi_clone of a fresh VDI and of the leaf of that chain at 27-29 (the same goal);
#   sr_gc merging BENCH_MIB MiB of a child into its hidden parent, beside `dd` copying the same
#   bytes between two volumes of the group (buffered then fsync, and direct I/O), in the same boot.
#
# Prints lines "bench: NAME VALUE" that the script collects. It still checks what it relies on
# (every verb succeeds, the merge happens, the merged VDI reads the child's bytes), so a number is
# never printed for work that was not done.
. "$VM_LIB"

sr=7b3e9d21-5c4a-4f8e-9a1b-2c3d4e5f6a70
dconf="<dconf><device>$VM_DISK</device><vdi_type>vhd</vdi_type></dconf>"
vg="VG_XenStorage-$sr"
mib=$((1024 * 1024))
bench_mib=${BENCH_MIB:-128}

vm_on_exit vgremove -f "$vg"
vm_on_exit vgchange -an "$vg"

uuid() { cat /proc/sys/kernel/random/uuid; }
lv() { echo "/dev/$vg/LV-$1"; }
# timed VERB ARGS...: runs the verb (it must succeed) and sets MS to its wall time in ms.
timed() {
    local start
    start=$(date +%s%N)
    vm_driver_ok LVMSR "$dconf" "$@"
    MS=$(( ($(date +%s%N) - start) / 1000000 ))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

vm_step "sr_create, sr_attach"
vm_check "modprobe" modprobe -a dm_mod
vm_driver_ok LVMSR "$dconf" sr_create "$sr" 0
vm_driver_ok LVMSR "$dconf" sr_attach "$sr"

vm_step "clone at depth 1: three fresh 1 GiB VDIs, each cloned once"
shallow_clone=()
for i in 1 2 3; do
    w=$(uuid)
    vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$w" $((1024 * mib))
    timed vdi_clone "$sr" "$w" "$(uuid)"
    shallow_clone+=("$MS")
done

# One VDI's chain grows one VHD per operation: snapshots while it is 1 to 26 VHDs long, then clones
# of its leaf at 27, 28 and 29 (the last makes 30, the limit).
vm_step "snapshot one VDI while its chain is 1 to 26 VHDs long, then clone its leaf at 27, 28, 29"
leaf=$(uuid)
vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$leaf" $((1024 * mib))
snaps=()
for depth in $(seq 1 25); do
    timed vdi_snapshot "$sr" "$leaf" "$(uuid)"
    snaps+=("$MS")
done
# The 26th, with --verbose (every LVM command on stderr): the only volumes it activates are the
# source (LV-leaf, renamed to the destination's name) and the new child (LV-leaf.new).
dest=$(uuid)
start=$(date +%s%N)
"$SM_BIN_DIR/LVMSR" --verbose "$dconf" vdi_snapshot "$sr" "$leaf" "$dest" > /dev/null 2> /tmp/snapshot-26.err \
    || vm_fail "the 26th vdi_snapshot failed: $(tail -3 /tmp/snapshot-26.err)"
snaps+=("$(( ($(date +%s%N) - start) / 1000000 ))")
activated=$(grep -o -- "--activate e\{0,1\}y [^ ]*" /tmp/snapshot-26.err | awk '{ print $3 }' | sed 's|.*/||' | sort -u)
echo "  the 26th snapshot activated: $(tr '\n' ' ' <<< "$activated")"
[ -n "$activated" ] || vm_fail "no activation seen in the 26th snapshot's --verbose output: is the log format still 'lvm lvchange ... --activate y VG/LV'?"
while read -r volume; do
    case "$volume" in
        "LV-$leaf" | "LV-$leaf.new" | "LV-$dest") ;;
        *) vm_fail "the 26th snapshot activated $volume, a volume deeper in the chain" ;;
    esac
done <<< "$activated"
rm -f /tmp/snapshot-26.err
clones=()
for depth in 27 28 29; do
    timed vdi_clone "$sr" "$leaf" "$(uuid)"
    clones+=("$MS")
done
# The chain is as deep as measured: one more VHD is past the limit (EPERM).
vm_driver_status 1 LVMSR "$dconf" vdi_snapshot "$sr" "$leaf" "$(uuid)"
echo "  snapshot ms at chain lengths 1..26: ${snaps[*]}"
echo "  clone ms at chain lengths 27 28 29: ${clones[*]}"
echo "bench: snapshot_depth1_ms $(printf '%s\n' "${snaps[@]:0:3}" | median)"
echo "bench: snapshot_depth26_ms $(printf '%s\n' "${snaps[@]:23:3}" | median)"
echo "bench: clone_depth1_ms $(printf '%s\n' "${shallow_clone[@]}" | median)"
echo "bench: clone_depth29_ms $(printf '%s\n' "${clones[@]}" | median)"

vm_step "sr_gc merging $bench_mib MiB beside dd of the same bytes between two volumes"
parent=$(uuid)
child=$(uuid)
size=$(( (bench_mib + 64) * mib ))
vm_driver_ok LVMSR "$dconf" vdi_create "$sr" "$child" "$size"
vm_driver_ok LVMSR "$dconf" vdi_attach "$sr" "$child"
udevadm settle --timeout=30
# Random bytes straight from /dev/urandom (the guest's /tmp is RAM: no copies kept); the child's
# digest is taken through the chain before the merge and compared after it.
head -c $((bench_mib * mib)) /dev/urandom | "$SM_BIN_DIR/sm-vhd" write "$(lv "$child")" 0 || vm_fail "sm-vhd write failed"
vm_driver_ok LVMSR "$dconf" vdi_detach "$sr" "$child"
vm_driver_ok LVMSR "$dconf" vdi_snapshot "$sr" "$child" "$parent"
vm_driver_ok LVMSR "$dconf" vdi_attach "$sr" "$child"
udevadm settle --timeout=30
head -c $((bench_mib * mib)) /dev/urandom | "$SM_BIN_DIR/sm-vhd" write "$(lv "$child")" 0 || vm_fail "sm-vhd write failed"
before=$("$SM_BIN_DIR/sm-vhd" read "$(lv "$child")" 0 "$size" | sha256sum | cut -d' ' -f1)
vm_driver_ok LVMSR "$dconf" vdi_detach "$sr" "$child"
vm_driver_ok LVMSR "$dconf" vdi_delete "$sr" "$parent"
sync
echo 3 > /proc/sys/vm/drop_caches
timed sr_gc "$sr"
gc_ms=$MS
[ -z "$(lvs --noheadings -o lv_name "$vg" | grep -F "LV-$parent")" ] || vm_fail "sr_gc did not merge $parent into $child"
vgchange -ay "$vg" >/dev/null && udevadm settle --timeout=30
after=$("$SM_BIN_DIR/sm-vhd" read "$(lv "$child")" 0 "$size" | sha256sum | cut -d' ' -f1)
[ "$after" = "$before" ] || vm_fail "the merged VDI does not read what the child read before the merge"
vgchange -an "$vg" >/dev/null

# dd of the same bytes between two plain volumes of the group (direct I/O, fsync at the end).
lvcreate -qq --yes -n bench-a -L "${bench_mib}m" "$vg" >/dev/null
lvcreate -qq --yes -n bench-b -L "${bench_mib}m" "$vg" >/dev/null
udevadm settle --timeout=30
dd if=/dev/urandom of="/dev/$vg/bench-a" bs=1M count="$bench_mib" oflag=direct status=none
sync
echo 3 > /proc/sys/vm/drop_caches
# Buffered with an fsync at the end, as the merge copies (copy_file_range through the page cache,
# then a flush): the like-for-like reference. Then with direct I/O, for scale: under QEMU's
# emulation a copy through the guest's page cache is emulated memcpy, direct I/O is the host's DMA.
start=$(date +%s%N)
dd if="/dev/$vg/bench-a" of="/dev/$vg/bench-b" bs=2M conv=fsync status=none
dd_ms=$(( ($(date +%s%N) - start) / 1000000 ))
cmp -s "/dev/$vg/bench-a" "/dev/$vg/bench-b" || vm_fail "dd's copy differs"
sync
echo 3 > /proc/sys/vm/drop_caches
start=$(date +%s%N)
dd if="/dev/$vg/bench-a" of="/dev/$vg/bench-b" bs=2M iflag=direct oflag=direct conv=fsync status=none
dd_direct_ms=$(( ($(date +%s%N) - start) / 1000000 ))
lvremove -qq -f "$vg/bench-a" "$vg/bench-b" >/dev/null
echo "bench: coalesce_${bench_mib}MiB_ms $gc_ms"
echo "bench: dd_${bench_mib}MiB_ms $dd_ms"
echo "bench: dd_direct_${bench_mib}MiB_ms $dd_direct_ms"
