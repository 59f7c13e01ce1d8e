#!/bin/bash
# NFSSR against the guest's kernel NFS server (an ext4 export on the scratch disk), through the
# kernel NFS client, once with nfsversion=3 and once with nfsversion=4.1: sr_create (a directory
# on the server, no mount left), sr_attach (an NFS mount of that directory with the documented
# options; idempotent), vdi_create (a VHD file on the server), vdi_attach (a VHD under the mount
# point), sr_detach refused while attached, vdi_detach, vdi_resize, sr_scan (sizes checked
# against the server's filesystem), vdi_lock/vdi_unlock (lock files on the export), vdi_delete,
# sr_delete (ENOSYS, the directory stays), sr_detach (no mount left). Also: sr_attach of an SR
# that does not exist and sr_create on a missing serverpath are ENODEV, sr_create with a Size
# larger than the export is ENOSPC, and none of them leaves a mount.
. "$VM_LIB"
. "$VM_REPO/Tests/vm/nfs-server.sh"

export_dir=/srv/nfs-sm
mount_dir=/run/sr-mount
size=$((64 * 1024 * 1024))
new_size=$((128 * 1024 * 1024))
vdi=d41c8e6a-7f25-4b93-a0e8-1b6f3c9d2a57

vm_step "export an ext4 filesystem on $VM_DISK; start rpcbind, statd, mountd and nfsd"
vm_nfs_serve "$export_dir"
mkdir -p "$export_dir/sm"
# 32 MiB of data beside the SRs, so that the filesystem's utilisation is well above one NFS block.
vm_check "filler" dd if=/dev/urandom of="$export_dir/filler" bs=1M count=32 conv=fsync status=none

# The NFS mounts below $mount_dir, one a line ("<mount point> <type> <source>").
nfs_mounts() { findmnt -rn -t nfs,nfs4 -o TARGET,FSTYPE,SOURCE | grep " " | awk -v d="$mount_dir/" 'index($1, d) == 1' || true; }
no_nfs_mount_left() {
    local left
    left=$(nfs_mounts)
    [ -z "$left" ] || vm_fail "$1: NFS mounts are left: $left"
}
# One field of the <vdi> element for $vdi in the last sr_scan.
vdi_field() { tr -d '\n' <<< "$DRIVER_OUT" | sed 's|</vdi>|&\n|g' | grep "<uuid>$vdi</uuid>" | vm_xml_values "$1"; }
# The SR-level field of the last sr_scan (the text before the first <vdi>).
sr_field() { tr -d '\n' <<< "$DRIVER_OUT" | sed 's|<vdi>.*||' | vm_xml_values "$1"; }
within_a_block() { local difference=$(($1 - $2)); [ "${difference#-}" -le $((1024 * 1024)) ]; }
is_vhd() { [ "$(head -c 8 "$1")" = conectix ] && [ "$(tail -c 512 "$1" | head -c 8)" = conectix ]; }

