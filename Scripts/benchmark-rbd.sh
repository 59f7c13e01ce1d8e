#!/bin/bash
# RBDSR benchmark (not a test): each verb of the RBDSR binary beside the `rbd` command line doing
# the same work on the same cluster, as the same cephx user, and snapshot/clone time for a 1 GiB
# and a 1 TiB image (O(1): the two should match). Starts its own one-mon, one-OSD cluster
# (Tests/ceph/cluster.sh) and stops it at the end.
#
#   vdi_create 1 GiB   vs  rbd create --size 1G --image-feature layering,exclusive-lock,object-map,fast-diff,deep-flatten
#   vdi_snapshot       vs  rbd snap create
#   vdi_clone          vs  rbd snap create + rbd snap protect + rbd clone
#   vdi_resize         vs  rbd resize
#   sr_scan            vs  rbd ls -l + rbd du (sizes, parents and bytes used, as sr_scan reports)
#   vdi_lock           vs  rbd lock add
#   vdi_delete         vs  rbd rm
#
# Prints the median wall time of each over RUNS runs (interleaved) and the ratio rbd / RBDSR
# (higher is better for RBDSR). The `rbd` column runs with the cluster's ceph.conf as an operator's
# client would (it names a log file and an admin socket, which the command line then opens);
# With RBD_LEAN=1 it adds `--log_to_file=false --admin_socket=`, the settings RBDSR runs with. Every RBDSR call connects to the cluster afresh, as the `rbd`
# command does. Usage: Scripts/benchmark-rbd.sh [runs]   (root; SM_BIN_DIR picks the binaries,
# default: a release build of RBDSR as the package ships it, with the Swift standard library
# linked statically, like the other benchmarks)
set -euo pipefail
RUNS=${1:-10}
cd "$(dirname "$0")/.."
if [ -n "${SM_BIN_DIR:-}" ]; then
    RBDSR="$SM_BIN_DIR/RBDSR"
else
    swift build -c release --static-swift-stdlib --product RBDSR >/dev/null
    RBDSR="$(swift build -c release --static-swift-stdlib --show-bin-path)/RBDSR"
