#!/bin/bash
# Start-up CPU time of `<driver> --help` in two builds (not a test): for a library's cost
# (Docs/libraries.md). Usage: Scripts/benchmark-startup.sh BEFORE_BIN_DIR AFTER_BIN_DIR [DRIVER...]
# (directories of release builds made with `swift build -c release --static-swift-stdlib`;
# drivers default to LVMSR FileSR). Runs the binaries alternately, one at a time, ROUNDS times
# (default 50), measuring task-clock with perf (Debian linux-perf), and prints medians and
# quartiles per binary.
set -euo pipefail
before=$1 after=$2
shift 2
drivers=("${@:-LVMSR}")
[ $# -gt 0 ] || drivers=(LVMSR FileSR)
rounds=${ROUNDS:-50}
samples=$(mktemp)
trap 'rm -f "$samples"' EXIT
for _ in $(seq 1 "$rounds"); do
    for driver in "${drivers[@]}"; do
        for side in before after; do
            directory=$before
            [ "$side" = after ] && directory=$after
            time=$(perf stat -x, -e task-clock "$directory/$driver" --help 2>&1 >/dev/null | grep task-clock | cut -d, -f1)
            echo "$driver $side $time" >> "$samples"
        done
    done
done
python3 - "$samples" <<'PY'
import collections, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    driver, side, value = line.split()
    times[(driver, side)].append(float(value))
for (driver, side), values in sorted(times.items()):
    low, _, high = statistics.quantiles(values, n=4)
    print(f"{driver} {side}: median {statistics.median(values):.2f} ms ({low:.2f}-{high:.2f}), {len(values)} runs")
PY
