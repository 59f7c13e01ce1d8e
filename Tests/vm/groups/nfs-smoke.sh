#!/bin/bash
# NFS smoke test: the kernel's nfsd exports an ext4 filesystem (made on the scratch disk) on the
# guest's own 127.0.0.1, and the kernel client mounts it with NFSv3 and NFSv4.2; a file written
# through either mount is seen by the other and by the server's filesystem. Ready for NFSSR.
# Then NFSSR's sr_probe against that server (Docs/probe.md): the export list, the SR directories
# in a serverpath (an SR made by sr_create found, a UUID directory that is no SR not), no mount
# left behind, and ENODEV for a serverpath that is not exported.
. "$VM_LIB"

. "$VM_REPO/Tests/vm/nfs-server.sh"

export_dir=/srv/nfs-smoke

vm_step "export an ext4 filesystem on $VM_DISK; start rpcbind, statd, mountd and nfsd"
vm_nfs_serve "$export_dir"

vm_step "mount with NFSv3 and write a file"
mkdir -p /mnt/v3 /mnt/v42
vm_check "v3 mount" mount -t nfs -o vers=3,proto=tcp 127.0.0.1:"$export_dir" /mnt/v3
vm_on_exit umount -f /mnt/v3
grep -q ' /mnt/v3 nfs .*vers=3' /proc/mounts || vm_fail "the v3 mount is not NFSv3: $(grep /mnt/v3 /proc/mounts)"
head -c 262144 /dev/urandom > /tmp/pattern
vm_check "write through v3" cp /tmp/pattern /mnt/v3/from-v3
sync
cmp -s /tmp/pattern "$export_dir/from-v3" || vm_fail "the server's filesystem does not hold the file written over v3"

vm_step "mount with NFSv4.2 (the pseudo-root is the export) and write a file"
vm_check "v4.2 mount" mount -t nfs -o vers=4.2 127.0.0.1:/ /mnt/v42
vm_on_exit umount -f /mnt/v42
grep -q ' /mnt/v42 nfs4 .*vers=4.2' /proc/mounts || vm_fail "the v4.2 mount is not NFSv4.2: $(grep /mnt/v42 /proc/mounts)"
cmp -s /tmp/pattern /mnt/v42/from-v3 || vm_fail "the file written over v3 reads differently over v4.2"
head -c 262144 /dev/urandom > /tmp/pattern2
vm_check "write through v4.2" cp /tmp/pattern2 /mnt/v42/from-v42
sync
cmp -s /tmp/pattern2 "$export_dir/from-v42" || vm_fail "the server's filesystem does not hold the file written over v4.2"
cmp -s /tmp/pattern2 /mnt/v3/from-v42 || vm_fail "the file written over v4.2 reads differently over v3"

vm_step "unmount both"
vm_check "v4.2 umount" umount /mnt/v42
vm_check "v3 umount" umount /mnt/v3
if grep -q ' /mnt/v' /proc/mounts; then vm_fail "an NFS mount is still there"; fi

vm_step "NFSSR sr_probe: the export list, then the SRs in the export; no mount left behind"
probe_sr=6a1d2c3b-4e5f-4a7b-8c9d-0e1f2a3b4c5d
mount_dir=/run/sr-mount
mounts_before=$(findmnt -rn -t nfs,nfs4 | wc -l)
vm_driver_ok NFSSR "<dconf><server>127.0.0.1</server></dconf>" sr_probe
echo "$DRIVER_OUT"
[ "$(vm_xml_values path <<< "$DRIVER_OUT")" = "$export_dir" ] || vm_fail "the export list is not exactly $export_dir"
[ "$(vm_xml_values clients <<< "$DRIVER_OUT")" = 127.0.0.1 ] || vm_fail "the export's clients are not 127.0.0.1"
with_path="<dconf><server>127.0.0.1</server><serverpath>$export_dir</serverpath></dconf>"
vm_driver_ok NFSSR "$with_path" sr_create "$probe_sr" 0
mkdir -p "$export_dir/$(cat /proc/sys/kernel/random/uuid)"
vm_driver_ok NFSSR "$with_path" sr_probe
echo "$DRIVER_OUT"
[ "$(vm_xml_values uuid <<< "$DRIVER_OUT")" = "$probe_sr" ] || vm_fail "sr_probe does not list exactly SR $probe_sr"
vm_xml_values path <<< "$DRIVER_OUT" | grep -qx "$export_dir/$probe_sr" || vm_fail "the SR's path on the server is not reported"
[ "$(vm_xml_values vdis <<< "$DRIVER_OUT")" = 0 ] || vm_fail "the new SR should hold 0 VDIs"
[ "$(findmnt -rn -t nfs,nfs4 | wc -l)" = "$mounts_before" ] || vm_fail "sr_probe left an NFS mount: $(findmnt -rn -t nfs,nfs4)"
[ -z "$(ls -A "$mount_dir" 2>/dev/null)" ] || vm_fail "sr_probe left $(ls -A "$mount_dir") in $mount_dir"
vm_driver_status 19 NFSSR "<dconf><server>127.0.0.1</server><serverpath>/not/exported</serverpath></dconf>" sr_probe
[ -z "$(ls -A "$mount_dir" 2>/dev/null)" ] || vm_fail "the failed sr_probe left $(ls -A "$mount_dir") in $mount_dir"

echo "PASS: $VM_GROUP"
