#!/bin/bash
# The three iSCSI drivers, built binaries, against tgtd and the kernel initiator on 127.0.0.1.
#   ISCSISR: sr_attach logs in; sr_scan lists every LUN with its size, not visible by default, each
#     VDI UUID the name-based UUID of the LUN's SCSI id; vdi_attach returns the LUN's by-path
#     block device (aio); sr_detach is EBUSY with a VDI attached, then logs out; provisioning
#     verbs are ENOSYS.
#   CHAP + localIQN: a target that only admits one initiator name with one CHAP account; a wrong
#     password is EPERM and leaves no session, and is EPERM too while the right one's session is
#     logged in (sr_attach, sr_create), changing neither session nor node record; the right one
#     logs in and a second SR with it shares the session; the password never appears
#     in any process's argv (sampled during the calls), in the SMlog or in a message, and the node
#     record holding it is mode 0600.
#   EXToISCSISR on LUN 1 and LVMoISCSISR on LUNs 2,3 of one target at once (LVMoISCSISR's VG
#     shared through sanlock and lvmlockd, started here for one host): one session shared;
#     detaching one SR keeps the other's LUNs; the last detach logs out; full lifecycles, with
#     data written through the LV; sr_create and sr_delete log in only for the call.
. "$VM_LIB"

iqn=iqn.2007-10.test.sm-vm-lane:drivers
chap_iqn=iqn.2007-10.test.sm-vm-lane:chap
host_initiator=iqn.2007-10.test.sm-vm-lane:host
local_iqn=iqn.2007-10.test.sm-vm-lane:sm-local
portal=127.0.0.1:3260
namespace=5b0e6f1c-8d2a-4e73-9a41-c7f3d2b8e096
password=Sup3r-s3cret-pw
iscsi_sr=8c6f2a10-4d3b-4e5f-9a1c-2b7d8e9f0a11
chap_sr=8c6f2a10-4d3b-4e5f-9a1c-2b7d8e9f0a22
chap_sr2=8c6f2a10-4d3b-4e5f-9a1c-2b7d8e9f0a23
ext_sr=8c6f2a10-4d3b-4e5f-9a1c-2b7d8e9f0a33
lvm_sr=8c6f2a10-4d3b-4e5f-9a1c-2b7d8e9f0a44
vdi=1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9
lv_vdi=2f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9
base="<target>127.0.0.1</target><targetIQN>$iqn</targetIQN>"
iscsi_dconf="<dconf>$base</dconf>"
ext_dconf="<dconf>$base<LUNid>1</LUNid></dconf>"
lvm_dconf="<dconf>$base<LUNid>2,3</LUNid></dconf>"
chap_base="<target>127.0.0.1</target><targetIQN>$chap_iqn</targetIQN><localIQN>$local_iqn</localIQN><chapuser>smuser</chapuser>"
by_path="/dev/disk/by-path/ip-$portal-iscsi-$iqn-lun"
vg="VG_XenStorage-$lvm_sr"

sessions() { iscsiadm -m session 2>/dev/null | grep -c -- "$1" || true; }

