#!/bin/bash
# Long runs of the two robustness suites (not CI; see Docs/robustness.md):
#   StressTests      8 callers in parallel on one FileSR, SM_STRESS_OPS operations each (default here 300)
#   RandomKillTests  SM_KILL_ITERATIONS verbs SIGKILLed at random instants (default here 500)
# against the release FileSR where it builds (swift build -c release --static-swift-stdlib), else
# the debug one, and prints the figures: calls, kills that landed while the verb ran, how many
# left work for recovery, and every failure, grouped by message (UUIDs, paths, numbers elided).
# Environment: SM_STRESS_OPS, SM_STRESS_CALLERS, SM_STRESS_SEED, SM_KILL_ITERATIONS, SM_KILL_SEED,
# SM_BIN_DIR (binaries; default .build/release), STRESS_PARTS (default "stress kill").
# Exit status: 0 when both suites passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
export SM_STRESS_OPS=${SM_STRESS_OPS:-300} SM_KILL_ITERATIONS=${SM_KILL_ITERATIONS:-500}
if [ -z "${SM_BIN_DIR:-}" ]; then
    if swift build -c release --static-swift-stdlib --product FileSR >/dev/null 2>&1; then
        export SM_BIN_DIR=$PWD/.build/release
    else
        echo "release build failed: running the debug binaries"
    fi
fi
echo "binaries: ${SM_BIN_DIR:-$PWD/.build/debug}"
swift build --build-tests 2>&1 | tail -1
part() { [[ " ${STRESS_PARTS:-stress kill} " == *" $1 "* ]]; }
log=$(mktemp /var/tmp/sm-stress.XXXXXX)
status=0
run() {  # suite prefix
    local start=$SECONDS
    swift test --skip-build --filter "$1" >"$log.$2" 2>&1 || status=1
    grep "^$2: " "$log.$2" | grep -v "^$2: FAILURE" | cut -c1-400
    echo "$2: $(grep -c "^$2: FAILURE" "$log.$2") failures, $((SECONDS - start)) s; grouped:"
    grep "^$2: FAILURE" "$log.$2" | sed -E 's/.*\]: //; s/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/<uuid>/g;
        s#/[^ ]*/#<path>/#g; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | cut -c1-300
    grep -q "passed after\|failed after" "$log.$2" || { echo "$2: the suite did not finish:"; tail -20 "$log.$2"; status=1; }
}
part stress && run StressTests stress
part kill && run RandomKillTests kill
echo "full output: $log.stress $log.kill"
exit $status
