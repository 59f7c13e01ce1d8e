#!/bin/bash
# The VM lane: runs test groups that need a real kernel (device-mapper, the NFS client and
# server, the iSCSI initiator) inside Debian's kernel, booted under QEMU software emulation with
# this host's root filesystem shared read-only over 9p, so the binaries just built run unchanged.
#
#   Tests/vm/run.sh all             # the groups listed in Tests/vm/groups.enabled, one boot
#   Tests/vm/run.sh lvm             # one group (any Tests/vm/groups/<name>.sh), one boot
#   Tests/vm/run.sh lvm ext         # several groups, one boot
#   Tests/vm/run.sh list            # the groups, and which are enabled
#
# Exit status: 0 every group passed; 1 a group failed (its test said so, or it overran its
# time limit inside the guest); 2 usage error; 3 INFRASTRUCTURE FAILURE (no kernel or QEMU, the
# guest never booted, or a group's result never came back). Needs root.
#
# Environment:
#   SM_BIN_DIR               built products (default: .build/debug, built with `swift build`)
#   SM_VM_MEMORY             guest memory in MiB (default 1024)
#   SM_VM_CPUS               guest vCPUs (default 2)
#   SM_VM_DISK_SIZE          size of each group's sparse virtio scratch disk (default 4G)
#   SM_VM_BOOT_TIMEOUT       seconds for the guest to start reporting (default 240)
#   SM_VM_GROUP_TIMEOUT      seconds one group may run inside the guest (default 600)
#   SM_VM_LOG_DIR            keep the guest's per-group logs here (default: a temporary directory)
#   SM_VM_SKIP_INSTALL=1     do not run Scripts/install-dependencies.sh
#   SM_VM_LANES=1            `all` in one boot (default: one boot per lane of groups.enabled, side by side)
#   SM_VM_ENV                NAME=VALUE words exported to every group in the guest (a group's own
#                            knobs, e.g. SM_VM_ENV="POOL_DURATION=60" for a shorter nfs-pool run)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd -P)
vm_dir="$repo/Tests/vm"

readonly EXIT_TEST_FAILED=1 EXIT_USAGE=2 EXIT_INFRASTRUCTURE=3

usage() {
    sed -n '2,26p' "$vm_dir/run.sh" | sed 's/^# \{0,1\}//' >&2
    exit $EXIT_USAGE
}

infrastructure_failure() {
    echo "VM LANE INFRASTRUCTURE FAILURE: $*"
    echo "(the lane's machinery failed; this is not a test result)"
    exit $EXIT_INFRASTRUCTURE
}

# groups.enabled: one group a line, optionally followed by the boot ("lane") it runs in.
enabled_groups() {
    sed 's/#.*//' "$vm_dir/groups.enabled" | awk 'NF { print $1 }'
}
lane_of() {
    sed 's/#.*//' "$vm_dir/groups.enabled" | awk -v g="$1" '$1 == g { print ($2 == "" ? 1 : $2); exit }'
}