vm_step "tgtd: $iqn with LUNs 1, 2, 3 = 1 GiB slices of $VM_DISK; $chap_iqn with CHAP, for $local_iqn only"
vm_check "modprobe" modprobe -a iscsi_tcp sd_mod dm_mod
# LUNs 2 and 3 hold LVMoISCSISR's shared VG, whose lvmlock volume LVM made 1 GiB (256 extents)
# on file-backed LUNs, and sanlock writes all of it: they are slices of the scratch disk (loop
# devices at 1 GiB and 2 GiB), not files in the guest's RAM. LUN 1 is the first GiB.
vm_check "modprobe loop" modprobe loop
lun1=$(losetup -f --show --offset 0 --sizelimit $((1 << 30)) "$VM_DISK") || vm_fail "no loop device for LUN 1"
vm_on_exit losetup -d "$lun1"
lun2=$(losetup -f --show --offset $((1 << 30)) --sizelimit $((1 << 30)) "$VM_DISK") || vm_fail "no loop device for LUN 2"
vm_on_exit losetup -d "$lun2"
lun3=$(losetup -f --show --offset $((2 << 30)) --sizelimit $((1 << 30)) "$VM_DISK") || vm_fail "no loop device for LUN 3"
vm_on_exit losetup -d "$lun3"
truncate -s 256M /tmp/lun4.img
tgtd || vm_fail "tgtd did not start"
vm_on_exit rm -f /tmp/lun4.img
vm_on_exit tgtadm --op delete --mode system
vm_on_exit tgtadm --lld iscsi --op delete --mode target --tid 2 --force
vm_on_exit tgtadm --lld iscsi --op delete --mode target --tid 1 --force
vm_wait_for 10 tgtadm --lld iscsi --op show --mode target
vm_check "target 1" tgtadm --lld iscsi --op new --mode target --tid 1 -T "$iqn"
vm_check "LUN 1" tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$lun1"
vm_check "LUN 2" tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 2 -b "$lun2"
vm_check "LUN 3" tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 3 -b "$lun3"
vm_check "bind 1" tgtadm --lld iscsi --op bind --mode target --tid 1 -I 127.0.0.1
vm_check "target 2" tgtadm --lld iscsi --op new --mode target --tid 2 -T "$chap_iqn"
vm_check "LUN 2/1" tgtadm --lld iscsi --op new --mode logicalunit --tid 2 --lun 1 -b /tmp/lun4.img
vm_check "bind 2" tgtadm --lld iscsi --op bind --mode target --tid 2 --initiator-name "$local_iqn"
vm_check "account" tgtadm --lld iscsi --op new --mode account --user smuser --password "$password"
vm_check "bind account" tgtadm --lld iscsi --op bind --mode account --tid 2 --user smuser
echo "InitiatorName=$host_initiator" > /etc/iscsi/initiatorname.iscsi
iscsid || vm_fail "iscsid did not start"
vm_on_exit iscsiadm -k 0
vm_on_exit iscsiadm -m node --logoutall=all
vm_on_exit vgremove -f "$vg"
vm_on_exit vgchange -an "$vg"
vm_on_exit umount -l "/run/sr-mount/$ext_sr"

vm_step "ISCSISR: sr_attach logs in; sr_scan lists the three LUNs, invisible by default, UUIDs from SCSI ids"
vm_driver_ok ISCSISR "$iscsi_dconf" sr_attach "$iscsi_sr"
[ "$(sessions "$iqn")" = 1 ] || vm_fail "sr_attach did not leave exactly one session: $(iscsiadm -m session 2>&1)"
vm_driver_ok ISCSISR "$iscsi_dconf" sr_attach "$iscsi_sr"
[ "$(sessions "$iqn")" = 1 ] || vm_fail "a second sr_attach changed the sessions"
vm_driver_ok ISCSISR "$iscsi_dconf" sr_scan "$iscsi_sr"
[ "$(vm_xml_values default_vdi_visibility <<< "$DRIVER_OUT")" = False ] || vm_fail "default_vdi_visibility is not False: $DRIVER_OUT"
uuids=$(vm_xml_values uuid <<< "$DRIVER_OUT" | tail -n +2 | sort)
[ "$(wc -l <<< "$uuids")" = 3 ] || vm_fail "sr_scan does not list 3 LUNs: $DRIVER_OUT"
for lun in 1 2 3; do
    device="$by_path-$lun"
    id=$(/lib/udev/scsi_id -g -u -d "$device") || vm_fail "no SCSI id for $device"
    expected=$(python3 -c 'import sys, uuid; print(uuid.uuid5(uuid.UUID(sys.argv[1]), sys.argv[2]))' "$namespace" "$id")
    grep -qx "$expected" <<< "$uuids" || vm_fail "LUN $lun (SCSI id $id): expected VDI $expected in $uuids"
    size=$(tr -d '\n' <<< "$DRIVER_OUT" | sed 's|</vdi>|&\n|g' | grep "<uuid>$expected</uuid>" | vm_xml_values size)
    [ "$size" = "$(blockdev --getsize64 "$device")" ] || vm_fail "LUN $lun: sr_scan size $size differs from the device's"
    [ "$lun" = 2 ] && lun2_vdi=$expected
