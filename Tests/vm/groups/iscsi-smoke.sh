#!/bin/bash
# iSCSI smoke test: the lane's target (tgtd) and initiator (open-iscsi, the kernel's iscsi_tcp)
# work on the guest's own 127.0.0.1. A LUN backed by the scratch disk is discovered, logged in to,
# appears as a SCSI block device under its /dev/disk/by-path name, carries data both ways, and
# goes away again on logout. Ready for the iSCSI drivers' groups.
# Then the iSCSI drivers' sr_probe against that target (Docs/probe.md): while logged in, the probe
# uses the session and leaves it; after the logout, with an EXT SR written
# on the backing disk: the portal's targets (no record kept), the target's LUN with its size,
# SCSI id, vendor, VDI UUID and the SR on it, and afterwards no session, no LUN device and no
# node or discovery record left (LVMoISCSISR's probe, which is ISCSISR's plus the LUNs' volume
# groups: here none); an unadvertised targetIQN is ENODEV, leaving nothing either.
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

vm_step "ISCSISR sr_probe while this host is logged in: LUN 1 listed, the session and its records left as they were"
records_before=$(iscsiadm -m node 2>&1)
vm_driver_ok ISCSISR "<dconf><target>127.0.0.1</target><targetIQN>$iqn</targetIQN></dconf>" sr_probe
[ "$(vm_xml_values number <<< "$DRIVER_OUT")" = 1 ] || vm_fail "the LUNs listed are not exactly LUN 1: $DRIVER_OUT"
[ "$(vm_xml_values path <<< "$DRIVER_OUT")" = "$by_path" ] || vm_fail "LUN 1's path is not $by_path: $DRIVER_OUT"
[ "$(iscsiadm -m session 2>&1)" = "$session" ] || vm_fail "the session changed: $(iscsiadm -m session 2>&1)"
[ "$(iscsiadm -m node 2>&1)" = "$records_before" ] || vm_fail "the node records changed: $(iscsiadm -m node 2>&1)"
test -b "$by_path" || vm_fail "the LUN's device went away"

vm_step "log out; the device and the session go away"
vm_check "logout" iscsiadm -m node -T "$iqn" -p "$portal" --logout
udevadm settle --timeout=30
vm_wait_for 30 test ! -e "$by_path"
if sessions=$(iscsiadm -m session 2>&1); then vm_fail "a session is still listed after logout: $sessions"; fi

vm_step "sr_probe without targetIQN: the portal's targets, no record kept"
probe_sr=3f2a9c4e-0b1d-4c6e-9a8f-1e2d3c4b5a69
namespace=5b0e6f1c-8d2a-4e73-9a41-c7f3d2b8e096
vm_check "forget the node records" iscsiadm -m node -T "$iqn" -o delete
iscsiadm -m discoverydb -t sendtargets -p "$portal" -o delete >/dev/null 2>&1 || true
# The first 64 MiB are enough for libblkid to find the SR (EXTSR labels it so), and quick to make.
vm_check "an EXT SR on the backing disk" mkfs.ext4 -q -F -E nodiscard -U "$probe_sr" -L "SR-${probe_sr:0:8}" "$VM_DISK" 64M
no_records() {
    if records=$(iscsiadm -m node 2>&1); then vm_fail "$1 left node records: $records"; fi
    [ -z "$(ls -A /etc/iscsi/send_targets 2>/dev/null)" ] || vm_fail "$1 left a discovery record: $(ls /etc/iscsi/send_targets)"
    if sessions=$(iscsiadm -m session 2>&1); then vm_fail "$1 left a session: $sessions"; fi
    [ ! -e "$by_path" ] || vm_fail "$1 left the LUN's device $by_path"
}
vm_driver_ok ISCSISR "<dconf><target>127.0.0.1</target></dconf>" sr_probe
echo "$DRIVER_OUT"
[ "$(vm_xml_values iqn <<< "$DRIVER_OUT")" = "$iqn" ] || vm_fail "the targets listed are not exactly $iqn"
[ "$(vm_xml_values portal <<< "$DRIVER_OUT")" = "$portal" ] || vm_fail "the target's portal is not $portal"
no_records "sr_probe without targetIQN"
# One login for the LUN probe (under TCG each login and logout costs seconds): LVMoISCSISR's,
# which is ISCSISR's (the same ISCSIProbe) plus the volume groups on the LUNs.
vm_step "LVMoISCSISR sr_probe of $iqn: LUN 1 (size, SCSI id, vendor, VDI UUID), the EXT SR on it, no volume group; logged out after"
vm_driver_ok LVMoISCSISR "<dconf><target>127.0.0.1</target><targetIQN>$iqn</targetIQN></dconf>" sr_probe
echo "$DRIVER_OUT"
[ "$(vm_xml_values number <<< "$DRIVER_OUT")" = 1 ] || vm_fail "the LUNs listed are not exactly LUN 1"
[ "$(vm_xml_values size <<< "$DRIVER_OUT")" = "$expected_size" ] || vm_fail "LUN 1's size is not $expected_size"
scsi_id=$(vm_xml_values scsi_id <<< "$DRIVER_OUT")
[ -n "$scsi_id" ] || vm_fail "no SCSI id"
[ -n "$(vm_xml_values vendor <<< "$DRIVER_OUT")" ] || vm_fail "no vendor"
vdi_uuid=$(python3 -c 'import sys, uuid; print(uuid.uuid5(uuid.UUID(sys.argv[1]), sys.argv[2]))' "$namespace" "$scsi_id")
[ "$(vm_xml_values vdi_uuid <<< "$DRIVER_OUT")" = "$vdi_uuid" ] || vm_fail "the VDI UUID is not uuid5(namespace, SCSI id) = $vdi_uuid"
[ "$(vm_xml_values uuid <<< "$DRIVER_OUT")" = "$probe_sr" ] || vm_fail "the EXT SR $probe_sr on LUN 1 is not reported"
[ "$(vm_xml_values driver <<< "$DRIVER_OUT" | tail -n 1)" = EXTSR ] || vm_fail "the SR on LUN 1 is not named an EXTSR"
if grep -q "<volume_group>" <<< "$DRIVER_OUT"; then vm_fail "a volume group is reported on an ext4 LUN"; fi
no_records "sr_probe of $iqn"
vm_driver_status 19 ISCSISR "<dconf><target>127.0.0.1</target><targetIQN>$iqn-absent</targetIQN></dconf>" sr_probe
no_records "a failed sr_probe"

echo "PASS: $VM_GROUP"