fi
work=$(mktemp -d /tmp/sm-rbd-bench.XXXXXX)
cluster="$work/cluster"
export SM_RUN_DIR="$work/run" SM_LOCK_DIR="$work/lock" SM_LOG_FILE="$work/SMlog" SM_CONFIG="$work/sm.conf"
cleanup() { Tests/ceph/cluster.sh down "$cluster" || true; rm -rf "$work"; }
trap cleanup EXIT
start=$(date +%s.%N)
Tests/ceph/cluster.sh up "$cluster"
echo "cluster up in $(echo "$(date +%s.%N) - $start" | bc) s"
# shellcheck source=/dev/null
. "$cluster/env"
sr=$(cat /proc/sys/kernel/random/uuid)
dconf="<dconf><monitors>127.0.0.1:$PORT</monitors><pool>sm</pool><user>smtest</user><keyring>$cluster/smtest.keyring</keyring></dconf>"
driver() { "$RBDSR" "$dconf" "$@" >/dev/null; }
RBD="rbd -c $cluster/ceph.conf --id smtest --keyring $cluster/smtest.keyring"
LEAN="--log_to_file=false --admin_socket="
lean=""
[ -n "${RBD_LEAN:-}" ] && lean=$LEAN
cli() { timeout 60 $RBD $lean --namespace "$sr" "$@" >/dev/null 2>&1; }
# One lean command in the open, so that options the command line refused would stop the script.
$RBD $LEAN ls sm >/dev/null
features=layering,exclusive-lock,object-map,fast-diff,deep-flatten
new_uuid() { cat /proc/sys/kernel/random/uuid; }
# Milliseconds one command takes.
ms() { local s e; s=$(date +%s%N); "$@"; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

driver sr_create "$sr" 0
driver sr_attach "$sr"
declare -A D C
for verb in vdi_create vdi_snapshot vdi_clone vdi_resize sr_scan vdi_lock vdi_delete; do D[$verb]=""; C[$verb]=""; done
for run in $(seq "$RUNS"); do
    a=$(new_uuid) b=$(new_uuid)
    D[vdi_create]+="$(ms driver vdi_create "$sr" "$a" 1073741824) "
    C[vdi_create]+="$(ms cli create --size 1G --image-feature "$features" "sm/$b") "
    sa=$(new_uuid) sb=$(new_uuid)
    D[vdi_snapshot]+="$(ms driver vdi_snapshot "$sr" "$a" "$sa") "
    C[vdi_snapshot]+="$(ms cli snap create "sm/$b@$sb") "
    ca=$(new_uuid) cb=$(new_uuid) bb=$(new_uuid)
    D[vdi_clone]+="$(ms driver vdi_clone "$sr" "$a" "$ca") "
    C[vdi_clone]+="$(ms timeout 60 sh -c "$RBD $lean --namespace $sr snap create sm/$b@$bb >/dev/null 2>&1 && $RBD $lean --namespace $sr snap protect sm/$b@$bb && $RBD $lean clone --image-feature $features sm/$sr/$b@$bb sm/$sr/$cb >/dev/null 2>&1") "
    D[vdi_resize]+="$(ms driver vdi_resize "$sr" "$ca" 2147483648) "
    C[vdi_resize]+="$(ms cli resize --size 2G "sm/$cb") "
    D[sr_scan]+="$(ms driver sr_scan "$sr") "
    C[sr_scan]+="$(ms timeout 60 sh -c "$RBD $lean --namespace $sr ls -l sm >/dev/null 2>&1 && $RBD $lean --namespace $sr du -p sm >/dev/null 2>&1") "
    D[vdi_lock]+="$(ms driver vdi_lock "$sr" "$ca" FALSE bench) "
    C[vdi_lock]+="$(ms cli lock add "sm/$cb" bench) "
    driver vdi_unlock "$sr" "$ca" bench
    # `rbd lock add` holds `rbd_lock`, which the exclusive-lock feature needs: `rbd rm` would wait
    # for it forever (the reason RBDSR's vdi_lock uses a lock of its own name). Release it, untimed.
    locker=$(rbd -c "$cluster/ceph.conf" --id smtest --keyring "$cluster/smtest.keyring" --namespace "$sr" \
        lock ls --format json "sm/$cb" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["locker"])')
    cli lock rm "sm/$cb" bench "$locker"
    D[vdi_delete]+="$(ms driver vdi_delete "$sr" "$ca") "
    C[vdi_delete]+="$(ms timeout 60 $RBD $lean --namespace "$sr" rm --no-progress "sm/$cb") "
done
printf '%-14s %10s %10s %8s\n' verb "RBDSR ms" "rbd ms" "rbd/RBDSR"
for verb in vdi_create vdi_snapshot vdi_clone vdi_resize sr_scan vdi_lock vdi_delete; do
    d=$(tr ' ' '\n' <<< "${D[$verb]}" | grep . | median)
    c=$(tr ' ' '\n' <<< "${C[$verb]}" | grep . | median)
    printf '%-14s %10s %10s %8.2f\n' "$verb" "$d" "$c" "$(echo "$c / $d" | bc -l)"
done

echo "snapshot and clone by image size (RBDSR, median of $RUNS):"
for size in 1073741824 1099511627776; do
    snaps="" clones=""
    for run in $(seq "$RUNS"); do
        v=$(new_uuid)
        driver vdi_create "$sr" "$v" "$size"
        snaps+="$(ms driver vdi_snapshot "$sr" "$v" "$(new_uuid)") "
        clones+="$(ms driver vdi_clone "$sr" "$v" "$(new_uuid)") "
    done
    printf '  %6s GiB: vdi_snapshot %s ms, vdi_clone %s ms\n' "$((size >> 30))" \
        "$(tr ' ' '\n' <<< "$snaps" | grep . | median)" "$(tr ' ' '\n' <<< "$clones" | grep . | median)"
done