done
echo "  LUN 2 is VDI $lun2_vdi"

vm_step "ISCSISR: vdi_attach returns LUN 2's block device; sr_detach is EBUSY until vdi_detach; ENOSYS verbs"
vm_driver_ok ISCSISR "$iscsi_dconf" vdi_attach "$iscsi_sr" "$lun2_vdi"
path=$(vm_xml_values path <<< "$DRIVER_OUT")
[ "$path" = "$by_path-2" ] && [ -b "$path" ] || vm_fail "vdi_attach returned '$path', expected the block device $by_path-2"
[ "$(vm_xml_values type <<< "$DRIVER_OUT")" = aio ] || vm_fail "vdi_attach type is not aio: $DRIVER_OUT"
vm_driver_status 19 ISCSISR "$iscsi_dconf" vdi_attach "$iscsi_sr" "$vdi"
vm_driver_status 16 ISCSISR "$iscsi_dconf" sr_detach "$iscsi_sr"
vm_driver_status 38 ISCSISR "$iscsi_dconf" vdi_create "$iscsi_sr" "$vdi" 1048576
vm_driver_status 38 ISCSISR "$iscsi_dconf" vdi_delete "$iscsi_sr" "$lun2_vdi"
vm_driver_status 38 ISCSISR "$iscsi_dconf" sr_create "$iscsi_sr" 0
vm_driver_ok ISCSISR "$iscsi_dconf" vdi_detach "$iscsi_sr" "$lun2_vdi"
vm_driver_ok ISCSISR "$iscsi_dconf" sr_detach "$iscsi_sr"
[ "$(sessions "$iqn")" = 0 ] || vm_fail "sr_detach left a session: $(iscsiadm -m session 2>&1)"
vm_driver_ok ISCSISR "$iscsi_dconf" sr_detach "$iscsi_sr"
vm_driver_status 19 ISCSISR "$iscsi_dconf" sr_scan "$iscsi_sr"

