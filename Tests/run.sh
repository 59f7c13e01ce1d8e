#!/bin/bash
# Installs what the tests need, lints the Swift sources (swift-format, .swift-format), builds
# everything, and runs every test: the Swift test suites
# (unit tests and driver tests that run the built binaries against real loop devices and
# filesystems), the fuzz run (Scripts/fuzz.sh; SM_SKIP_FUZZ=1 skips it), the Debian package (built,
# linted, installed, the demo run from it, purged: Tests/package/run.sh; SM_SKIP_PACKAGE=1 skips it)
# and then the VM lane, if present (SM_SKIP_VM_LANE=1 skips it). Needs root (loop devices, mounts, apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
Scripts/install-dependencies.sh
echo "dependencies: $(( $(date +%s) - start )) s"
start=$(date +%s)
# The house format (.swift-format; the toolchain's swift-format): a violation fails the run.
# `swift format -i -r Sources Tests Fuzz/Sources Package.swift Fuzz/Package.swift` fixes most.
swift format lint --strict --recursive --parallel Sources Tests Fuzz/Sources Package.swift Fuzz/Package.swift
echo "lint: $(( $(date +%s) - start )) s"
start=$(date +%s)
swift build --build-tests
echo "build: $(( $(date +%s) - start )) s"
# The suites that load both cores for minutes (parallel callers, kills, power cuts, two hosts,
# deep chains; RBDSR's Ceph cluster with its timing bounds) run after the others and one test at a
# time, so that no test's time limit measures another's load.
heavy='StressTests|RandomKillTests|PowerLossTests|PoolHostTests|HostileSRTests|EXTSRMultiHostTests|ResizeCrashTests|RBDSRTests|RBDSRCrashTests'
start=$(date +%s)
swift test --skip-build --skip "$heavy"
echo "host tests: $(( $(date +%s) - start )) s"
start=$(date +%s)
swift test --skip-build --filter "$heavy" --no-parallel
echo "host tests (robustness, one at a time): $(( $(date +%s) - start )) s"
if [ "${SM_SKIP_FUZZ:-0}" != 1 ]; then
    start=$(date +%s)
    # 60 s a target here (fuzz.sh's own default is 180): the whole run stays under CI's 45
    # minutes; a target that stops at its budget says how many of its inputs it ran.
    SM_FUZZ_SECONDS=${SM_FUZZ_SECONDS:-60} Scripts/fuzz.sh
    echo "fuzzing: $(( $(date +%s) - start )) s"
fi
if [ "${SM_SKIP_PACKAGE:-0}" != 1 ]; then
    start=$(date +%s)
    Tests/package/run.sh
    echo "package: $(( $(date +%s) - start )) s"
fi
if [ -x Tests/vm/run.sh ] && [ "${SM_SKIP_VM_LANE:-0}" != 1 ]; then
    # Two boots side by side (the lanes of groups.enabled): each group may take longer than alone.
    SM_VM_GROUP_TIMEOUT=${SM_VM_GROUP_TIMEOUT:-1200} Tests/vm/run.sh all
fi
