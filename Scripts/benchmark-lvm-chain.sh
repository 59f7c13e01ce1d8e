#!/bin/bash
# VHD chains on LVM (issue 13), measured in the VM lane (real device-mapper activation; QEMU TCG,
# so absolute times are the emulator's, ratios are what counts): runs the VM group lvm-vhd-bench
# in one boot and prints
#
#   vdi_snapshot, chain 24-26 VHDs deep / 1-3 deep     goal <= 1.2 (no LV but the source and the
#                                                      new child is activated)
#   vdi_clone, leaf of a 27-29 deep chain / fresh VDI  goal <= 1.2
#   sr_gc merging BENCH_MIB MiB / dd of the same bytes between two volumes, buffered + fsync as
#   the merge copies (goal >= 0.9, as for cp + sync on file SRs), and with direct I/O for scale:
#                                                      printed as throughput ratio dd_ms / gc_ms
#
# Usage: Scripts/benchmark-lvm-chain.sh      (root; BENCH_MIB=128 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
logs=$(mktemp -d /tmp/sm-lvm-chain-bench.XXXXXX)
trap 'rm -rf "$logs"' EXIT
SM_VM_ENV="BENCH_MIB=${BENCH_MIB:-128} ${SM_VM_ENV:-}" SM_VM_GROUP_TIMEOUT=${SM_VM_GROUP_TIMEOUT:-1500} \
    SM_VM_LOG_DIR="$logs" Tests/vm/run.sh lvm-vhd-bench > "$logs/run.out" 2>&1 || {
    tail -40 "$logs/run.out"
    echo "benchmark-lvm-chain: the VM group failed (above)" >&2
    exit 1
}
value() { sed -n "s/^bench: $1 //p" "$logs/lvm-vhd-bench.log" | tail -1; }
grep -E '^  (snapshot|clone) ms' "$logs/lvm-vhd-bench.log" || true
s1=$(value snapshot_depth1_ms) s26=$(value snapshot_depth26_ms)
c1=$(value clone_depth1_ms) c29=$(value clone_depth29_ms)
gc=$(value "coalesce_[0-9]*MiB_ms") dd=$(value "dd_[0-9]*MiB_ms") dd_direct=$(value "dd_direct_[0-9]*MiB_ms")
printf '%-52s %10s %10s %7s %8s %s\n' operation ours reference ratio goal met
row() { # NAME OURS REFERENCE RATIO GOAL MET
    printf '%-52s %10s %10s %7s %8s %s\n' "$@"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
r=$(ratio "$s26" "$s1"); row "vdi_snapshot at 24-26 deep (ms) vs at 1-3 deep" "$s26" "$s1" "$r" "<= 1.2" "$(awk -v r="$r" 'BEGIN { print (r <= 1.2) ? "yes" : "no" }')"
r=$(ratio "$c29" "$c1"); row "vdi_clone at 27-29 deep (ms) vs fresh VDI" "$c29" "$c1" "$r" "<= 1.2" "$(awk -v r="$r" 'BEGIN { print (r <= 1.2) ? "yes" : "no" }')"
r=$(ratio "$dd" "$gc"); row "sr_gc merge ${BENCH_MIB:-128} MiB (ms) vs dd + fsync LV to LV" "$gc" "$dd" "$r" ">= 0.9" "$(awk -v r="$r" 'BEGIN { print (r >= 0.9) ? "yes" : "no" }')"
r=$(ratio "$dd_direct" "$gc"); row "the same vs dd with direct I/O (for scale)" "$gc" "$dd_direct" "$r" "-" "-"
