#!/bin/bash
# EXToISCSISR on one LUN that two hosts see, through the iSCSI target and the kernel initiator:
# the hosts are UTS + mount namespaces in the guest, each with its own initiator name
# (`localIQN`, so each logs in through its own iscsiadm interface and gets its own session and
# its own SCSI disk for the LUN: one iscsid, one iface per host, as ../shared/VM-LANE.md found)
# and its own /dev/disk/by-path (host setting iscsi_by_path_dir; a link kept by this script
# to that host's disk, as each host's udev would).
#
# Proves: host 1's sr_create and sr_attach make and mount ext4 with MMP; host 2's sr_attach
# while host 1 has the SR and creates and deletes VDIs on it is EBUSY naming h1, leaves no mount,
# and logs host 2 out again; after
# host 1's sr_detach, host 2 attaches over its own session and sr_scan lists host 1's VDI.
# MMP's node name is the kernel's host name; one kernel serves both hosts here, so the guest is
# named h1 while host 1 mounts.
. "$VM_LIB"

iqn=iqn.2007-10.test.sm-vm-lane:mmp
sr=0d9e8f7a-6b5c-4d4e-8f3a-2b1c0d9e8f7a
vdi=1e0f9a8b-7c6d-4e5f-9a4b-3c2d1e0f9a8b
sr_size=$((256 * 1024 * 1024))
link_name="ip-127.0.0.1:3260-iscsi-$iqn-lun-1"
guest_name=$(hostname)
declare -A holder initiator
initiator[h1]=iqn.2007-10.test.sm-vm-lane:host-1
initiator[h2]=iqn.2007-10.test.sm-vm-lane:host-2

vm_step "tgtd: $iqn with LUN 1 = $VM_DISK; iscsid; hosts h1 and h2"
vm_check "modprobe" modprobe -a iscsi_tcp sd_mod
tgtd || vm_fail "tgtd did not start"
vm_on_exit tgtadm --op delete --mode system
vm_on_exit tgtadm --lld iscsi --op delete --mode target --tid 1 --force
vm_wait_for 10 tgtadm --lld iscsi --op show --mode target
vm_check "target" tgtadm --lld iscsi --op new --mode target --tid 1 -T "$iqn"
vm_check "LUN 1" tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$VM_DISK"
vm_check "bind" tgtadm --lld iscsi --op bind --mode target --tid 1 -I 127.0.0.1
echo "InitiatorName=iqn.2007-10.test.sm-vm-lane:guest" > /etc/iscsi/initiatorname.iscsi
iscsid || vm_fail "iscsid did not start"
vm_on_exit iscsiadm -k 0
vm_on_exit iscsiadm -m node --logoutall=all
vm_on_exit hostname "$guest_name"

has_hostname() { [ "$(nsenter -t "$1" -u hostname 2>/dev/null)" = "$2" ]; }
for h in h1 h2; do
    mkdir -p "/run/$h/by-path"
    echo "iscsi_by_path_dir = /run/$h/by-path" > "/run/$h/sm.conf"
    unshare --uts --mount --propagation private sh -c "hostname $h; exec sleep 1d" </dev/null >/dev/null 2>&1 &
    holder[$h]=$!
    vm_on_exit kill "${holder[$h]}"
    vm_wait_for 10 has_hostname "${holder[$h]}" "$h"
    vm_on_exit nsenter -t "${holder[$h]}" -m -- umount -l "/run/$h/sr-mount/$sr"
done

# Each host's by-path link points at the disk of ITS session (matched by initiator name).
host_disk() {
    local session blocks
    for session in /sys/class/iscsi_session/session*; do
        [ "$(cat "$session/initiatorname" 2>/dev/null)" = "$1" ] || continue
        blocks=$(ls -d "$session"/device/target*/*:*:*:1/block/* 2>/dev/null | head -n 1)
        [ -n "$blocks" ] && echo "/dev/${blocks##*/}"
    done
}
keep_links() {
    local h disk
    while :; do
        for h in h1 h2; do
            disk=$(host_disk "${initiator[$h]}")
            if [ -n "$disk" ] && [ -b "$disk" ]; then
                [ "$(readlink "/run/$h/by-path/$link_name")" = "$disk" ] || ln -sfn "$disk" "/run/$h/by-path/$link_name"
            else
                rm -f "/run/$h/by-path/$link_name"
            fi
        done
        sleep 0.3
    done
}
keep_links </dev/null >/dev/null 2>&1 &
linker=$!
vm_on_exit kill "$linker"

