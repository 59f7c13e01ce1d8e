#!/bin/bash
# vdi_export / vdi_import beside qemu-img convert of the same disk (not a test): prints the
# median wall time of each and the ratio qemu-img / ours (>= 1.0: ours is as fast or faster),
# and the ratio of the best runs (less moved by other work on a shared machine).
#   export raw:  FileSR vdi_export raw > file        vs  qemu-img convert -f vpc -O raw      (goal >= 1.0)
#   export vhd:  FileSR vdi_export vhd > file        vs  qemu-img convert -f vpc -O vpc
#   import raw:  FileSR vdi_import raw < file        vs  qemu-img convert -f raw -O vpc
#   export raw into a pipe (| cat > /dev/null): ours only, qemu-img cannot write to a pipe
# The disk: BENCH_SIZE bytes (1 GiB), BENCH_DATA_PERCENT of its 2 MiB blocks random data (50),
# the rest never written; it is made by vdi_import of a raw file, so the VHD is our engine's.
# Caches are warm for both (each is run once before timing). Exports: qemu-img runs with
# -t unsafe (no flush at the end), as ours does not fsync stdout either. Import: qemu-img runs
# with -t writeback (it flushes the new file at the end), as ours fsyncs the new VDI before
# publishing it. Every output is checked (cmp, qemu-img compare).
# Uses the release build (built if missing: swift build -c release --static-swift-stdlib --product FileSR).
# Environment: BENCH_DIR (work area, default a new directory under /var/tmp), BENCH_RUNS (5),
# SM_BIN_DIR (binaries, default .build/release).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SM_BIN_DIR:-$PWD/.build/release}
[ -x "$BIN/FileSR" ] || swift build -c release --static-swift-stdlib --product FileSR
RUNS=${BENCH_RUNS:-5}
SIZE=${BENCH_SIZE:-$((1 << 30))}
PERCENT=${BENCH_DATA_PERCENT:-50}
WORK=${BENCH_DIR:-$(mktemp -d /var/tmp/sm-bench-export.XXXXXX)}
mkdir -p "$WORK/data" "$WORK/run" "$WORK/lock"
trap 'rm -rf "$WORK"' EXIT
export SM_RUN_DIR=$WORK/run SM_LOCK_DIR=$WORK/lock SM_LOG_FILE=$WORK/SMlog SM_CONFIG=$WORK/none SM_GC_AFTER_DELETE=0
DCONF="<dconf><location>$WORK/data</location></dconf>"
command -v qemu-img >/dev/null || { echo "qemu-img is needed (package qemu-utils)"; exit 1; }

uuid() { cat /proc/sys/kernel/random/uuid; }
sm() { "$BIN/FileSR" "$DCONF" "$@"; }
now() { date +%s%N; }
# Seconds a shell command line takes.
timed() { local start; start=$(now); bash -c "$1" >/dev/null; echo $(( ($(now) - start) / 1000 )) | awk '{ printf "%.4f\n", $1 / 1000000 }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# Runs both once (warm-up and check), then RUNS times each, alternating; prints the medians and the ratio.
compare() {
    local name=$1 ours=$2 theirs=$3 check=$4 a=() b=()
    bash -c "$ours"; bash -c "$check" || { echo "$name: our output differs"; exit 1; }
    bash -c "$theirs"
    for _ in $(seq "$RUNS"); do
        a+=("$(timed "$ours")"); b+=("$(timed "$theirs")")
    done
    local mine qemu mine_best qemu_best
    mine=$(printf '%s\n' "${a[@]}" | median); qemu=$(printf '%s\n' "${b[@]}" | median)
    mine_best=$(printf '%s\n' "${a[@]}" | sort -g | head -1); qemu_best=$(printf '%s\n' "${b[@]}" | sort -g | head -1)
    awk -v n="$name" -v m="$mine" -v q="$qemu" -v s="$SIZE" -v mb="$mine_best" -v qb="$qemu_best" \
        'BEGIN { printf "%-11s ours %7.3f s (%6.0f MiB/s)   qemu-img %7.3f s (%6.0f MiB/s)   ratio %.2f   (best of each: %.3f / %.3f s, ratio %.2f)\n", n, m, s / m / 1048576, q, s / q / 1048576, q / m, mb, qb, qb / mb }'
}

sr=$(uuid); vdi=$(uuid)
sm sr_create "$sr" 0; sm sr_attach "$sr"
source_raw=$WORK/source.raw
blocks=$((SIZE / (2 << 20)))
truncate -s "$SIZE" "$source_raw"
for ((block = 0; block < blocks; block++)); do
    if (( block * 7919 % 100 < PERCENT )); then
        dd if=/dev/urandom of="$source_raw" bs=2M seek="$block" count=1 conv=notrunc status=none
    fi
done
sm vdi_import "$sr" "$vdi" raw "$SIZE" < "$source_raw"
vhd=$WORK/data/$sr/$vdi.vhd
echo "disk: $SIZE bytes, $(( $(stat -c %b "$source_raw") * 512 / (2 << 20) )) of $blocks blocks hold data; VHD $(stat -c %s "$vhd") bytes; median of $RUNS"
out=$WORK/out
compare "export raw" "rm -f $out.raw; '$BIN/FileSR' '$DCONF' vdi_export $sr $vdi raw > $out.raw" \
    "rm -f $out.qraw; qemu-img convert -t unsafe -f vpc -O raw $vhd $out.qraw" "cmp $out.raw $source_raw"
compare "export vhd" "rm -f $out.vhd; '$BIN/FileSR' '$DCONF' vdi_export $sr $vdi vhd > $out.vhd" \
    "rm -f $out.qvhd; qemu-img convert -t unsafe -f vpc -O vpc -o subformat=dynamic $vhd $out.qvhd" \
    "qemu-img compare -q -f vpc -F raw $out.vhd $source_raw"
imported=$(uuid)
compare "import raw" "'$BIN/FileSR' '$DCONF' vdi_delete $sr $imported; '$BIN/FileSR' '$DCONF' vdi_import $sr $imported raw $SIZE < $source_raw" \
    "rm -f $out.qin; qemu-img convert -t writeback -f raw -O vpc -o subformat=dynamic $source_raw $out.qin" \
    "qemu-img compare -q -f vpc -F raw $WORK/data/$sr/$imported.vhd $source_raw"
piped=()
for _ in $(seq "$RUNS"); do piped+=("$(timed "'$BIN/FileSR' '$DCONF' vdi_export $sr $vdi raw | cat > /dev/null")"); done
awk -v m="$(printf '%s\n' "${piped[@]}" | median)" -v s="$SIZE" \
    'BEGIN { printf "%-11s ours %7.3f s (%6.0f MiB/s): every byte, zeros included, through a pipe\n", "export pipe", m, s / m / 1048576 }'
