#!/bin/bash
# Two hosts on one ext4 SR: EXTSR with <multihost>true</multihost> (as EXToISCSISR always makes
# it) formats with ext4's multi-mount protection (MMP), so the filesystem itself refuses a second
# host's mount. The hosts are two UTS + mount namespaces in the guest, each with its own host
# name, host state and mount directory, and each with its OWN loop device over the group's
# scratch disk: two block devices with the same bytes behind them, as two hosts see one LUN
# (one loop device shared by both would not do: the kernel would reuse its mounted superblock
# for the second mount instead of reading the disk, so MMP would never be asked).
#
# Proves: sr_create makes MMP with a 5 s interval; host 2's sr_attach while host 1 has the SR
# attached is EBUSY naming host 1 and leaves no mount and no mount point; a plain mount(8) on
# host 2 is refused by the kernel too ("MMP ... node h1" in dmesg); host 2's sr_delete is EBUSY
# and the SR survives; after host 1's sr_detach, host 2 attaches and sr_scan lists host 1's VDI;
# a host that died with the SR attached (its last MMP block written back) delays host 2's attach
# by the liveness wait and no more; an SR made without MMP gets it at the next sr_attach with
# multihost.
#
# MMP's node name is the KERNEL's host name (kmmpd uses the initial UTS namespace), and both
# hosts here share one kernel, so the guest is named h1 while host 1 mounts.
. "$VM_LIB"

sr=5b0e3c2a-91d4-4e7f-8a6b-2c4d6e8f0a13
sr_old=6c1f4d3b-a2e5-4f80-9b7c-3d5e7f9a1b24
vdi=7d2a5e4c-b3f6-4a91-8c8d-4e6f8a0b2c35
size=$((64 * 1024 * 1024))
sr_size=$((256 * 1024 * 1024))
guest_name=$(hostname)

vm_check "modprobe loop" modprobe loop
loop1=$(losetup -f --show "$VM_DISK") || vm_fail "losetup for host 1"
vm_on_exit losetup -d "$loop1"
loop2=$(losetup -f --show "$VM_DISK") || vm_fail "losetup for host 2"
vm_on_exit losetup -d "$loop2"
vm_on_exit hostname "$guest_name"

has_hostname() { [ "$(nsenter -t "$1" -u hostname 2>/dev/null)" = "$2" ]; }
declare -A holder device
device[h1]=$loop1
device[h2]=$loop2
for h in h1 h2; do
    mkdir -p "/run/$h"
    unshare --uts --mount --propagation private sh -c "hostname $h; exec sleep 1d" </dev/null >/dev/null 2>&1 &
    holder[$h]=$!
    vm_on_exit kill "${holder[$h]}"
    vm_wait_for 10 has_hostname "${holder[$h]}" "$h"
    vm_on_exit nsenter -t "${holder[$h]}" -m -- umount -l "/run/$h/sr-mount/$sr"
done