vm_step "CHAP and localIQN: the wrong password is EPERM with and without a session; the right one logs in; the password leaks nowhere"
# The dconfs go through files, so no process on this machine should ever show the password in argv.
umask 077
echo "<dconf>$chap_base<chappassword>wrong-password1</chappassword></dconf>" > /tmp/chap-wrong.dconf
echo "<dconf>$chap_base<chappassword>wrong-password1</chappassword><LUNid>1</LUNid></dconf>" > /tmp/chap-wrong-ext.dconf
echo "<dconf>$(sed "s|$local_iqn|$host_initiator|" <<< "$chap_base")<chappassword>$password</chappassword></dconf>" > /tmp/chap-other.dconf
echo "<dconf>$chap_base<chappassword>$password</chappassword></dconf>" > /tmp/chap.dconf
umask 022
( while :; do cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' '; echo; sleep 0.05; done ) > /tmp/cmdlines &
sampler=$!
vm_on_exit kill "$sampler"
vm_driver_status 1 ISCSISR @/tmp/chap-wrong.dconf sr_attach "$chap_sr"
wrong_err=$DRIVER_ERR
[ "$(sessions "$chap_iqn")" = 0 ] || vm_fail "a refused login left a session"
vm_driver ISCSISR @/tmp/chap-other.dconf sr_attach "$chap_sr"
[ "$DRIVER_STATUS" = 1 ] || [ "$DRIVER_STATUS" = 19 ] || vm_fail "another initiator name was not refused (exit $DRIVER_STATUS)"
[ "$(sessions "$chap_iqn")" = 0 ] || vm_fail "a refused initiator left a session"
vm_driver_ok ISCSISR @/tmp/chap.dconf sr_attach "$chap_sr"
attach_err=$DRIVER_ERR
[ "$(sessions "$chap_iqn")" = 1 ] || vm_fail "the CHAP login made no session"
iscsiadm -m session -P 1 | grep -q "Iface Initiatorname: $local_iqn" || vm_fail "the session does not use initiator name $local_iqn"
# The pattern from a file (echo is a builtin): grep's own argv must not show the password to the sampler.
(umask 077; echo "node.session.auth.password = $password" > /tmp/chap-pattern)
record=$(grep -rlF -f /tmp/chap-pattern /etc/iscsi/nodes) || vm_fail "no node record holds the CHAP password"
[ "$(stat -c %a "$record")" = 600 ] || vm_fail "the node record $record with the password is mode $(stat -c %a "$record")"
echo "  the kernel shows the session's CHAP user as '$(cat /sys/class/iscsi_session/session*/username 2>&1 | tr '\n' ' ')'"
# With the session logged in, iscsiadm answers "already logged in" to any password: the drivers
# must compare the dconf's credentials with the session's and refuse, changing nothing.
record_before=$(sha256sum "$record")
vm_driver_status 1 ISCSISR @/tmp/chap-wrong.dconf sr_attach "$chap_sr2"
reuse_err=$DRIVER_ERR
grep -q "chappassword" <<< "$reuse_err" || vm_fail "the refusal does not name chappassword: $reuse_err"
vm_driver_status 1 ISCSISR @/tmp/chap-wrong.dconf sr_attach "$chap_sr"
vm_driver_status 1 EXToISCSISR @/tmp/chap-wrong-ext.dconf sr_create "$chap_sr2" 0
[ "$(sessions "$chap_iqn")" = 1 ] || vm_fail "a refused password changed the CHAP session: $(iscsiadm -m session 2>&1)"
[ "$(sha256sum "$record")" = "$record_before" ] || vm_fail "a refused password rewrote the node record"
vm_driver_status 19 ISCSISR @/tmp/chap-wrong.dconf sr_scan "$chap_sr2"
vm_driver_ok ISCSISR @/tmp/chap.dconf sr_attach "$chap_sr2"
[ "$(sessions "$chap_iqn")" = 1 ] || vm_fail "the right password on a second SR did not reuse the session"
vm_driver_ok ISCSISR @/tmp/chap.dconf sr_detach "$chap_sr2"
[ "$(sessions "$chap_iqn")" = 1 ] || vm_fail "detaching the second SR logged out the first"
vm_driver_ok ISCSISR @/tmp/chap.dconf sr_scan "$chap_sr"
[ "$(vm_xml_values uuid <<< "$DRIVER_OUT" | tail -n +2 | wc -l)" = 1 ] || vm_fail "the CHAP target's LUN is not listed: $DRIVER_OUT"
vm_driver_ok ISCSISR @/tmp/chap.dconf sr_detach "$chap_sr"
"$SM_BIN_DIR/ISCSISR" --verbose @/tmp/chap.dconf sr_attach "$chap_sr" > /tmp/verbose.out 2>&1 || vm_fail "verbose sr_attach failed: $(cat /tmp/verbose.out)"
grep -q "chappassword=\*\*\*" /tmp/verbose.out || vm_fail "--verbose does not show the masked dconf: $(cat /tmp/verbose.out)"
vm_driver_ok ISCSISR @/tmp/chap.dconf sr_detach "$chap_sr"
kill "$sampler"; wait "$sampler" 2>/dev/null
echo "  $(grep -c iscsiadm /tmp/cmdlines) argv samples showed iscsiadm running"
for secret in "$password" wrong-password1; do
    if grep -q -- "$secret" /tmp/cmdlines; then vm_fail "a CHAP password appeared in a process's argv"; fi
    if printf '%s\n' "$wrong_err" "$attach_err" "$reuse_err" | cat - /tmp/verbose.out /var/log/SMlog 2>/dev/null | grep -q -- "$secret"; then
        vm_fail "a CHAP password appeared in the SMlog, --verbose output or a message"
    fi
