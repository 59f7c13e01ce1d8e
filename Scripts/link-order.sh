#!/bin/bash
# Writes Scripts/link-order.txt: the functions that the static drivers run for the calls a host
# agent makes most (start-up, --help, an EINVAL answer, the FileSR verbs of a VDI's life, sr_scan,
# sr_gc, lock-util, sm-vhd), those that more calls run first. The release link of the static
# executables (Package.swift, `orderFlags`) lays these functions out next to each other at the
# start of the code, so that a call touches a few dozen pages of code instead of faulting in one
# here and one there across 9 MB (Docs/performance.md, "What changed at stop 26").
#
# Runs each call once under valgrind's callgrind (instruction-level, so every function that runs
# is seen, not only the hot ones) on a copy of the release `sm-drivers` without debug information.
# The list is a hint: a function that is renamed or new is simply not in it (the linker places it
# as usual), so a stale list costs speed, never correctness. Run it again after large changes,
# then build from clean (a changed list does not make SwiftPM link again).
#
# Usage: Scripts/link-order.sh [release binary directory, default .build/release]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$root/.build/release}" && pwd)
command -v valgrind >/dev/null || { echo "link-order: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/sm-link-order.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/run" "$work/lock" "$work/out"
strip -g -o "$work/sm-drivers" "$bin/sm-drivers"
strip -g -o "$work/FileSR-alone" "$bin/FileSR"
for name in FileSR lock-util sm-vhd; do ln -s sm-drivers "$work/$name"; done
export SM_RUN_DIR=$work/run SM_LOCK_DIR=$work/lock SM_LOG_FILE=$work/SMlog SM_CONFIG=$work/none SM_GC_AFTER_DELETE=0
dconf="<dconf><location>$work/srv</location></dconf>"
count=0
# One call under callgrind; its answer does not matter (an EINVAL is one of the calls).
traced() {
    count=$((count + 1))
    valgrind -q --tool=callgrind --demangle=no --callgrind-out-file="$work/out/$count" "$@" >/dev/null 2>&1 || true
}
uuid() { cat /proc/sys/kernel/random/uuid; }
# The life of a VDI, run by FileSR's own executable and by FileSR as the package installs it (a
# link to sm-drivers, whose entry point differs).
life() {
    local driver=$1 sr vdi snapshot clone
    sr=$(uuid) vdi=$(uuid) snapshot=$(uuid) clone=$(uuid)
    traced "$driver" --help
    traced "$driver" "$dconf" vdi_create not-a-uuid
    traced "$driver" "$dconf" sr_create "$sr" 0
    traced "$driver" "$dconf" sr_attach "$sr"
    traced "$driver" "$dconf" vdi_create "$sr" "$vdi" $((1 << 30))
    traced "$driver" "$dconf" vdi_attach "$sr" "$vdi"
    traced "$driver" "$dconf" vdi_activate "$sr" "$vdi"
    traced "$driver" "$dconf" vdi_deactivate "$sr" "$vdi"
    traced "$driver" "$dconf" vdi_detach "$sr" "$vdi"
    traced "$driver" "$dconf" vdi_snapshot "$sr" "$vdi" "$snapshot"
    traced "$driver" "$dconf" vdi_clone "$sr" "$snapshot" "$clone"
    traced "$driver" "$dconf" vdi_resize "$sr" "$vdi" $((2 << 30))
    traced "$driver" "$dconf" vdi_lock "$sr" "$vdi" 0 agent
    traced "$driver" "$dconf" vdi_unlock "$sr" "$vdi" agent
    traced "$driver" "$dconf" sr_scan "$sr"
    traced "$driver" "$dconf" vdi_delete "$sr" "$clone"
    traced "$driver" "$dconf" vdi_delete "$sr" "$snapshot"
    traced "$driver" "$dconf" sr_gc "$sr"
    traced "$driver" "$dconf" vdi_delete "$sr" "$vdi"
    traced "$driver" "$dconf" sr_detach "$sr"
    traced "$driver" "$dconf" sr_delete "$sr"
}
life "$work/FileSR"
life "$work/FileSR-alone"
touch "$work/target"
traced "$work/lock-util" lock "$work/target" w 0 agent 30
traced "$work/lock-util" unlock "$work/target" w agent
traced "$work/sm-vhd" --help
# Functions by the number of calls that ran them (start-up and the common path first), then by
# name, so that the list changes only where the code did. callgrind names a function once per
# file, "(id) name", where it first appears (as a caller or a callee); each function that ran has
# a "fn=" block of its own. Names with spaces or parentheses are the runtime's C++ functions as
# callgrind prints them; the linker matches symbols, so they go.
#
# A symbol can only bring its whole input section with it: one in a large section (the standard
# library's 1.6 MB of value witnesses and thunks that are not in sections of their own, libxml2's
# parser) would put all of it among the small ones, so those come last. Inputs: our objects,
# Swift's static libraries, the C archives the static link names.
swift_static=$(dirname "$(dirname "$(readlink -f "$(command -v swiftc)")")")/lib/swift_static/linux
{
    sed 's/^"//; s/"$//' "$bin/sm-drivers.product/Objects.LinkFileList"
    ls "$swift_static"/*.a /usr/lib/x86_64-linux-gnu/lib{c,m-*,mvec,xml2,icuuc,lzma,z,uuid,blkid,nettle}.a
    for file in libstdc++.a libgcc.a libgcc_eh.a crtbeginT.o; do gcc -print-file-name=$file; done
} > "$work/inputs"
python3 - "$work/inputs" "$work"/out/* > "$root/Scripts/link-order.txt" <<'PYTHON'
import collections, re, subprocess, sys
LARGE = 64 << 10
calls = collections.Counter()
for path in sys.argv[2:]:
    names, ran = {}, set()
    for line in open(path, errors="replace"):
        match = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not match:
            continue
        kind, number, name = match.groups()
        if name:
            names[number] = name
        if kind == "fn":
            ran.add(number)
    calls.update({names[n] for n in ran if n in names and not re.search(r"[ ()]", names[n])})
# The size of the input section each function symbol is defined in (the largest, if several
# objects define it).
section_size = {}
for input_path in open(sys.argv[1]).read().split():
    text = subprocess.run(["readelf", "-SWsW", input_path], capture_output=True, text=True, errors="replace").stdout
    sizes = {}
    for line in text.splitlines():
        if line.startswith("File: "):
            sizes = {}
            continue
        header = re.match(r"\s*\[\s*(\d+)\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)", line)
        if header:
            sizes[header.group(1)] = int(header.group(3), 16)
            continue
        fields = line.split()
        if len(fields) >= 8 and fields[3] in ("FUNC", "IFUNC") and fields[6] in sizes:
            section_size[fields[7]] = max(section_size.get(fields[7], 0), sizes[fields[6]])
# Functions in small sections first, then those in large ones (each large section once, where
# its first function falls), so that even those follow the rest instead of lying anywhere.
# glibc picks its string functions for the CPU when it starts; valgrind's CPU is not this one, so
# every variant of a string function that ran is listed (`__memmove_avx512_unaligned_erms` for
# `__memmove_sse2_unaligned_erms`).
variant = re.compile(r"^(__\w+?)_(sse2|ssse3|sse4_[12]|avx2?|evex|avx512\w*?)(_\w+)?$")
families = {variant.match(name).group(1) for name in calls if variant.match(name)}
for name in section_size:
    match = variant.match(name)
    if match and match.group(1) in families and name not in calls:
        calls[name] = max(count for other, count in calls.items() if other.startswith(match.group(1) + "_"))
ordered = [name for name, _ in sorted(calls.items(), key=lambda item: (-item[1], item[0])) if name in section_size]
for name in [n for n in ordered if section_size[n] <= LARGE] + [n for n in ordered if section_size[n] > LARGE]:
    print(name)
PYTHON
echo "link-order: $(wc -l < "$root/Scripts/link-order.txt") functions from $count calls in Scripts/link-order.txt"
