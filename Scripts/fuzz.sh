#!/bin/bash
# Builds the libFuzzer targets of Fuzz/ (SMCore instrumented with -sanitize=fuzzer,address) and
# runs each for a fixed number of inputs from its seed corpus; fails if any target crashes,
# leaks memory past ASan's checks, times out on one input or breaks a property it checks.
#   SM_FUZZ_RUNS     inputs per target (default 20000)
#   SM_FUZZ_SECONDS  time budget per target (default 180): a target stops there even short of
#                    its runs, and the line printed says how many it ran (CI's time is bounded;
#                    a run whose inputs grew slow once took over 25 minutes for one target)
#   SM_FUZZ_SEED     libFuzzer's random seed (default 1: the same run every time; 0 = random)
#   SM_FUZZ_TARGETS  space-separated subset of the targets (default: all)
#   SM_FUZZ_SECRET_ORACLE  1 (default): fuzz-dconf also fails when an error line shows a secret
# New inputs found go to Fuzz/.build/corpus/<target>, crashes to Fuzz/.build/crashes/.
# See Docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${SM_FUZZ_RUNS:-20000}
seconds=${SM_FUZZ_SECONDS:-180}
seed=${SM_FUZZ_SEED:-1}
targets=${SM_FUZZ_TARGETS:-"fuzz-dconf fuzz-intent fuzz-vhd-structures fuzz-vhd-file fuzz-vhd-chain"}
start=$(date +%s)
# Release: a debug build runs 10 to 30 times fewer inputs a second. -enable-testing for the
# targets' @testable imports; lld because gold fails on the sanitizer runtime's debug info.
flags=(-c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld)
log=Fuzz/.build/build.log
mkdir -p Fuzz/.build
# The main package under a fixed name (Fuzz/Package.swift says why).
ln -sfn ../.. Fuzz/.build/StorageManager
if ! swift build --package-path Fuzz "${flags[@]}" >"$log" 2>&1; then
    grep -E "error" "$log" | head -20
    echo "fuzz: build failed (log: $log)"
    exit 1
fi
built=$(date +%s)
echo "fuzz build: $(( built - start )) s"
binaries=$(swift build --package-path Fuzz "${flags[@]}" --show-bin-path)
# Swift's runtime keeps metadata caches for the life of the process: LeakSanitizer would call
# them leaks. Allocation stacks are not recorded (a third of the time otherwise); reproduce a
# crash with ASAN_OPTIONS=detect_leaks=0 to see them. Swift's own backtracer is off so that
# a trap reaches libFuzzer's handler, which saves the input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:malloc_context_size=0}
export SWIFT_BACKTRACE=enable=no
# Swift seeds its hashing at random per process: the same seed would not make the same run.
export SWIFT_DETERMINISTIC_HASHING=1
export SM_FUZZ_SECRET_ORACLE=${SM_FUZZ_SECRET_ORACLE:-1}
mkdir -p Fuzz/.build/crashes
failed=""
for target in $targets; do
    case $target in
        fuzz-dconf) dictionary=dconf.dict; length=8192 ;;
        fuzz-intent) dictionary=intent.dict; length=4096 ;;
        *) dictionary=vhd.dict; length=65536 ;;
    esac
    work=Fuzz/.build/corpus/$target
    mkdir -p "$work"
    log=Fuzz/.build/$target.log
    target_start=$(date +%s)
    if "$binaries/$target" "$work" "Fuzz/corpus/$target" -runs="$runs" -max_total_time="$seconds" -seed="$seed" -max_len=$length \
        -dict="Fuzz/dictionaries/$dictionary" -timeout=20 -rss_limit_mb=2048 -detect_leaks=0 -print_final_stats=1 \
        -artifact_prefix="Fuzz/.build/crashes/$target-" >"$log" 2>&1; then
        done_runs=$(sed -n 's/^stat::number_of_executed_units: //p' "$log" | tail -1)
        echo "$target: ${done_runs:-?} of $runs runs$([ "${done_runs:-0}" -lt "$runs" ] && echo " (stopped at the $seconds s budget)"), $(grep -o 'cov: [0-9]*' "$log" | tail -1), $(( $(date +%s) - target_start )) s"
    else
        echo "$target: FAILED after $(( $(date +%s) - target_start )) s (log: $log)"
        grep -E "ERROR|property violated|Fatal error|SUMMARY|Test unit written" "$log" | head -10 || tail -20 "$log"
        failed="$failed $target"
    fi
done
echo "fuzz total: $(( $(date +%s) - start )) s"
if [ -n "$failed" ]; then
    echo "fuzz: crashes in:$failed (inputs in Fuzz/.build/crashes/)"
    exit 1
fi
