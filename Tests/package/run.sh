#!/bin/bash
# The installable package, end to end: builds it (Scripts/build-package.sh), lints it (lintian:
# no errors), installs it with apt (its declared dependencies must be enough), checks what it
# put where, runs the demo against the installed FileSR with the Swift toolchain hidden (an empty
# tmpfs over it in a private mount namespace, so a binary that still needed it would fail), tries
# the man pages, the bash completion and the logrotate file, and purges the package again.
# Needs root. Refuses to run where /etc/sm/sm.conf exists and the package is not installed: the
# purge at the end would delete an administrator's file.
set -euo pipefail
cd "$(dirname "$0")/../.."
package=storage-manager
fail() { echo "package test FAILED: $*"; exit 1; }
step() { echo "== package: $*"; }

installed() { dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; }
if [ -e /etc/sm/sm.conf ] && ! installed; then
    fail "/etc/sm/sm.conf exists and is not the package's: not installing over it"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sm-package-test.XXXXXX")
chmod 755 "$work"
cleanup() {
    if [ "${SM_KEEP_PACKAGE:-0}" != 1 ] && installed; then
        dpkg --purge "$package" >/dev/null || echo "package test: could not purge $package"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step "build"
deb=$(Scripts/build-package.sh "$work")
[ -f "$deb" ] || fail "Scripts/build-package.sh printed '$deb', which is no file"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Installed-Size\):/  \1:/p'

step "lintian (errors fail, warnings are printed)"
lintian_output=$(lintian --fail-on error --tag-display-limit 0 "$deb") || {
    printf '%s\n' "$lintian_output"
    fail "lintian found errors"
}
printf '%s\n' "${lintian_output:-  (nothing)}" | sed 's/^/  /'

step "install with apt (the declared dependencies resolve)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold "$deb" >/dev/null || fail "apt-get install $deb failed"
installed || fail "$package is not installed after apt-get install"

step "files"
for path in /usr/sbin/lock-util /usr/sbin/sm-vhd /etc/sm/sm.conf /etc/logrotate.d/$package; do
    [ -e "$path" ] || fail "$path is missing"
done
drivers=$(cd /usr/libexec/sm && ls | grep -vx -e sm-drivers -e sm-dynamic-drivers)
[ -n "$drivers" ] || fail "/usr/libexec/sm holds no drivers"
for driver in $drivers; do
    [ "$(readlink "/usr/sbin/$driver")" = "../libexec/sm/$driver" ] || fail "/usr/sbin/$driver does not lead to /usr/libexec/sm/$driver"
    # A driver held by a multi-call executable (sm-drivers, sm-dynamic-drivers) is a link to it, which
    # must answer by that name.
    "/usr/libexec/sm/$driver" --help | head -1 | grep -q "^Usage: $driver " || fail "/usr/libexec/sm/$driver does not answer as $driver"
    man -w "$driver" >/dev/null 2>&1 || fail "man has no page for $driver"
done
man -w lock-util >/dev/null 2>&1 || fail "man has no page for lock-util"
MANWIDTH=100 man -P cat FileSR 2>/dev/null | grep -q "vdi_snapshot SR-UUID source-VDI-UUID dest-VDI-UUID" \
    || fail "man FileSR does not show the verb table"
dpkg-query -W -f='${Conffiles}\n' "$package" | grep -q " /etc/sm/sm.conf " || fail "/etc/sm/sm.conf is not a conffile"
echo "  drivers: $(echo $drivers)"