all_groups() {
    local script
    for script in "$vm_dir"/groups/*.sh; do basename "$script" .sh; done
}

# ---- arguments ----------------------------------------------------------------------------------
[ $# -ge 1 ] || usage
case "$1" in
    -h|--help|help) usage ;;
    list)
        enabled=" $(enabled_groups | tr '\n' ' ') "
        for group in $(all_groups); do
            case "$enabled" in *" $group "*) echo "$group (enabled: runs in 'all')" ;; *) echo "$group" ;; esac
        done
        exit 0 ;;
esac
groups=()
from_all=0
for argument in "$@"; do
    if [ "$argument" = all ]; then
        from_all=1
        mapfile -t -O "${#groups[@]}" groups < <(enabled_groups)
    else
        groups+=("$argument")
    fi
done
for group in "${groups[@]}"; do
    if ! [[ "$group" =~ ^[a-z0-9][a-z0-9-]{0,15}$ ]] || [ ! -f "$vm_dir/groups/$group.sh" ]; then
        echo "Tests/vm/run.sh: no such group '$group' (Tests/vm/run.sh list shows them)" >&2
        exit $EXIT_USAGE
    fi
done
if [ ${#groups[@]} -eq 0 ]; then
    echo "VM lane: no groups enabled in Tests/vm/groups.enabled; nothing to run"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "Tests/vm/run.sh: needs root (it installs packages and boots QEMU)" >&2; exit $EXIT_USAGE; }

lane_start=$(date +%s)

# ---- what the guest needs on this host ----------------------------------------------------------
if [ "${SM_VM_SKIP_INSTALL:-0}" != 1 ]; then
    Scripts/install-dependencies.sh || infrastructure_failure "installing the Debian packages failed"
fi
if [ -z "${SM_BIN_DIR:-}" ]; then
    # A no-op when Tests/run.sh has just built; by hand it makes sure the guest runs current code.
    if ! build_output=$(swift build 2>&1); then
        printf '%s\n' "$build_output" | tail -n 30
        echo "VM lane: swift build failed"
        exit $EXIT_TEST_FAILED
    fi
    SM_BIN_DIR="$repo/.build/debug"
fi
bin_dir=$(cd "$SM_BIN_DIR" && pwd -P) || infrastructure_failure "SM_BIN_DIR $SM_BIN_DIR does not exist"

# The newest kernel that has both its modules and its image; never a hard-coded version.
kernel=""
for version in $(ls /lib/modules 2>/dev/null | sort -V); do
    [ -f "/boot/vmlinuz-$version" ] && kernel=$version
done
[ -n "$kernel" ] || infrastructure_failure "no kernel: /lib/modules has no version with a /boot/vmlinuz (is linux-image-amd64 installed?)"
command -v qemu-system-x86_64 >/dev/null || infrastructure_failure "qemu-system-x86_64 is not installed"

# ---- the initramfs: busybox and just enough modules to mount the host root ----------------------
# Cached (it is a few MB) under Tests/vm/.cache, keyed by kernel, busybox and the stage-1 script.
stage1_modules=(virtio_pci 9pnet_virtio 9p overlay)
cache_dir="$vm_dir/.cache"
mkdir -p "$cache_dir"
key=$( { echo "$kernel"; sha256sum /bin/busybox "$vm_dir/stage1-init"; } | sha256sum | cut -c1-16)
initramfs="$cache_dir/initramfs-$kernel-$key.cpio"
if [ ! -f "$initramfs" ]; then
    rm -f "$cache_dir"/initramfs-*.cpio
    staging=$(mktemp -d)
    mkdir -p "$staging"/{bin,dev,proc,sys,lower,rw,newroot,modules}
    cp /bin/busybox "$staging/bin/busybox"
    cp "$vm_dir/stage1-init" "$staging/init"
    chmod 755 "$staging/init"
    module_paths=()
    for module in "${stage1_modules[@]}"; do
        dependencies=$(modprobe -S "$kernel" --show-depends "$module") \
            || infrastructure_failure "modprobe cannot resolve $module for kernel $kernel"
        mapfile -t -O "${#module_paths[@]}" module_paths < <(awk '$1 == "insmod" { print $2 }' <<< "$dependencies")
    done
    : > "$staging/modules/order"
    for path in "${module_paths[@]}"; do
        grep -qxF "${path##*/}" "$staging/modules/order" && continue
        cp "$path" "$staging/modules/"
        echo "${path##*/}" >> "$staging/modules/order"
    done
    partial=$(mktemp "$cache_dir/partial.XXXXXX")
    (cd "$staging" && find . | cpio --quiet -o -H newc > "$partial")
    mv "$partial" "$initramfs"
    rm -rf "$staging"
fi