# host_driver HOST DCONF-EXTRA VERB ARGS...: EXTSR as that host, on its own loop device.
host_driver() {
    local h=$1 extra=$2 verb=$3 errors
    shift 3
    errors=$(mktemp)
    DRIVER_STATUS=0
    DRIVER_OUT=$(nsenter -t "${holder[$h]}" -m -u -- env SM_RUN_DIR="/run/$h/sm" SM_LOCK_DIR="/run/$h/lock" \
        SM_MOUNT_DIR="/run/$h/sr-mount" SM_LOG_FILE="/run/$h/SMlog" SM_HOST_ID="$h" \
        "$SM_BIN_DIR/EXTSR" "<dconf><device>${device[$h]}</device>$extra</dconf>" "$verb" "$@" 2>"$errors") || DRIVER_STATUS=$?
    DRIVER_ERR=$(cat "$errors")
    rm -f "$errors"
    echo "  $h: EXTSR $verb $* -> exit $DRIVER_STATUS${DRIVER_ERR:+ (${DRIVER_ERR##*$'\n'})}"
}
host_expect() {
    local expected=$1 h=$2 verb=$4
    host_driver "${@:2}"
    [ "$DRIVER_STATUS" = "$expected" ] || vm_fail "$h: EXTSR $verb exited $DRIVER_STATUS, expected $expected: $DRIVER_ERR $DRIVER_OUT"
}
mounted_in() { nsenter -t "${holder[$1]}" -m -- findmnt -rn -o TARGET,SOURCE -t ext4 | grep -E "loop|sr-mount" || true; }
seconds_since() { echo "$1 $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }'; }
multihost="<multihost>true</multihost>"

vm_step "host 1: sr_create with multihost makes ext4 with MMP (update interval 5 s)"
host_expect 0 h1 "$multihost" sr_create "$sr" "$sr_size"
features=$(dumpe2fs -h "$loop1" 2>/dev/null)
grep -q '^Filesystem features:.* mmp' <<< "$features" || vm_fail "no mmp feature: $(grep features <<< "$features")"
grep -Eq '^MMP update interval: +5$' <<< "$features" || vm_fail "MMP update interval is not 5: $(grep MMP <<< "$features")"

vm_step "host 1 (kernel named h1): sr_attach; vdi_create"
hostname h1
start=$(date +%s.%N)
host_expect 0 h1 "$multihost" sr_attach "$sr"
echo "  host 1's sr_attach took $(seconds_since "$start") s (e2fsck and mount each wait 11 s for MMP)"
hostname "$guest_name"
mounted_in h1 | grep -q "/run/h1/sr-mount/$sr $loop1" || vm_fail "host 1 has no mount of $loop1: $(mounted_in h1)"
host_expect 0 h1 "" vdi_create "$sr" "$vdi" "$size"
mmp=$(debugfs -c -R dump_mmp "$loop2" 2>/dev/null)
grep -q '^node_name: h1$' <<< "$mmp" || vm_fail "the MMP block does not name h1: $mmp"
# Keep host 1's live MMP block (valid checksum, a running sequence): written back later, it is
# what a host that died with the SR mounted leaves behind.
mmp_block=$(sed -n 's/^block_number: //p' <<< "$mmp")
block_size=$(dumpe2fs -h "$loop2" 2>/dev/null | sed -n 's/^Block size: *//p')
vm_check "save host 1's MMP block" dd if="$loop2" of=/run/mmp-live bs="$block_size" skip="$mmp_block" count=1 iflag=direct status=none

vm_step "host 2: sr_attach is EBUSY naming h1, mounts nothing, leaves no mount point"
start=$(date +%s.%N)
host_expect 16 h2 "$multihost" sr_attach "$sr"
echo "  refused after $(seconds_since "$start") s"
grep -q "node 'h1'" <<< "$DRIVER_ERR" || vm_fail "the refusal does not name node 'h1': $DRIVER_ERR"
[ -z "$(mounted_in h2)" ] || vm_fail "host 2 has a mount after the refusal: $(mounted_in h2)"
[ ! -e "/run/h2/sr-mount/$sr" ] || vm_fail "host 2's refused sr_attach left /run/h2/sr-mount/$sr"
# Without MMP the same call would have mounted a second time; the same holds without the flag.
host_expect 16 h2 "" sr_attach "$sr"
[ -z "$(mounted_in h2)" ] || vm_fail "host 2 has a mount after the refusal without the flag: $(mounted_in h2)"

vm_step "host 2: a plain mount(8) of its device is refused by the kernel (MMP), naming h1"
dmesg_before=$(dmesg | wc -l)
mkdir -p /run/h2/raw
if nsenter -t "${holder[h2]}" -m -- mount -t ext4 "$loop2" /run/h2/raw 2>&1; then
    nsenter -t "${holder[h2]}" -m -- umount /run/h2/raw
    vm_fail "the kernel mounted $loop2 on host 2 while host 1 has the filesystem mounted"
fi
rmdir /run/h2/raw
kernel=$(dmesg | tail -n "+$((dmesg_before + 1))")
printf '%s\n' "$kernel" | grep -i mmp | sed 's/^/  kernel: /'
grep -q "node: h1" <<< "$kernel" || vm_fail "the kernel's MMP message does not name h1: $kernel"

vm_step "host 2: sr_delete is EBUSY; the SR and host 1's mount are intact"
host_expect 16 h2 "" sr_delete "$sr"
grep -q "node 'h1'" <<< "$DRIVER_ERR" || vm_fail "sr_delete's refusal does not name node 'h1': $DRIVER_ERR"
[ "$(blkid -p -o value -s UUID "$loop2")" = "$sr" ] || vm_fail "the SR is gone after host 2's refused sr_delete"
host_expect 0 h1 "" sr_scan "$sr"
vm_xml_values uuid <<< "$DRIVER_OUT" | grep -qx "$vdi" || vm_fail "host 1's sr_scan lost $vdi: $DRIVER_OUT"

vm_step "host 1: sr_detach; host 2: sr_attach works and sr_scan lists host 1's VDI"
host_expect 0 h1 "" sr_detach "$sr"
[ -z "$(mounted_in h1)" ] || vm_fail "host 1 still has a mount: $(mounted_in h1)"
start=$(date +%s.%N)
host_expect 0 h2 "$multihost" sr_attach "$sr"
echo "  host 2's sr_attach took $(seconds_since "$start") s"
host_expect 0 h2 "" sr_scan "$sr"
vm_xml_values uuid <<< "$DRIVER_OUT" | grep -qx "$vdi" || vm_fail "host 2's sr_scan does not list $vdi: $DRIVER_OUT"
host_expect 0 h2 "" sr_detach "$sr"

vm_step "host 1 dies with the SR attached (its last MMP block left on disk): host 2 waits, then attaches"
vm_check "write back host 1's MMP block" dd if=/run/mmp-live of="$loop1" bs="$block_size" seek="$mmp_block" count=1 \
    oflag=direct conv=notrunc,fsync status=none
mmp=$(debugfs -c -R dump_mmp "$loop2" 2>/dev/null)
grep -q '^node_name: h1$' <<< "$mmp" && ! grep -q '^sequence: ff4d4d50$' <<< "$mmp" \
    || vm_fail "the written-back MMP block is not host 1's live one: $mmp"
start=$(date +%s.%N)
host_expect 0 h2 "$multihost" sr_attach "$sr"
echo "  host 2's sr_attach over a dead host's MMP block took $(seconds_since "$start") s"
host_expect 0 h2 "" sr_scan "$sr"
vm_xml_values uuid <<< "$DRIVER_OUT" | grep -qx "$vdi" || vm_fail "host 2's sr_scan does not list $vdi: $DRIVER_OUT"
host_expect 0 h2 "" vdi_delete "$sr" "$vdi"
host_expect 0 h2 "" sr_detach "$sr"
host_expect 0 h2 "" sr_delete "$sr"

vm_step "an SR made without MMP gets it at sr_attach with multihost"
host_expect 0 h1 "" sr_create "$sr_old" "$sr_size"
dumpe2fs -h "$loop1" 2>/dev/null | grep -q '^Filesystem features:.* mmp' && vm_fail "an SR made without multihost has mmp"
vm_on_exit nsenter -t "${holder[h1]}" -m -- umount -l "/run/h1/sr-mount/$sr_old"
host_expect 0 h1 "$multihost" sr_attach "$sr_old"
features=$(dumpe2fs -h "$loop1" 2>/dev/null)
grep -q '^Filesystem features:.* mmp' <<< "$features" || vm_fail "sr_attach with multihost did not turn mmp on: $(grep features <<< "$features")"
mmp=$(debugfs -c -R dump_mmp "$loop1" 2>/dev/null)
grep -q '^sequence: ff4d4d50$' <<< "$mmp" && vm_fail "the MMP block is clean while host 1 has the SR mounted: $mmp"
host_expect 0 h1 "" sr_detach "$sr_old"
host_expect 0 h1 "" sr_delete "$sr_old"

echo "PASS: $VM_GROUP"
