#!/bin/bash
# Copy-on-write benchmarks for FileSR (not a test): prints medians and ratios for
#   vdi_snapshot / vdi_clone of 1 GiB and 1 TiB VDIs at chain depth 1 and 29   (target < 10 ms)
#   sr_scan of 1,000 and 10,000 VDIs                                             (target < 1 s)
#   reading 256 MiB through a 30-deep chain vs a raw sequential read             (target >= 0.5)
#   coalescing 256 MiB vs cp of the same bytes                                   (target >= 0.8)
# Uses the release build (built once if missing: swift build -c release --static-swift-stdlib).
# Times are wall clock of whole processes (what the agent waits for); the operation's own
# duration from the SMlog is shown beside the snapshot/clone numbers.
# Environment: BENCH_DIR (work area, default a new directory under /var/tmp), BENCH_RUNS (5),
# SM_BIN_DIR (binaries, default .build/release), BENCH_PARTS (default "cow scan read merge").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SM_BIN_DIR:-$PWD/.build/release}
if [ ! -x "$BIN/FileSR" ] || [ ! -x "$BIN/sm-vhd" ]; then
    swift build -c release --static-swift-stdlib
fi
RUNS=${BENCH_RUNS:-5}
WORK=${BENCH_DIR:-$(mktemp -d /var/tmp/sm-bench.XXXXXX)}
mkdir -p "$WORK/data" "$WORK/run" "$WORK/lock"
trap 'rm -rf "$WORK"' EXIT
export SM_RUN_DIR=$WORK/run SM_LOCK_DIR=$WORK/lock SM_LOG_FILE=$WORK/SMlog SM_CONFIG=$WORK/none SM_GC_AFTER_DELETE=0
DCONF="<dconf><location>$WORK/data</location></dconf>"
GiB=$((1 << 30)); TiB=$((1 << 40)); MiB=$((1 << 20))

