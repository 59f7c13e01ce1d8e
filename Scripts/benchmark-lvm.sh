#!/bin/bash
# LVMSR benchmark (not a test): the release LVMSR binary against the equivalent LVM command
# lines, on a volume group over a loop device holding 200 logical volumes.
#
#   vdi_create (4 MiB)   vs  lvcreate --name LV-<uuid> --extents 1 VG
#   vdi_delete           vs  lvremove --force VG/LV-<uuid>
#   sr_scan              vs  vgs + lvs (JSON reports, as sr_scan reads them)
#
# Prints the median wall time of each over RUNS runs (interleaved, so that load on the machine
# hits both sides alike) and the ratio reference / LVMSR (higher is better; the target is 2).
# A third column runs the same command lines with the driver's LVM settings (the overlay system
# directory with use_aio = 0, see Docs/LVMSR.md), to show how much of the difference is I/O mode
# and how much is process and command overhead.
#
# Usage: Scripts/benchmark-lvm.sh [runs]     (root; builds the release binary first)
# SM_LVM_CONFIG is passed to both sides; it defaults to global{activation=0} when the kernel has
# no device-mapper.
set -euo pipefail
RUNS=${1:-30}
LVS=200
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --product LVMSR >/dev/null
LVMSR="$(swift build -c release --static-swift-stdlib --show-bin-path)/LVMSR"

if [ -z "${SM_LVM_CONFIG:-}" ] && ! grep -qw device-mapper /proc/misc; then
    SM_LVM_CONFIG='global{activation=0}'
fi
export SM_LVM_CONFIG="${SM_LVM_CONFIG:-}"
work=$(mktemp -d /tmp/sm-lvm-bench.XXXXXX)
export SM_RUN_DIR="$work/run" SM_LOCK_DIR="$work/lock" SM_LOG_FILE="$work/SMlog" SM_CONFIG="$work/sm.conf"
export LVM_SUPPRESS_FD_WARNINGS=1
config=()
[ -n "$SM_LVM_CONFIG" ] && config=(--config "$SM_LVM_CONFIG")
truncate -s 4G "$work/pv.img"
device=$(losetup --find --show "$work/pv.img")
sr=$(cat /proc/sys/kernel/random/uuid)
vg="VG_XenStorage-$sr"
dconf="<dconf><device>$device</device></dconf>"

cleanup() {
    lvm vgremove "${config[@]}" --force --yes "$vg" >/dev/null 2>&1 || true
    lvm pvremove "${config[@]}" --force --force --yes "$device" >/dev/null 2>&1 || true
    losetup --detach "$device" || true
    rm -f /etc/lvm/archive/"$vg"_* /etc/lvm/backup/"$vg"
    rm -rf "$work"
}
trap cleanup EXIT

driver() { "$LVMSR" "$dconf" "$@" >/dev/null; }
# The equivalent LVM command line, with the host's LVM settings or with the driver's (sync I/O).
cli() { lvm "$1" "${config[@]}" "${@:2}" >/dev/null 2>&1; }
cli_sync() { env LVM_SYSTEM_DIR="$SM_RUN_DIR/lvm" lvm "$1" "${config[@]}" "${@:2}" >/dev/null 2>&1; }
report=(--reportformat json --units b --nosuffix)
scan_cli() { cli vgs "${report[@]}" "$vg" && cli lvs "${report[@]}" "$vg"; }
scan_sync() { cli_sync vgs "${report[@]}" "$vg" && cli_sync lvs "${report[@]}" "$vg"; }
new_uuid() { cat /proc/sys/kernel/random/uuid; }

driver sr_create "$sr" 0
driver sr_attach "$sr"
for _ in $(seq "$LVS"); do driver vdi_create "$sr" "$(new_uuid)" 4194304; done

# Milliseconds taken by the command line given as arguments (fails the script if it fails).
elapsed() {
    local start end
    start=$(date +%s%N)
    "$@"
    end=$(date +%s%N)
    echo $(( (end - start) / 1000 ))
}

median() { sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m / 1000 }'; }

declare -A samples
record() { samples[$1]+="$2"$'\n'; }

for _ in $(seq "$RUNS"); do
    vdi=$(new_uuid)
    record create.driver "$(elapsed driver vdi_create "$sr" "$vdi" 4194304)"
    record delete.driver "$(elapsed driver vdi_delete "$sr" "$vdi")"
    lv="LV-$(new_uuid)"
    record create.cli "$(elapsed cli lvcreate --yes --name "$lv" --extents 1 "$vg")"
    record delete.cli "$(elapsed cli lvremove --force "$vg/$lv")"
    lv="LV-$(new_uuid)"
    record create.sync "$(elapsed cli_sync lvcreate --yes --name "$lv" --extents 1 "$vg")"
    record delete.sync "$(elapsed cli_sync lvremove --force "$vg/$lv")"
    record scan.driver "$(elapsed driver sr_scan "$sr")"
    record scan.cli "$(elapsed scan_cli)"
    record scan.sync "$(elapsed scan_sync)"
done

count=$(lvm lvs "${config[@]}" --noheadings -o lv_name "$vg" 2>/dev/null | wc -l)
printf '%-12s %10s  %-26s %8s %7s  %18s\n' operation 'LVMSR ms' reference 'ref ms' ratio 'ref, use_aio=0 ms'
for op in create delete scan; do
    case $op in
        create) name=vdi_create; ref="lvcreate" ;;
        delete) name=vdi_delete; ref="lvremove" ;;
        scan) name=sr_scan; ref="vgs + lvs" ;;
    esac
    ours=$(printf '%s' "${samples[$op.driver]}" | median)
    theirs=$(printf '%s' "${samples[$op.cli]}" | median)
    sync=$(printf '%s' "${samples[$op.sync]}" | median)
    printf '%-12s %10s  %-26s %8s %7s  %18s\n' "$name" "$ours" "$ref" "$theirs" \
        "$(awk -v a="$theirs" -v b="$ours" 'BEGIN { printf "%.2fx", a / b }')" "$sync"
done
echo "(median of $RUNS interleaved runs; $count logical volumes in the group; ratio = reference / LVMSR;"
echo " SM_LVM_CONFIG='$SM_LVM_CONFIG'; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
