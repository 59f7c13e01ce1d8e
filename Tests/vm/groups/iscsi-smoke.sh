#!/bin/bash
# iSCSI smoke test: the lane's target (tgtd) and initiator (open-iscsi, the kernel's iscsi_tcp)
# work on the guest's own 127.0.0.1. A LUN backed by the scratch disk is discovered, logged in to,
# appears as a SCSI block device under its /dev/disk/by-path name, carries data both ways, and
# goes away again on logout. Ready for the iSCSI drivers' groups.
. "$VM_LIB"

iqn=iqn.2007-10.test.sm-vm-lane:iscsi-smoke
initiator=iqn.2007-10.test.sm-vm-lane:initiator
portal=127.0.0.1:3260
by_path="/dev/disk/by-path/ip-$portal-iscsi-$iqn-lun-1"

vm_step "load the initiator's kernel modules"
vm_check "modprobe" modprobe -a iscsi_tcp sd_mod

vm_step "start tgtd with one target whose LUN 1 is the scratch disk $VM_DISK"
tgtd || vm_fail "tgtd did not start"
vm_on_exit tgtadm --op delete --mode system
vm_on_exit tgtadm --lld iscsi --op delete --mode target --tid 1 --force
vm_wait_for 10 tgtadm --lld iscsi --op show --mode target
vm_check "create the target" tgtadm --lld iscsi --op new --mode target --tid 1 -T "$iqn"
vm_check "add LUN 1" tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$VM_DISK"
vm_check "allow 127.0.0.1" tgtadm --lld iscsi --op bind --mode target --tid 1 -I 127.0.0.1

vm_step "start iscsid and discover the target with sendtargets"
echo "InitiatorName=$initiator" > /etc/iscsi/initiatorname.iscsi
iscsid || vm_fail "iscsid did not start"
vm_on_exit iscsiadm -k 0
vm_on_exit iscsiadm -m node -T "$iqn" -p "$portal" --logout
discovered=$(iscsiadm -m discovery -t sendtargets -p "$portal" 2>&1) || vm_fail "discovery failed: $discovered"
echo "  $discovered"
grep -qx "$portal,1 $iqn" <<< "$discovered" || vm_fail "discovery did not list $iqn at $portal"

vm_step "log in; the LUN appears as a block device"
vm_check "login" iscsiadm -m node -T "$iqn" -p "$portal" --login
udevadm settle --timeout=30
vm_wait_for 30 test -b "$by_path"
device=$(readlink -f "$by_path")
echo "  $by_path -> $device"
[[ "$device" =~ ^/dev/sd[a-z]+$ ]] || vm_fail "the by-path link does not lead to a SCSI disk: $device"
session=$(iscsiadm -m session 2>&1) || vm_fail "no session listed: $session"
echo "  session: $session"
expected_size=$(blockdev --getsize64 "$VM_DISK")
size=$(blockdev --getsize64 "$device")
[ "$size" = "$expected_size" ] || vm_fail "LUN size $size differs from its backing disk's $expected_size"

vm_step "data written through the initiator reaches the backing disk, and back"
head -c 1048576 /dev/urandom > /tmp/pattern
vm_check "write through iSCSI" dd if=/tmp/pattern of="$device" bs=1M count=1 seek=7 oflag=direct status=none
read_back=$(dd if="$VM_DISK" bs=1M count=1 skip=7 iflag=direct status=none | sha256sum)
[ "$read_back" = "$(sha256sum < /tmp/pattern)" ] || vm_fail "the backing disk does not hold what was written through the LUN"
head -c 1048576 /dev/urandom > /tmp/pattern2
vm_check "write the backing disk" dd if=/tmp/pattern2 of="$VM_DISK" bs=1M count=1 seek=9 oflag=direct status=none
read_back=$(dd if="$device" bs=1M count=1 skip=9 iflag=direct status=none | sha256sum)
[ "$read_back" = "$(sha256sum < /tmp/pattern2)" ] || vm_fail "reading through the LUN does not return the backing disk's data"

vm_step "log out; the device and the session go away"
vm_check "logout" iscsiadm -m node -T "$iqn" -p "$portal" --logout
udevadm settle --timeout=30
vm_wait_for 30 test ! -e "$by_path"
if sessions=$(iscsiadm -m session 2>&1); then vm_fail "a session is still listed after logout: $sessions"; fi

echo "PASS: $VM_GROUP"