# ---- `all`: one boot per lane, the lanes at the same time ---------------------------------------
# Many groups spend most of their time waiting (leases, MMP intervals, soft timeouts, sanlock),
# so two guests side by side fill each other's waits on two cores. SM_VM_LANES=1 runs
# everything in one boot.
if [ "$from_all" = 1 ] && [ "${SM_VM_LANES:-2}" != 1 ] && [ "${SM_VM_LANE_CHILD:-0}" != 1 ]; then
    declare -A lane_groups=()
    for group in "${groups[@]}"; do lane=$(lane_of "$group"); lane_groups[$lane]+="$group "; done
    if [ "${#lane_groups[@]}" -gt 1 ]; then
        echo "VM lane: ${#lane_groups[@]} boots side by side: $(for lane in $(printf '%s\n' "${!lane_groups[@]}" | sort -n); do printf '[lane %s] %s ' "$lane" "${lane_groups[$lane]}"; done)"
        lane_dir=$(mktemp -d "${TMPDIR:-/tmp}/sm-vm-lanes.XXXXXX")
        trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$lane_dir"' EXIT
        trap 'exit 130' INT TERM
        children=()
        for lane in $(printf '%s\n' "${!lane_groups[@]}" | sort -n); do
            # shellcheck disable=SC2086
            # set +e: the lane's status must be written when its run fails, too.
            ( set +e; SM_VM_LANE_CHILD=1 SM_VM_SKIP_INSTALL=1 SM_BIN_DIR="$bin_dir" "$vm_dir/run.sh" ${lane_groups[$lane]} 2>&1 \
                  | tee "$lane_dir/$lane.log" | sed -u "s/^/[lane $lane] /"
              echo "${PIPESTATUS[0]}" > "$lane_dir/$lane.status" ) &
            children+=($!)
        done
        for child in "${children[@]}"; do wait "$child" || true; done
        verdict=0 passed=0 failed=0
        for lane in $(printf '%s\n' "${!lane_groups[@]}" | sort -n); do
            status=$(cat "$lane_dir/$lane.status" 2>/dev/null || echo 3)
            summary=$(grep -o 'vm: [0-9]* passed, [0-9]* failed' "$lane_dir/$lane.log" | tail -1)
            read -r lane_passed lane_failed < <(sed 's/vm: \([0-9]*\) passed, \([0-9]*\) failed/\1 \2/' <<< "${summary:-vm: 0 passed, 1 failed}")
            passed=$((passed + lane_passed)); failed=$((failed + lane_failed))
            [ "$status" -gt "$verdict" ] && verdict=$status
        done
        # Every lane's results again, at the end: a CI log is often read from its tail, where the
        # first lane's report would otherwise scroll away behind the second lane's output. A failed
        # group's last lines come with it, without the kernel's console messages (the full output
        # is above, prefixed by its lane).
        echo
        echo "VM lane: the lanes' results together"
        for lane in $(printf '%s\n' "${!lane_groups[@]}" | sort -n); do
            sed -n '/^VM lane results/,$p' "$lane_dir/$lane.log" | grep -E '^  [a-z0-9-]+ +(PASS|FAIL|NO RESULT)|^ +FAIL: |^VM LANE INFRASTRUCTURE' \
                | sed "s/^/[lane $lane] /" || true
            # (no failed group: grep finds nothing, which set -e and pipefail must not take as an error)
            { grep -E '^  [a-z0-9-]+ +FAIL ' "$lane_dir/$lane.log" || true; } | awk '{ print $1 }' | while read -r group; do
                echo "[lane $lane] the last lines of $group:"
                awk -v g="$group" '$0 ~ "^===== VM group " g ": start" { keep = 1; n = 0 } keep && !/^\[ *[0-9]+\.[0-9]+\] / { line[n++ % 25] = $0 } $0 ~ "^===== VM group " g ": (PASS|FAIL)" { keep = 0; last = n } END { for (i = (last > 25 ? last - 25 : 0); i < last; i++) print line[i % 25] }' \
                    "$lane_dir/$lane.log" | sed "s/^/[lane $lane] | /"
            done
        done
        echo "VM lane: all lanes done in $(( $(date +%s) - lane_start )) s"
        echo "vm: $passed passed, $failed failed"
        exit "$verdict"
    fi
fi