host_driver() {
    local h=$1 verb=$2 errors
    shift 2
    errors=$(mktemp)
    DRIVER_STATUS=0
    DRIVER_OUT=$(nsenter -t "${holder[$h]}" -m -u -- env SM_CONFIG="/run/$h/sm.conf" SM_RUN_DIR="/run/$h/sm" \
        SM_LOCK_DIR="/run/$h/lock" SM_MOUNT_DIR="/run/$h/sr-mount" SM_LOG_FILE="/run/$h/SMlog" SM_HOST_ID="$h" \
        "$SM_BIN_DIR/EXToISCSISR" \
        "<dconf><target>127.0.0.1</target><targetIQN>$iqn</targetIQN><LUNid>1</LUNid><localIQN>${initiator[$h]}</localIQN></dconf>" \
        "$verb" "$@" 2>"$errors") || DRIVER_STATUS=$?
    DRIVER_ERR=$(cat "$errors")
    rm -f "$errors"
    echo "  $h: EXToISCSISR $verb $* -> exit $DRIVER_STATUS${DRIVER_ERR:+ (${DRIVER_ERR##*$'\n'})}"
}
host_expect() {
    local expected=$1 h=$2 verb=$3
    host_driver "${@:2}"
    [ "$DRIVER_STATUS" = "$expected" ] || vm_fail "$h: EXToISCSISR $verb exited $DRIVER_STATUS, expected $expected: $DRIVER_ERR $DRIVER_OUT"
}
mounted_in() { nsenter -t "${holder[$1]}" -m -- findmnt -rn -o TARGET,SOURCE -t ext4 | grep sr-mount || true; }
seconds_since() { echo "$1 $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }'; }
sessions_of() { cat /sys/class/iscsi_session/session*/initiatorname 2>/dev/null | grep -cx -- "$1" || true; }

vm_step "host 1: sr_create (ext4 with MMP on the LUN); sr_attach with the kernel named h1; vdi_create"
host_expect 0 h1 sr_create "$sr" "$sr_size"
hostname h1
start=$(date +%s.%N)
host_expect 0 h1 sr_attach "$sr"
echo "  host 1's sr_attach took $(seconds_since "$start") s"
hostname "$guest_name"
disk1=$(host_disk "${initiator[h1]}")
dumpe2fs -h "$disk1" 2>/dev/null | grep -q '^Filesystem features:.* mmp' || vm_fail "the SR on $disk1 has no mmp feature"
mounted_in h1 | grep -q "/run/h1/sr-mount/$sr $disk1" || vm_fail "host 1 has no mount of $disk1: $(mounted_in h1)"
host_expect 0 h1 vdi_create "$sr" "$vdi" $((32 * 1024 * 1024))

vm_step "host 2: sr_attach over its own session, while host 1 creates and deletes a VDI, is EBUSY naming h1; no mount; host 2 logged out again"
# Host 1's writes change allocation bitmaps under host 2's cached group descriptors: a debugfs
# that reads the bitmaps cannot open the filesystem then (the CI run of stop 26 answered EIO so).
scratch=2e0f9a8b-7c6d-4e5f-9a4b-3c2d1e0f9a8b
touch /tmp/ext-mmp-writer
writer() {
    local rounds=0
    while [ -e /tmp/ext-mmp-writer ]; do
        host_driver h1 vdi_create "$sr" "$scratch" $((4 * 1024 * 1024)) >/dev/null
        [ "$DRIVER_STATUS" = 0 ] || { echo "vdi_create exited $DRIVER_STATUS: $DRIVER_ERR"; return 1; }
        host_driver h1 vdi_delete "$sr" "$scratch" >/dev/null
        [ "$DRIVER_STATUS" = 0 ] || { echo "vdi_delete exited $DRIVER_STATUS: $DRIVER_ERR"; return 1; }
        rounds=$((rounds + 1))
    done
    echo "$rounds"
}
writer </dev/null >/tmp/ext-mmp-writer.out 2>&1 &
writer_pid=$!
vm_on_exit rm -f /tmp/ext-mmp-writer
start=$(date +%s.%N)
host_expect 16 h2 sr_attach "$sr"
echo "  refused after $(seconds_since "$start") s"
rm -f /tmp/ext-mmp-writer
wait "$writer_pid" || vm_fail "host 1's verbs during the refusal failed: $(cat /tmp/ext-mmp-writer.out)"
rounds=$(cat /tmp/ext-mmp-writer.out)
[ "$rounds" -gt 0 ] 2>/dev/null || vm_fail "host 1 made no VDI during host 2's sr_attach: $rounds"
echo "  host 1 created and deleted a VDI $rounds times meanwhile"
grep -q "node 'h1'" <<< "$DRIVER_ERR" || vm_fail "the refusal does not name node 'h1': $DRIVER_ERR"
[ -z "$(mounted_in h2)" ] || vm_fail "host 2 has a mount after the refusal: $(mounted_in h2)"
[ ! -e "/run/h2/sr-mount/$sr" ] || vm_fail "host 2's refused sr_attach left /run/h2/sr-mount/$sr"
[ "$(sessions_of "${initiator[h2]}")" = 0 ] || vm_fail "host 2's refused sr_attach left its session: $(iscsiadm -m session 2>&1)"
[ "$(sessions_of "${initiator[h1]}")" = 1 ] || vm_fail "host 1's session is gone: $(iscsiadm -m session 2>&1)"

vm_step "host 1: sr_detach; host 2: sr_attach, sr_scan lists host 1's VDI; clean up"
host_expect 0 h1 sr_detach "$sr"
start=$(date +%s.%N)
host_expect 0 h2 sr_attach "$sr"
echo "  host 2's sr_attach took $(seconds_since "$start") s"
host_expect 0 h2 sr_scan "$sr"
vm_xml_values uuid <<< "$DRIVER_OUT" | grep -qx "$vdi" || vm_fail "host 2's sr_scan does not list $vdi: $DRIVER_OUT"
host_expect 0 h2 vdi_delete "$sr" "$vdi"
host_expect 0 h2 sr_detach "$sr"
host_expect 0 h2 sr_delete "$sr"
[ -z "$(iscsiadm -m session 2>/dev/null)" ] || vm_fail "sessions left: $(iscsiadm -m session 2>&1)"

echo "PASS: $VM_GROUP"
