# The kernel NFS server for VM-lane groups (sourced after lib.sh; runs inside the guest).
#
#   vm_nfs_serve DIR [CLIENT...]
#                      makes an ext4 filesystem on the group's scratch disk, mounts it at DIR and
#                      exports DIR to each CLIENT (default 127.0.0.1; a subnet such as
#                      192.168.77.0/24 for namespace hosts) with fsid=0 (so NFSv4 paths are
#                      relative to DIR: v3 mounts 127.0.0.1:DIR/x, v4 mounts 127.0.0.1:/x); starts
#                      rpcbind, statd, mountd and nfsd with a 10 s v4 grace period. Everything is
#                      stopped and unmounted when the group ends (vm_on_exit).

VM_NFS_PIDS=()
vm_nfs_stop_daemons() { local pid; for pid in "${VM_NFS_PIDS[@]}"; do kill "$pid" 2>/dev/null; done; }

vm_nfs_serve() {
    local export_dir=$1 client line
    shift
    [ $# -gt 0 ] || set -- 127.0.0.1
    vm_check "modprobe" modprobe -a nfsd nfs nfsv3 nfsv4
    vm_check "mkfs.ext4" mkfs.ext4 -q -F "$VM_DISK"
    mkdir -p "$export_dir"
    vm_check "mount the export's filesystem" mount -t ext4 "$VM_DISK" "$export_dir"
    vm_on_exit umount "$export_dir"
    line=$export_dir
    for client in "$@"; do line+=" $client(rw,sync,no_subtree_check,no_root_squash,fsid=0)"; done
    echo "$line" > /etc/exports

    mkdir -p /run/rpc_pipefs
    mountpoint -q /run/rpc_pipefs || vm_check "rpc_pipefs" mount -t rpc_pipefs sunrpc /run/rpc_pipefs
    mountpoint -q /proc/fs/nfsd || vm_check "nfsd fs" mount -t nfsd nfsd /proc/fs/nfsd
    vm_on_exit vm_nfs_stop_daemons
    vm_on_exit rpc.nfsd 0
    vm_on_exit exportfs -ua
    rpcbind -w || vm_fail "rpcbind did not start"
    VM_NFS_PIDS+=("$(pidof rpcbind)")
    rpc.statd --no-notify || vm_fail "rpc.statd did not start"
    VM_NFS_PIDS+=("$(pidof rpc.statd)")
    vm_check "exportfs" exportfs -ra
    echo 10 > /proc/fs/nfsd/nfsv4gracetime
    echo 10 > /proc/fs/nfsd/nfsv4leasetime
    rpc.mountd || vm_fail "rpc.mountd did not start"
    VM_NFS_PIDS+=("$(pidof rpc.mountd)")
    vm_check "rpc.nfsd" rpc.nfsd 4
    echo "  nfsd versions: $(cat /proc/fs/nfsd/versions)"
    vm_check "the export is listed" showmount -e 127.0.0.1
}