uuid() { cat /proc/sys/kernel/random/uuid; }
sm() { "$BIN/FileSR" "$DCONF" "$@"; }
now() { date +%s%N; }
# Milliseconds taken by a command.
timed() { local start; start=$(now); "$@" >/dev/null; echo $(( ($(now) - start) / 1000 )) | awk '{ printf "%.3f\n", $1 / 1000 }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# The duration the SMlog recorded for the last call.
logged() { tail -1 "$SM_LOG_FILE" | sed -n 's/.*duration=\([0-9.]*\)ms.*/\1/p'; }
part() { [[ " ${BENCH_PARTS:-cow scan read merge} " == *" $1 "* ]]; }
new_sr() { local sr; sr=$(uuid); sm sr_create "$sr" 0; sm sr_attach "$sr"; echo "$sr"; }

if part cow; then
echo "== vdi_snapshot / vdi_clone (median of $RUNS; process wall time, and the SMlog's operation time)"
for size in $GiB $TiB; do
    for depth in 1 29; do
        for verb in vdi_snapshot vdi_clone; do
            walls=(); ops=()
            for _ in $(seq "$RUNS"); do
                sr=$(new_sr); vdi=$(uuid)
                sm vdi_create "$sr" "$vdi" "$size"
                for _ in $(seq $((depth - 1))); do sm vdi_snapshot "$sr" "$vdi" "$(uuid)"; done
                walls+=("$(timed sm "$verb" "$sr" "$vdi" "$(uuid)")"); ops+=("$(logged)")
                rm -rf "${WORK:?}/data/$sr"
            done
            printf "%-13s size %-14s depth %2d: %8.2f ms wall, %8.2f ms in the operation\n" "$verb" "$size" "$depth" \
                "$(printf '%s\n' "${walls[@]}" | median)" "$(printf '%s\n' "${ops[@]}" | median)"
        done
    done
done

fi

if part scan; then
echo "== sr_scan (median of $RUNS)"
for count in 1000 10000; do
    sr=$(new_sr); template=$(uuid)
    sm vdi_create "$sr" "$template" $((10 * MiB))
    python3 - "$WORK/data/$sr" "$template" "$count" <<'EOF'
import shutil, sys, uuid
root, template, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(count - 1):
    shutil.copyfile(f"{root}/{template}.vhd", f"{root}/{uuid.uuid4()}.vhd")
EOF
    listed=$(sm sr_scan "$sr" | grep -c "<vdi>")
    scans=(); for _ in $(seq "$RUNS"); do scans+=("$(timed sm sr_scan "$sr")"); done
    printf "sr_scan of %5d VDIs (%d listed): %8.2f ms\n" "$count" "$listed" "$(printf '%s\n' "${scans[@]}" | median)"
    rm -rf "${WORK:?}/data/$sr"
done

fi

if part read; then
echo "== reading 256 MiB through a 30-deep chain vs a raw sequential read (warm cache, median of $RUNS)"
sr=$(new_sr); vdi=$(uuid)
sm vdi_create "$sr" "$vdi" $((256 * MiB))
head -c $((256 * MiB)) /dev/urandom | "$BIN/sm-vhd" write "$WORK/data/$sr/$vdi.vhd" 0
for level in $(seq 29); do
    sm vdi_snapshot "$sr" "$vdi" "$(uuid)"
    # Each level holds a few scattered 64 KiB pieces, so reads visit every level.
    for piece in 0 1 2 3; do
        head -c 65536 /dev/urandom | "$BIN/sm-vhd" write "$WORK/data/$sr/$vdi.vhd" $(( (level * 7919 + piece * 60013) % 4000 * 65536 ))
    done
done
echo "chain length: $("$BIN/sm-vhd" chain "$WORK/data/$sr/$vdi.vhd" | wc -l)"
"$BIN/sm-vhd" read "$WORK/data/$sr/$vdi.vhd" > "$WORK/raw.bin"
chain=(); raw=()
for _ in $(seq "$RUNS"); do
    chain+=("$(timed sh -c "'$BIN/sm-vhd' read '$WORK/data/$sr/$vdi.vhd' > /dev/null")")
    raw+=("$(timed sh -c "cat '$WORK/raw.bin' > /dev/null")")
done
chain_ms=$(printf '%s\n' "${chain[@]}" | median); raw_ms=$(printf '%s\n' "${raw[@]}" | median)
printf "chain read %8.2f ms, raw read %8.2f ms: chain speed / raw speed = %.2f\n" "$chain_ms" "$raw_ms" \
    "$(echo "$raw_ms $chain_ms" | awk '{ print $1 / $2 }')"
rm -rf "${WORK:?}/data/$sr" "$WORK/raw.bin"

fi

if part merge; then
echo "== coalescing 256 MiB vs cp of the same bytes (median of 3)"
merges=(); copies=(); synced=()
for _ in 1 2 3; do
    sr=$(new_sr); vdi=$(uuid); snapshot=$(uuid)
    sm vdi_create "$sr" "$vdi" $((512 * MiB))
    head -c $((256 * MiB)) /dev/urandom | "$BIN/sm-vhd" write "$WORK/data/$sr/$vdi.vhd" $((256 * MiB))
    sm vdi_snapshot "$sr" "$vdi" "$snapshot"
    head -c $((256 * MiB)) /dev/urandom | "$BIN/sm-vhd" write "$WORK/data/$sr/$vdi.vhd" 0
    sync
    cp "$WORK/data/$sr/$vdi.vhd" "$WORK/child.copy"; rm -f "$WORK/child.copy"; sync
    copies+=("$(timed cp "$WORK/data/$sr/$vdi.vhd" "$WORK/child.copy")"); rm -f "$WORK/child.copy"; sync
    synced+=("$(timed sh -c "cp '$WORK/data/$sr/$vdi.vhd' '$WORK/child.copy' && sync '$WORK/child.copy'")"); rm -f "$WORK/child.copy"; sync
    sm vdi_delete "$sr" "$snapshot"
    merges+=("$(timed sm sr_gc "$sr")")
    [ "$(ls "$WORK/data/$sr" | wc -l)" = 1 ] || { echo "coalescing did not finish"; exit 1; }
    rm -rf "${WORK:?}/data/$sr"
done
merge_ms=$(printf '%s\n' "${merges[@]}" | median); copy_ms=$(printf '%s\n' "${copies[@]}" | median)
synced_ms=$(printf '%s\n' "${synced[@]}" | median)
printf "sr_gc %8.2f ms; cp %8.2f ms (ratio %.2f); cp + sync %8.2f ms (ratio %.2f)\n" "$merge_ms" "$copy_ms" \
    "$(echo "$copy_ms $merge_ms" | awk '{ print $1 / $2 }')" "$synced_ms" "$(echo "$synced_ms $merge_ms" | awk '{ print $1 / $2 }')"
fi
