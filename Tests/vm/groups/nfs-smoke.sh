#!/bin/bash
# NFS smoke test: the kernel's nfsd exports an ext4 filesystem (made on the scratch disk) on the
# guest's own 127.0.0.1, and the kernel client mounts it with NFSv3 and NFSv4.2; a file written
# through either mount is seen by the other and by the server's filesystem. Ready for NFSSR.
. "$VM_LIB"

export_dir=/srv/nfs-smoke
pids=()
stop_daemons() { local pid; for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done; }

vm_step "load nfsd and the client's modules"
vm_check "modprobe" modprobe -a nfsd nfs nfsv3 nfsv4

vm_step "make an ext4 filesystem on $VM_DISK and export it"
vm_check "mkfs.ext4" mkfs.ext4 -q -F "$VM_DISK"
mkdir -p "$export_dir"
vm_check "mount the export's filesystem" mount -t ext4 "$VM_DISK" "$export_dir"
vm_on_exit umount "$export_dir"
echo "$export_dir 127.0.0.1(rw,sync,no_subtree_check,no_root_squash,fsid=0)" > /etc/exports

vm_step "start rpcbind, statd, mountd and nfsd (short v4 grace period)"
mkdir -p /run/rpc_pipefs
mountpoint -q /run/rpc_pipefs || vm_check "rpc_pipefs" mount -t rpc_pipefs sunrpc /run/rpc_pipefs
mountpoint -q /proc/fs/nfsd || vm_check "nfsd fs" mount -t nfsd nfsd /proc/fs/nfsd
vm_on_exit stop_daemons
vm_on_exit rpc.nfsd 0
vm_on_exit exportfs -ua
rpcbind -w || vm_fail "rpcbind did not start"
pids+=("$(pidof rpcbind)")
rpc.statd --no-notify || vm_fail "rpc.statd did not start"
pids+=("$(pidof rpc.statd)")
vm_check "exportfs" exportfs -ra
echo 10 > /proc/fs/nfsd/nfsv4gracetime
echo 10 > /proc/fs/nfsd/nfsv4leasetime
rpc.mountd || vm_fail "rpc.mountd did not start"
pids+=("$(pidof rpc.mountd)")
vm_check "rpc.nfsd" rpc.nfsd 4
versions=$(cat /proc/fs/nfsd/versions)
echo "  nfsd versions: $versions"
vm_check "the export is listed" showmount -e 127.0.0.1

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

echo "PASS: $VM_GROUP"