# ---- one boot for all the requested groups ------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/sm-vm-lane.XXXXXX")
qemu_pid_file="$work/qemu.pid"
cleanup() {
    if [ -s "$qemu_pid_file" ]; then kill "$(cat "$qemu_pid_file")" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

out="$work/out"
mkdir -p "$out/results"
if [ -n "${SM_VM_LOG_DIR:-}" ]; then
    mkdir -p "$SM_VM_LOG_DIR"
    out=$(cd "$SM_VM_LOG_DIR" && pwd -P)
    rm -rf "$out/results" "$out/booted" "$out/finished" "$out/config"
    mkdir -p "$out/results"
fi
group_timeout=${SM_VM_GROUP_TIMEOUT:-600}
boot_timeout=${SM_VM_BOOT_TIMEOUT:-240}
total_timeout=$(( boot_timeout + (group_timeout + 30) * ${#groups[@]} ))

# The guest reads its orders from the shared results directory.
{
    printf 'VM_REPO=%q\n' "$repo"
    printf 'SM_BIN_DIR=%q\n' "$bin_dir"
    printf 'VM_GROUPS=%q\n' "${groups[*]}"
    printf 'VM_GROUP_TIMEOUT=%q\n' "$group_timeout"
    for setting in ${SM_VM_ENV:-}; do
        [[ "$setting" =~ ^[A-Z][A-Z0-9_]*=[A-Za-z0-9_./:-]*$ ]] || { echo "SM_VM_ENV: '$setting' is not NAME=VALUE" >&2; exit 2; }
        printf 'export %s=%q\n' "${setting%%=*}" "${setting#*=}"
    done
} > "$out/config"

disk_args=()
for group in "${groups[@]}"; do
    truncate -s "${SM_VM_DISK_SIZE:-4G}" "$work/disk-$group.img"
    disk_args+=(-drive "file=$work/disk-$group.img,if=none,id=disk-$group,format=raw,cache=unsafe,discard=unmap"
                -device "virtio-blk-pci,drive=disk-$group,serial=$group")
done

echo "VM lane: booting Debian kernel $kernel (QEMU TCG, ${SM_VM_CPUS:-2} vCPUs, ${SM_VM_MEMORY:-1024} MiB) for: ${groups[*]}"
boot_start=$(date +%s)
{
    timeout --kill-after=10 "$total_timeout" qemu-system-x86_64 \
        -accel tcg,thread=multi -cpu max -smp "${SM_VM_CPUS:-2}" -m "${SM_VM_MEMORY:-1024}" \
        -nodefaults -no-user-config -display none -no-reboot -pidfile "$qemu_pid_file" \
        -serial stdio -device virtio-rng-pci \
        -kernel "/boot/vmlinuz-$kernel" -initrd "$initramfs" \
        -append "console=ttyS0 panic=-1 quiet loglevel=3 smvm_init=$vm_dir/guest-init.sh" \
        -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap" \
        -device "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot" \
        -fsdev "local,id=out,path=$out,security_model=none,multidevs=remap" \
        -device "virtio-9p-pci,fsdev=out,mount_tag=out" \
        "${disk_args[@]}" < /dev/null
    echo $? > "$work/qemu.status"
} 2>&1 | sed -u 's/\r$//' &
console_pipeline=$!

# Watchdog: a guest that has not started reporting within the boot timeout is an infrastructure
# failure; stop QEMU rather than wait for the whole run's timeout.
never_booted=0
while kill -0 "$console_pipeline" 2>/dev/null; do
    if [ ! -e "$out/booted" ] && [ $(( $(date +%s) - boot_start )) -ge "$boot_timeout" ]; then
        never_booted=1
        [ -s "$qemu_pid_file" ] && kill "$(cat "$qemu_pid_file")" 2>/dev/null || true
        break
    fi
    sleep 1
done
wait "$console_pipeline" || true
lane_end=$(date +%s)
qemu_status=$(cat "$work/qemu.status" 2>/dev/null || echo "?")

# ---- the report ---------------------------------------------------------------------------------
echo
echo "VM lane results (kernel $kernel):"
if [ -e "$out/booted" ]; then
    echo "  guest boot (kernel start to its first report): $(cat "$out/booted") s"
fi
passed=0 failed=0 unreported=0
for group in "${groups[@]}"; do
    if [ -f "$out/results/$group" ]; then
        read -r status seconds < "$out/results/$group"
        if [ "$status" = 0 ]; then
            passed=$((passed + 1)); printf '  %-14s PASS  %4s s\n' "$group" "$seconds"
        else
            failed=$((failed + 1))
            case "$status" in
                124|137) why="timed out after $group_timeout s inside the guest" ;;
                *) why="exit status $status" ;;
            esac
            printf '  %-14s FAIL  %4s s  (%s)\n' "$group" "$seconds" "$why"
            grep -m1 '^FAIL: ' "$out/$group.log" 2>/dev/null | sed 's/^/                 /' || true
        fi
    else
        unreported=$((unreported + 1)); printf '  %-14s NO RESULT (the guest never reported this group)\n' "$group"
    fi
done
echo "  total VM lane wall time: $(( lane_end - lane_start )) s (boot and groups: $(( lane_end - boot_start )) s)"
verdict=0 reason=""
if [ "$never_booted" = 1 ]; then
    verdict=$EXIT_INFRASTRUCTURE
    reason="the guest never reported within $boot_timeout s of starting QEMU (QEMU status $qemu_status); see the console above"
elif [ ! -e "$out/booted" ]; then
    verdict=$EXIT_INFRASTRUCTURE
    reason="QEMU exited (status $qemu_status) before the guest reported; see the console above"
elif [ "$failed" -gt 0 ]; then
    verdict=$EXIT_TEST_FAILED
elif [ "$unreported" -gt 0 ]; then
    verdict=$EXIT_INFRASTRUCTURE
    if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
        reason="QEMU was stopped at the run's $total_timeout s limit before every group reported"
    else
        reason="the guest stopped (QEMU status $qemu_status) before every group reported; see the console above"
    fi
fi
if [ "$verdict" = "$EXIT_INFRASTRUCTURE" ]; then
    echo "VM LANE INFRASTRUCTURE FAILURE: $reason"
    echo "(the lane's machinery failed; this is not a test result)"
elif [ "$unreported" -gt 0 ]; then
    echo "VM LANE INFRASTRUCTURE FAILURE as well: $unreported group(s) never reported"
fi
echo "vm: $passed passed, $(( failed + unreported )) failed"
exit "$verdict"
