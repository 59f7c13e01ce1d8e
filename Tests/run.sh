#!/bin/bash
# Installs what the tests need, builds everything, and runs every test: the Swift test suites
# (unit tests and driver tests that run the built binaries against real loop devices and
# filesystems) and then the VM lane, if present. Needs root (loop devices, mounts, apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/install-dependencies.sh
swift build --build-tests
start=$(date +%s)
swift test --skip-build
echo "host tests: $(( $(date +%s) - start )) s"
if [ -x Tests/vm/run.sh ] && [ "${SM_SKIP_VM_LANE:-0}" != 1 ]; then
    Tests/vm/run.sh all
fi
