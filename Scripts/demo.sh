#!/bin/bash
# The main job on the embedded default: FileSR on a temporary directory, through a realistic
# sequence (create SR, attach, three VDIs, resize one, scan, detach VDIs, delete). Installs what
# it needs, builds release executables with the Swift runtime linked statically, and prints the
# sr_scan XML. Host state goes to a temporary directory too, so the host is left untouched.
# SM_DEMO_BIN_DIR=DIR runs DIR/FileSR instead (an installed package: /usr/sbin), building nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${SM_DEMO_BIN_DIR:-}" ]; then
    # The installed package's FileSR (Tests/package/run.sh runs the demo so, toolchain hidden).
    FileSR="$SM_DEMO_BIN_DIR/FileSR"
else
    Scripts/install-dependencies.sh
    swift build -c release --static-swift-stdlib --product FileSR >&2
    FileSR="$(swift build -c release --static-swift-stdlib --show-bin-path)/FileSR"
fi
work=$(mktemp -d /tmp/sm-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/srv"
export SM_RUN_DIR="$work/run" SM_LOCK_DIR="$work/lock" SM_LOG_FILE="$work/SMlog"
dconf="<dconf><location>$work/srv</location></dconf>"
sr=$(cat /proc/sys/kernel/random/uuid)
vdis=($(cat /proc/sys/kernel/random/uuid) $(cat /proc/sys/kernel/random/uuid) $(cat /proc/sys/kernel/random/uuid))
step() { echo "+ FileSR <dconf> $*" >&2; "$FileSR" "$dconf" "$@"; }
step sr_create "$sr" 0
step sr_attach "$sr"
step vdi_create "$sr" "${vdis[0]}" 1073741824
step vdi_create "$sr" "${vdis[1]}" 10737418240
step vdi_create "$sr" "${vdis[2]}" 2097152
step vdi_resize "$sr" "${vdis[2]}" 4294967296
step vdi_attach "$sr" "${vdis[0]}" >&2
step sr_scan "$sr"
step vdi_detach "$sr" "${vdis[0]}"
for vdi in "${vdis[@]}"; do step vdi_delete "$sr" "$vdi"; done
step sr_detach "$sr"
step sr_delete "$sr"
echo "SMlog:" >&2
cat "$SM_LOG_FILE" >&2
