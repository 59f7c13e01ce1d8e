#!/bin/bash
# RBDSR with the kernel's RBD client against a one-mon, one-OSD Ceph cluster started inside the
# guest (Tests/ceph/cluster.sh, memstore: the guest root is read-only and RAM is the only room):
# vdi_attach maps with krbd and returns /dev/rbd/<pool>/<SR>/<VDI>, a block device; data written
# through it reads back after vdi_detach and vdi_attach; vdi_detach while the device is open and
# vdi_delete while mapped are EBUSY; a snapshot VDI maps read-only with the data of its moment;
# vdi_detach leaves no mapping. The re-attach runs with dconf `conf` (the cluster's ceph.conf) in
# place of `monitors`: the kernel gets the monitors librados read from it.
. "$VM_LIB"

cluster=/run/sm-ceph
sr=3c2f9b1e-6d4a-4f0b-8e57-9a1c2d3e4f50
vdi=7a1e5c3b-2d4f-4b6a-9c8e-1f0a2b3c4d5e
snapshot=9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b
size=$((64 * 1024 * 1024))

vm_on_exit "$VM_REPO/Tests/ceph/cluster.sh" down "$cluster"
vm_on_exit sh -c 'for d in /sys/bus/rbd/devices/*; do [ -e "$d" ] && echo "${d##*/}" > /sys/bus/rbd/remove_single_major; done'

vm_step "load rbd, start the cluster"
vm_check "modprobe rbd" modprobe rbd
STORE=memstore vm_check "cluster.sh up" "$VM_REPO/Tests/ceph/cluster.sh" up "$cluster"
# shellcheck source=/dev/null
. "$cluster/env"
dconf="<dconf><monitors>127.0.0.1:$PORT</monitors><pool>sm</pool><user>smtest</user><keyring>$cluster/smtest.keyring</keyring></dconf>"
conf_dconf="<dconf><conf>$cluster/ceph.conf</conf><pool>sm</pool><user>smtest</user><keyring>$cluster/smtest.keyring</keyring></dconf>"

vm_step "sr_create, sr_attach, vdi_create 64 MiB, vdi_attach"
vm_driver_ok RBDSR "$dconf" sr_create "$sr" 0
vm_driver_ok RBDSR "$dconf" sr_attach "$sr"
vm_driver_ok RBDSR "$dconf" vdi_create "$sr" "$vdi" "$size"
vm_driver_ok RBDSR "$dconf" vdi_attach "$sr" "$vdi"
path=$(vm_xml_values path <<< "$DRIVER_OUT")
[ "$path" = "/dev/rbd/sm/$sr/$vdi" ] || vm_fail "vdi_attach returned '$path', expected /dev/rbd/sm/$sr/$vdi"
[ "$(vm_xml_values type <<< "$DRIVER_OUT")" = aio ] || vm_fail "vdi_attach type is not aio"
udevadm settle --timeout=30 2>/dev/null || true
[ -b "$path" ] || vm_fail "$path is not a block device"
echo "  $path -> $(readlink -f "$path"), $(blockdev --getsize64 "$path") bytes"
[ "$(blockdev --getsize64 "$path")" = "$size" ] || vm_fail "the mapped device is not $size bytes"
vm_driver_ok RBDSR "$dconf" vdi_attach "$sr" "$vdi"
[ "$(ls /sys/bus/rbd/devices | wc -l)" = 1 ] || vm_fail "a second vdi_attach mapped the image again"

vm_step "write through /dev/rbd, detach (EBUSY while open), attach, read back"
head -c 4194304 /dev/urandom > /tmp/rbd-pattern
vm_check "write" dd if=/tmp/rbd-pattern of="$path" bs=1M seek=5 oflag=direct status=none
exec {holder}<"$path"
vm_driver_status 16 RBDSR "$dconf" vdi_detach "$sr" "$vdi"
vm_driver_status 16 RBDSR "$dconf" vdi_delete "$sr" "$vdi"
vm_driver_status 16 RBDSR "$dconf" sr_detach "$sr"
exec {holder}<&-
vm_driver_ok RBDSR "$dconf" vdi_detach "$sr" "$vdi"
[ -z "$(ls /sys/bus/rbd/devices)" ] || vm_fail "vdi_detach left a mapping: $(ls /sys/bus/rbd/devices)"
[ ! -e "$path" ] || vm_fail "vdi_detach left $path"
vm_driver_ok RBDSR "$dconf" vdi_detach "$sr" "$vdi"
vm_driver_ok RBDSR "$conf_dconf" vdi_attach "$sr" "$vdi"
path=$(vm_xml_values path <<< "$DRIVER_OUT")
[ -b "$path" ] || vm_fail "after re-attach (monitors from dconf conf), $path is not a block device"
read_back=$(dd if="$path" bs=1M skip=5 count=4 iflag=direct status=none | sha256sum)
[ "$read_back" = "$(sha256sum < /tmp/rbd-pattern)" ] || vm_fail "the data written before detach does not read back after attach"

vm_step "snapshot (refused while attached), then map the snapshot read-only"
vm_driver_status 16 RBDSR "$dconf" vdi_snapshot "$sr" "$vdi" "$snapshot"
vm_driver_ok RBDSR "$dconf" vdi_detach "$sr" "$vdi"
vm_driver_ok RBDSR "$dconf" vdi_snapshot "$sr" "$vdi" "$snapshot"
vm_driver_ok RBDSR "$dconf" vdi_attach "$sr" "$vdi"
path=$(vm_xml_values path <<< "$DRIVER_OUT")
vm_check "overwrite the image" dd if=/dev/zero of="$path" bs=1M seek=5 count=4 oflag=direct status=none
vm_driver_ok RBDSR "$dconf" vdi_attach "$sr" "$snapshot"
snapshot_path=$(vm_xml_values path <<< "$DRIVER_OUT")
[ "$snapshot_path" = "/dev/rbd/sm/$sr/$vdi@$snapshot" ] || vm_fail "snapshot path '$snapshot_path'"
[ "$(blockdev --getro "$snapshot_path")" = 1 ] || vm_fail "the snapshot is mapped writable"
read_back=$(dd if="$snapshot_path" bs=1M skip=5 count=4 iflag=direct status=none | sha256sum)
[ "$read_back" = "$(sha256sum < /tmp/rbd-pattern)" ] || vm_fail "the snapshot does not read the data of its moment"
vm_driver_ok RBDSR "$dconf" vdi_detach "$sr" "$snapshot"
vm_driver_ok RBDSR "$dconf" vdi_detach "$sr" "$vdi"

vm_step "vdi_delete, sr_detach, sr_delete"
vm_driver_ok RBDSR "$dconf" vdi_delete "$sr" "$snapshot"
vm_driver_ok RBDSR "$dconf" vdi_delete "$sr" "$vdi"
vm_driver_ok RBDSR "$dconf" sr_detach "$sr"
vm_driver_ok RBDSR "$dconf" sr_delete "$sr"
[ -z "$(ls /sys/bus/rbd/devices)" ] || vm_fail "mappings are left: $(ls /sys/bus/rbd/devices)"

echo "PASS: $VM_GROUP"
