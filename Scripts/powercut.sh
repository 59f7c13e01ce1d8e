#!/bin/bash
# Many power cuts: runs PowerLossTests (Docs/power-loss.md) with SM_POWERCUT_ITERATIONS random
# cuts (default 500; about 1.3 s each on a quiet 2-core machine, 4.5 s under load). Reproduce a
# failure with the seed it printed: SM_POWERCUT_SEED=<seed> Scripts/powercut.sh 1
#   Scripts/powercut.sh [ITERATIONS]
# Needs root (FUSE mounts) and /dev/fuse; installs python3-llfuse through install-dependencies.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/install-dependencies.sh
swift build --build-tests 2>&1 | tail -1
start=$(date +%s)
SM_POWERCUT_ITERATIONS="${1:-500}" swift test --skip-build --filter PowerLossTests
echo "power cuts: $(( $(date +%s) - start )) s"
