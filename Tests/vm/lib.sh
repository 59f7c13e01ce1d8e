# Helpers for the VM lane's group scripts (sourced; runs inside the guest).
#
# The guest init exports: VM_GROUP (this group's name), VM_REPO (the repository), SM_BIN_DIR (the
# built products), VM_DISK (this group's own empty virtio scratch disk, e.g. /dev/vda).
#
#   vm_step TEXT                 prints a numbered step with the group's elapsed time
#   vm_fail TEXT                 prints "FAIL: TEXT" and ends the group with status 1
#   vm_check TEXT CMD...         runs CMD; on failure ends the group, naming TEXT and CMD's output
#   vm_wait_for SECONDS CMD...   retries CMD every 0.2 s until it succeeds, or fails the group
#   vm_on_exit CMD...            cleanup run (last first) when the group ends, pass or fail
#   vm_driver DRIVER DCONF VERB ARGS...
#                                runs a built driver; sets DRIVER_STATUS, DRIVER_OUT, DRIVER_ERR
#   vm_driver_ok DRIVER DCONF VERB ARGS...
#                                vm_driver, and fails the group unless it exits 0; ENOSYS (38) is
#                                reported as "the driver does not implement VERB yet"
#   vm_driver_status CODE DRIVER DCONF VERB ARGS...
#                                vm_driver, and fails the group unless it exits CODE
#   vm_xml_values TAG <<< XML    the trimmed text of every <TAG> element, one a line
set -u
export LVM_SUPPRESS_FD_WARNINGS=1

VM_GROUP_START=$(date +%s.%N)
VM_STEP=0
VM_CLEANUPS=()

vm_elapsed() { echo "$VM_GROUP_START $(date +%s.%N)" | awk '{ printf "%6.1f", $2 - $1 }'; }

vm_step() {
    VM_STEP=$((VM_STEP + 1))
    echo "[$(vm_elapsed) s] $VM_GROUP step $VM_STEP: $*"
}

vm_fail() {
    echo "FAIL: $VM_GROUP: $*"
    exit 1
}

vm_check() {
    local what=$1 output
    shift
    if ! output=$("$@" 2>&1); then
        printf '%s\n' "$output" | tail -n 20
        vm_fail "$what (command: $*)"
    fi
    [ -z "$output" ] || printf '%s\n' "$output"
}

vm_wait_for() {
    local seconds=$1 deadline
    shift
    deadline=$(echo "$(date +%s.%N) $seconds" | awk '{ printf "%.1f", $1 + $2 }')
    until "$@" >/dev/null 2>&1; do
        if awk -v now="$(date +%s.%N)" -v end="$deadline" 'BEGIN { exit !(now > end) }'; then
            vm_fail "waited $seconds s for: $*"
        fi
        sleep 0.2
    done
}

vm_on_exit() { VM_CLEANUPS+=("$(printf '%q ' "$@")"); }

vm_run_cleanups() {
    local status=$? index
    trap - EXIT
    for ((index = ${#VM_CLEANUPS[@]} - 1; index >= 0; index--)); do
        eval "${VM_CLEANUPS[index]}" >/dev/null 2>&1 || true
    done
    exit "$status"
}
trap vm_run_cleanups EXIT

vm_driver() {
    local driver=$1 dconf=$2 verb=$3 errors
    shift 3
    errors=$(mktemp)
    DRIVER_STATUS=0
    DRIVER_OUT=$("$SM_BIN_DIR/$driver" "$dconf" "$verb" "$@" 2>"$errors") || DRIVER_STATUS=$?
    DRIVER_ERR=$(cat "$errors")
    rm -f "$errors"
    echo "  $driver $verb $* -> exit $DRIVER_STATUS${DRIVER_ERR:+ (${DRIVER_ERR##*$'\n'})}"
}

vm_driver_explain() {
    local driver=$1 verb=$2
    if [ "$DRIVER_STATUS" = 38 ]; then
        vm_fail "$driver does not implement $verb yet (exit 38, \"${DRIVER_ERR##*$'\n'}\"); this group needs the real driver and cannot pass until it lands"
    fi
    [ -z "$DRIVER_OUT" ] || printf '  stdout: %s\n' "$DRIVER_OUT"
    [ -z "$DRIVER_ERR" ] || printf '  stderr: %s\n' "$DRIVER_ERR"
}

vm_driver_ok() {
    vm_driver "$@"
    if [ "$DRIVER_STATUS" != 0 ]; then
        vm_driver_explain "$1" "$3"
        vm_fail "$1 $3 failed with exit status $DRIVER_STATUS, expected success"
    fi
}

vm_driver_status() {
    local expected=$1
    shift
    vm_driver "$@"
    if [ "$DRIVER_STATUS" != "$expected" ]; then
        vm_driver_explain "$1" "$3"
        vm_fail "$1 $3 exited $DRIVER_STATUS, expected $expected"
    fi
}

vm_xml_values() {
    tr -d '\n' | grep -o "<$1>[^<]*</$1>" | sed -e "s|^<$1>||" -e "s|</$1>\$||" \
        -e 's/^[[:space:]"]*//' -e 's/[[:space:]"]*$//'
}

[ -n "${VM_DISK:-}" ] && [ -b "$VM_DISK" ] || vm_fail "no scratch disk for this group (VM_DISK='${VM_DISK:-}')"