step "code order: sm-drivers starts with Scripts/link-order.txt's functions"
# Package.swift links the static executables with lld and that list (`orderFlags`); a build that
# lost either still works, only slower, so this is where it shows. The installed copy is
# stripped: the build's own (the same layout, with its symbols) is read. The first listed
# function must open the code, and the first 200 that the executable defines must lie in its
# first MiB (a C object brings all of its functions where its first listed one goes, so they are
# not in the list's exact order); unordered, they are spread over all 9 MB.
bin=$(swift build -c release --static-swift-stdlib --show-bin-path)
python3 - "$bin/sm-drivers" Scripts/link-order.txt <<'PYTHON' || fail "sm-drivers is not laid out by Scripts/link-order.txt"
import re, subprocess, sys
executable, order = sys.argv[1], open(sys.argv[2]).read().split()
sections = subprocess.run(["readelf", "-SW", executable], capture_output=True, text=True, check=True).stdout
start = int(re.search(r"\.text\s+PROGBITS\s+([0-9a-f]+)", sections).group(1), 16)
address = {}
for line in subprocess.run(["nm", "--defined-only", executable], capture_output=True, text=True, check=True).stdout.splitlines():
    fields = line.split()
    if len(fields) == 3 and fields[1] in "tTiW":
        address.setdefault(fields[2], int(fields[0], 16) - start)
placed = [address[name] for name in order if name in address][:200]
if len(placed) < 200 or placed[0] >= 4096 or max(placed) >= 1 << 20:
    print(f"  {len(placed)} listed functions found, the first at .text+{placed[0] if placed else -1:#x}, the farthest at .text+{max(placed, default=-1):#x}")
    sys.exit(1)
print(f"  the first 200 listed functions lie within .text+{max(placed):#x}")
PYTHON

step "no executable needs the Swift toolchain"
swift_path=$(readlink -f "$(command -v swift)" 2>/dev/null || true)
toolchain=${swift_path%/usr/bin/*}
if [ -z "$swift_path" ]; then
    toolchain=""
elif [ -z "$toolchain" ] || [ "$toolchain" = "$swift_path" ]; then
    toolchain=$(dirname "$(dirname "$swift_path")")/lib/swift   # a toolchain in /usr: hide its runtime only
fi
for executable in /usr/libexec/sm/* /usr/sbin/lock-util /usr/sbin/sm-vhd; do
    if ! readelf -d "$executable" | grep -q NEEDED; then
        readelf -l "$executable" | grep -q INTERP && fail "$executable has an interpreter but needs no library"
        continue   # fully static (sm-drivers and its links): nothing to load
    fi
    libraries=$(ldd "$executable") || fail "ldd $executable failed"
    if grep -q "not found" <<< "$libraries"; then fail "$executable: $(grep 'not found' <<< "$libraries" | head -1)"; fi
    if [ -n "$toolchain" ] && grep -qF "$toolchain" <<< "$libraries"; then fail "$executable loads from the toolchain $toolchain"; fi
done

step "the demo against /usr/sbin/FileSR, toolchain ${toolchain:-(none installed)} hidden"
if [ -n "$toolchain" ]; then
    demo=$(unshare --mount --propagation private sh -c \
        'mount -t tmpfs -o ro,size=1m none "$1" && SM_DEMO_BIN_DIR=/usr/sbin Scripts/demo.sh 2>/dev/null' sh "$toolchain") \
        || fail "the demo failed with the installed binaries"
else
    demo=$(SM_DEMO_BIN_DIR=/usr/sbin Scripts/demo.sh 2>/dev/null) || fail "the demo failed with the installed binaries"
fi
vdis=$(grep -o "<vdi>" <<< "$demo" | wc -l)
[ "$vdis" = 3 ] || fail "the demo's sr_scan listed $vdis VDIs, expected 3: $demo"
echo "  sr_scan listed 3 VDIs"

step "bash completion of verbs"
completion=$(bash -c 'source /usr/share/bash-completion/completions/FileSR
    COMP_WORDS=(FileSR "<dconf/>" vdi_c); COMP_CWORD=2; _sm_driver; echo "${COMPREPLY[*]}"')
[ "$completion" = "vdi_create vdi_clone" ] || [ "$completion" = "vdi_clone vdi_create" ] \
    || fail "FileSR <dconf> vdi_c<TAB> completed to '$completion'"
echo "  FileSR <dconf> vdi_c<TAB>: $completion"

step "logrotate accepts the configuration"
logrotate --debug "/etc/logrotate.d/$package" >/dev/null 2>&1 || fail "logrotate --debug rejects /etc/logrotate.d/$package"

echo "package: passed ($(basename "$deb"))"