done
[ "$(sessions "$chap_iqn")" = 0 ] || vm_fail "sr_detach left the CHAP session"

vm_step "EXToISCSISR on LUN 1: sr_create logs in only for the call; sr_attach mounts the LUN's ext4"
vm_driver_ok EXToISCSISR "$ext_dconf" sr_create "$ext_sr" $((256 * 1024 * 1024))
[ "$(sessions "$iqn")" = 0 ] || vm_fail "sr_create left a session"
[ "$(blkid -p -o value -s TYPE "$lun1")" = ext4 ] || vm_fail "sr_create made no ext4 on LUN 1's backing disk"
vm_driver_ok EXToISCSISR "$ext_dconf" sr_attach "$ext_sr"
source=$(findmnt -n -o SOURCE --mountpoint "/run/sr-mount/$ext_sr") || vm_fail "nothing mounted at /run/sr-mount/$ext_sr"
[ "$(readlink -f "$source")" = "$(readlink -f "$by_path-1")" ] || vm_fail "mounted $source, not LUN 1"
vm_driver_ok EXToISCSISR "$ext_dconf" vdi_create "$ext_sr" "$vdi" $((64 * 1024 * 1024))
vm_driver_ok EXToISCSISR "$ext_dconf" vdi_attach "$ext_sr" "$vdi"
vhd=$(vm_xml_values path <<< "$DRIVER_OUT")
[ -f "$vhd" ] || vm_fail "vdi_attach returned $vhd, not a file"

vm_step "LVMoISCSISR on LUNs 2,3 of the same target (a shared VG: sanlock and lvmlockd, host id 1): sr_create, sr_attach shares the session"
# LVMoISCSISR's volume group is shared through lvmlockd and sanlock (Docs/LVMoISCSISR.md); one
# host here, the watchdog off and sanlock's I/O timeout at 2 s (Tests/vm/groups/lvm-shared.sh
# has two hosts).
# (/run/lvm holds lvmlockd's socket; systemd-tmpfiles makes it on a real host, nothing here.)
mkdir -p /run/lvm /run/lock/lvm
sanlock daemon -w 0 -U root -G root -L -1 -S 3 </dev/null >/dev/null 2>&1 || vm_fail "sanlock did not start"
vm_on_exit sanlock client shutdown -f 1
lvmlockd -g sanlock -o 2 </dev/null >/dev/null 2>&1 || vm_fail "lvmlockd did not start"
vm_on_exit lvmlockctl --quit
vm_wait_for 10 lvmlockctl --info
export SM_SANLOCK_HOST_ID=1
# LUNs 2 and 3 are loop devices in this same kernel: LVM must see only the iSCSI disks, or it
# finds every physical volume twice and refuses changes.
no_loops='devices { global_filter = [ "r|^/dev/loop|" ] }'
export SM_LVM_CONFIG=$no_loops
# LVM as the driver runs it (with lvmlockd); a plain `vgs` ignores shared volume groups.
shared_vgs() { LVM_SYSTEM_DIR=/run/sm/lvm-sanlock vgs --config "$no_loops" "$@"; }
vm_driver_ok LVMoISCSISR "$lvm_dconf" sr_create "$lvm_sr" 0
[ "$(sessions "$iqn")" = 1 ] || vm_fail "sr_create of a second SR changed the shared session"
[ "$(shared_vgs --noheadings -o vg_lock_type "$vg" 2>/dev/null | tr -d ' ')" = sanlock ] || vm_fail "no shared VG $vg after sr_create"
vm_driver_ok LVMoISCSISR "$lvm_dconf" sr_attach "$lvm_sr"
vm_driver_ok LVMoISCSISR "$lvm_dconf" vdi_create "$lvm_sr" "$lv_vdi" $((32 * 1024 * 1024))
vm_driver_ok LVMoISCSISR "$lvm_dconf" vdi_attach "$lvm_sr" "$lv_vdi"
lv_path=$(vm_xml_values path <<< "$DRIVER_OUT")
udevadm settle --timeout=30
[ -b "$lv_path" ] || vm_fail "vdi_attach returned $lv_path, not a block device"
head -c 4194304 /dev/urandom > /tmp/pattern
vm_check "write the LV" dd if=/tmp/pattern of="$lv_path" bs=1M oflag=direct status=none
vm_driver_status 16 LVMoISCSISR "$lvm_dconf" sr_detach "$lvm_sr"