# The whole lifecycle for one NFS version. $1 nfsversion, $2 serverpath as the dconf gives it
# (v3 names the server's path, v4 the path below the fsid=0 root), $3 the SR's UUID.
lifecycle() {
    local version=$1 serverpath=$2 sr=$3
    local dconf="<dconf><server>127.0.0.1</server><serverpath>$serverpath</serverpath><nfsversion>$version</nfsversion></dconf>"
    local server_dir="$export_dir/sm/$sr" mount_point="$mount_dir/$sr" expected_type=nfs
    [ "$version" = 3 ] || expected_type=nfs4
    vm_on_exit umount -l "$mount_point"

    vm_step "v$version: sr_create makes $server_dir and leaves no mount; again is EEXIST"
    vm_driver_ok NFSSR "$dconf" sr_create "$sr" 0
    [ -d "$server_dir" ] && [ -d "$server_dir/.sm" ] || vm_fail "sr_create did not make $server_dir (with .sm) on the server"
    no_nfs_mount_left "after sr_create"
    [ -z "$(ls -A "$mount_dir" 2>/dev/null)" ] || vm_fail "sr_create left $(ls -A "$mount_dir") in $mount_dir"
    vm_driver_status 17 NFSSR "$dconf" sr_create "$sr" 0
    no_nfs_mount_left "after the refused sr_create"

    vm_step "v$version: sr_attach mounts the SR directory with the documented options; again succeeds"
    vm_driver_ok NFSSR "$dconf" sr_attach "$sr"
    local line type source options
    line=$(findmnt -rn -o FSTYPE,SOURCE,OPTIONS --mountpoint "$mount_point") || vm_fail "nothing is mounted on $mount_point"
    read -r type source options <<< "$line"
    [ "$type" = "$expected_type" ] || vm_fail "$mount_point is '$type', expected $expected_type"
    [ "$source" = "127.0.0.1:$serverpath/$sr" ] || vm_fail "$mount_point is mounted from '$source', expected 127.0.0.1:$serverpath/$sr"
    local option
    for option in "vers=$version" proto=tcp timeo=100 retrans=3 soft acregmin=0 acregmax=0 acdirmin=0 acdirmax=0 nosuid nodev noexec; do
        [[ ",$options," == *",$option,"* ]] || vm_fail "the mount options lack $option: $options"
    done
    echo "  mounted: $type $source $options"
    vm_driver_ok NFSSR "$dconf" sr_attach "$sr"
    [ "$(nfs_mounts | grep -c "^$mount_point ")" = 1 ] || vm_fail "a second sr_attach changed the mounts: $(nfs_mounts)"

    vm_step "v$version: vdi_create writes a VHD file on the server; vdi_attach returns it under the mount point"
    vm_driver_ok NFSSR "$dconf" vdi_create "$sr" "$vdi" "$size"
    is_vhd "$server_dir/$vdi.vhd" || vm_fail "the server holds no VHD file $server_dir/$vdi.vhd"
    vm_driver_ok NFSSR "$dconf" vdi_attach "$sr" "$vdi"
    local path
    path=$(vm_xml_values path <<< "$DRIVER_OUT")
    [ "$path" = "$mount_point/$vdi.vhd" ] || vm_fail "vdi_attach returned '$path', expected $mount_point/$vdi.vhd"
    is_vhd "$path" || vm_fail "$path is not a VHD file"
    [ "$(vm_xml_values type <<< "$DRIVER_OUT")" = vhd ] || vm_fail "vdi_attach did not report type vhd: $DRIVER_OUT"

    vm_step "v$version: sr_detach is EBUSY while the VDI is attached; vdi_detach"
    vm_driver_status 16 NFSSR "$dconf" sr_detach "$sr"
    findmnt --mountpoint "$mount_point" >/dev/null || vm_fail "the refused sr_detach unmounted $mount_point"
    vm_driver_ok NFSSR "$dconf" vdi_detach "$sr" "$vdi"

    vm_step "v$version: vdi_resize to 128 MiB; sr_scan's sizes match the server's filesystem"
    vm_driver_ok NFSSR "$dconf" vdi_resize "$sr" "$vdi" "$new_size"
    sync
    vm_driver_ok NFSSR "$dconf" sr_scan "$sr"
    # statvfs of the mount (what the driver reports) exactly; the server's own filesystem within
    # one NFS block (the client counts in blocks of its own size).
    local blocks free fragment client_size client_used server_size server_used scanned_size scanned_used
    read -r blocks free fragment <<< "$(stat -f -c '%b %f %S' "$mount_point")"
    client_size=$((blocks * fragment)) client_used=$(((blocks - free) * fragment))
    read -r blocks free fragment <<< "$(stat -f -c '%b %f %S' "$export_dir")"
    server_size=$((blocks * fragment)) server_used=$(((blocks - free) * fragment))
    scanned_size=$(sr_field physical_size)
    scanned_used=$(sr_field physical_utilisation)
    echo "  physical_size $scanned_size (mount $client_size, server $server_size); utilisation $scanned_used (mount $client_used, server $server_used)"
    [ "$(sr_field uuid)" = "$sr" ] || vm_fail "sr_scan's uuid is '$(sr_field uuid)', expected $sr"
    [ "$scanned_size" = "$client_size" ] || vm_fail "physical_size $scanned_size, statvfs of the mount says $client_size bytes"
    [ "$scanned_used" -ge $((32 * 1024 * 1024)) ] || vm_fail "physical_utilisation $scanned_used is less than the 32 MiB written"
    [ "$scanned_used" = "$client_used" ] || vm_fail "physical_utilisation $scanned_used, statvfs of the mount says $client_used bytes"
    within_a_block "$scanned_size" "$server_size" || vm_fail "physical_size $scanned_size, the server's filesystem holds $server_size bytes"
    within_a_block "$scanned_used" "$server_used" || vm_fail "physical_utilisation $scanned_used, the server's filesystem uses $server_used bytes"
    [ "$(sr_field virtual_allocation)" = "$new_size" ] || vm_fail "virtual_allocation is '$(sr_field virtual_allocation)', expected $new_size"
    [ "$(vdi_field size)" = "$new_size" ] || vm_fail "sr_scan lists $vdi with size '$(vdi_field size)', expected $new_size"
    [ "$(vdi_field locked)" = False ] || vm_fail "sr_scan lists $vdi as locked before vdi_lock"

    vm_step "v$version: vdi_lock puts a lock file on the export; another user is ENOLCK; vdi_unlock removes it"
    vm_driver_ok NFSSR "$dconf" vdi_lock "$sr" "$vdi" FALSE host-a
    local locks
    locks=$(cd "$server_dir" && ls -A | grep "^$vdi\.vhd\.xenlk\." || true)
    [ "$locks" = "$vdi.vhd.xenlk.$(hostname).host-a.fw" ] || vm_fail "the server holds lock files '$locks', expected $vdi.vhd.xenlk.$(hostname).host-a.fw"
    vm_driver_ok NFSSR "$dconf" sr_scan "$sr"
    [ "$(vdi_field locked)" = True ] || vm_fail "sr_scan does not list $vdi as locked"
    vm_driver_status 37 NFSSR "$dconf" vdi_lock "$sr" "$vdi" FALSE host-b
    vm_driver_status 16 NFSSR "$dconf" vdi_delete "$sr" "$vdi"
    vm_driver_ok NFSSR "$dconf" vdi_unlock "$sr" "$vdi" host-a
    locks=$(cd "$server_dir" && ls -A | grep "^$vdi\.vhd\.xenlk" || true)
    [ -z "$locks" ] || vm_fail "vdi_unlock left '$locks' on the server"

    vm_step "v$version: vdi_delete removes the file on the server; sr_delete is ENOSYS and keeps the directory"
    vm_driver_ok NFSSR "$dconf" vdi_delete "$sr" "$vdi"
    [ ! -e "$server_dir/$vdi.vhd" ] || vm_fail "vdi_delete left $server_dir/$vdi.vhd on the server"
    vm_driver_ok NFSSR "$dconf" sr_scan "$sr"
    [ -z "$(vdi_field uuid)" ] || vm_fail "sr_scan still lists $vdi after vdi_delete"
    vm_driver_status 38 NFSSR "$dconf" sr_delete "$sr"
    [ -d "$server_dir" ] || vm_fail "sr_delete (ENOSYS) removed $server_dir"

    vm_step "v$version: sr_detach unmounts and removes the mount point; again succeeds; VDI verbs are then ENODEV"
    vm_driver_ok NFSSR "$dconf" sr_detach "$sr"
    no_nfs_mount_left "after sr_detach"
    [ ! -e "$mount_point" ] || vm_fail "sr_detach left the mount point $mount_point"
    vm_driver_ok NFSSR "$dconf" sr_detach "$sr"
    vm_driver_status 19 NFSSR "$dconf" vdi_create "$sr" "$vdi" "$size"
}

lifecycle 3 "$export_dir/sm" 3a9e5c17-2b4d-4f60-8e1a-c5d7b9f20e44
lifecycle 4.1 /sm 7c0b2f5e-91d3-4a6e-b8f4-2e5d6c1a9b30

vm_step "ENODEV: sr_attach of an SR with no directory on the server, sr_create on a missing serverpath; ENOSPC: sr_create larger than the export"
missing=0f6e4d2c-3b1a-4978-a6c5-d4e3f2a1b0c9
vm_driver_status 19 NFSSR "<dconf><server>127.0.0.1</server><serverpath>$export_dir/sm</serverpath></dconf>" sr_attach "$missing"
[[ "$DRIVER_ERR" == *"does not exist"* ]] || vm_fail "the ENODEV reason does not say the SR does not exist: $DRIVER_ERR"
no_nfs_mount_left "after the failed sr_attach"
vm_driver_status 19 NFSSR "<dconf><server>127.0.0.1</server><serverpath>$export_dir/absent</serverpath></dconf>" sr_create "$missing" 0
no_nfs_mount_left "after the failed sr_create"
vm_driver_status 28 NFSSR "<dconf><server>127.0.0.1</server><serverpath>$export_dir/sm</serverpath></dconf>" sr_create "$missing" $((1 << 50))
[[ "$DRIVER_ERR" == *"127.0.0.1:$export_dir/sm"* ]] || vm_fail "the ENOSPC reason does not name the export: $DRIVER_ERR"
[ ! -e "$export_dir/sm/$missing" ] || vm_fail "the refused sr_create made $export_dir/sm/$missing"
no_nfs_mount_left "after the sr_create refused for its size"
[ -z "$(ls -A "$mount_dir" 2>/dev/null)" ] || vm_fail "the failed calls left $(ls -A "$mount_dir") in $mount_dir"

echo "PASS: $VM_GROUP"