vm_step "EXToISCSISR: sr_detach is EBUSY with a VDI attached; afterwards it unmounts and keeps the shared session"
vm_driver_status 16 EXToISCSISR "$ext_dconf" sr_detach "$ext_sr"
vm_driver_ok EXToISCSISR "$ext_dconf" vdi_detach "$ext_sr" "$vdi"
vm_driver_ok EXToISCSISR "$ext_dconf" vdi_delete "$ext_sr" "$vdi"
vm_driver_ok EXToISCSISR "$ext_dconf" sr_detach "$ext_sr"
if findmnt --mountpoint "/run/sr-mount/$ext_sr" >/dev/null; then vm_fail "sr_detach left the SR mounted"; fi
[ "$(sessions "$iqn")" = 1 ] && [ -b "$lv_path" ] || vm_fail "detaching the EXT SR logged out the LVM SR's LUNs"
vm_driver_ok EXToISCSISR "$ext_dconf" sr_delete "$ext_sr"
if found=$(blkid -p "$lun1" 2>&1); then vm_fail "sr_delete left $found on LUN 1"; fi

vm_step "LVMoISCSISR: data reads back after detach and attach; the last sr_detach logs out; sr_delete"
vm_driver_ok LVMoISCSISR "$lvm_dconf" vdi_detach "$lvm_sr" "$lv_vdi"
vm_driver_ok LVMoISCSISR "$lvm_dconf" vdi_attach "$lvm_sr" "$lv_vdi"
udevadm settle --timeout=30
[ "$(head -c 4194304 "$lv_path" | sha256sum)" = "$(sha256sum < /tmp/pattern)" ] || vm_fail "the LV does not read back what was written"
vm_driver_ok LVMoISCSISR "$lvm_dconf" vdi_detach "$lvm_sr" "$lv_vdi"
vm_driver_ok LVMoISCSISR "$lvm_dconf" sr_scan "$lvm_sr"
vm_xml_values uuid <<< "$DRIVER_OUT" | grep -qx "$lv_vdi" || vm_fail "sr_scan does not list $lv_vdi: $DRIVER_OUT"
vm_driver_status 38 LVMoISCSISR "$lvm_dconf" vdi_snapshot "$lvm_sr" "$lv_vdi" "$vdi"
vm_driver_ok LVMoISCSISR "$lvm_dconf" sr_detach "$lvm_sr"
[ "$(sessions "$iqn")" = 0 ] || vm_fail "the last sr_detach did not log out: $(iscsiadm -m session 2>&1)"
vm_driver_status 16 LVMoISCSISR "$lvm_dconf" sr_delete "$lvm_sr"
[ "$(sessions "$iqn")" = 0 ] || vm_fail "a refused sr_delete left a session"
vm_driver_ok LVMoISCSISR "$lvm_dconf" sr_attach "$lvm_sr"
vm_driver_ok LVMoISCSISR "$lvm_dconf" vdi_delete "$lvm_sr" "$lv_vdi"
vm_driver_ok LVMoISCSISR "$lvm_dconf" sr_detach "$lvm_sr"
vm_driver_ok LVMoISCSISR "$lvm_dconf" sr_delete "$lvm_sr"
if vgs --config "$no_loops" --shared "$vg" >/dev/null 2>&1; then vm_fail "sr_delete left VG $vg"; fi
[ "$(sessions "$iqn")" = 0 ] || vm_fail "sr_delete left a session"

echo "PASS: $VM_GROUP"
