# Hosts of a pool inside the guest, for VM-lane groups (sourced after lib.sh; runs inside the guest).
# ../shared/VM-LANE.md, "Several hosts in one guest", is the recipe.
#
# A host is a network namespace (its own veth on the bridge $VM_POOL_BRIDGE, its own address, so
# its own kernel NFS client, NFSv4 client id and lock state on the server), a UTS namespace (its
# own host name) and a mount namespace (its own mounts, and its own /etc/sm: a bind mount of
# /run/<host>/etc-sm, whose sm.conf gives the host its host_id, run_dir, lock_dir, mount_dir,
# log_file and claim_lease, so that no host-local state is shared). One long-lived holder process
# per host keeps the namespaces; every command of the host runs in them with nsenter.
#
#   vm_pool_network                 the bridge (192.168.77.1/24) in the guest's own namespace
#   vm_pool_host NAME INDEX [CONF]  host NAME at 192.168.77.<10+INDEX>; CONF: extra sm.conf lines
#   vm_pool_in HOST CMD...          runs CMD as that host (its namespaces)
#   vm_pool_driver HOST VERB ARGS...
#                                   NFSSR with $POOL_DCONF as that host; sets DRIVER_STATUS,
#                                   DRIVER_OUT, DRIVER_ERR (environment: POOL_ENV=(NAME=VALUE...))
#   vm_pool_ok HOST VERB ARGS...    vm_pool_driver, and fails the group unless it exits 0
#   vm_pool_pids HOST               every process in that host's network namespace
#   vm_pool_mount HOST              the host's mount point of $POOL_SR
# The guest's /dev has no /dev/fd, which bash's process substitution needs.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
VM_POOL_BRIDGE=smpool0
VM_POOL_SERVER=192.168.77.1
declare -A VM_POOL_HOLDER
POOL_ENV=()

vm_pool_network() {
    vm_check "modprobe bridge veth" modprobe -a bridge veth
    vm_check "bridge" ip link add "$VM_POOL_BRIDGE" type bridge
    vm_on_exit ip link del "$VM_POOL_BRIDGE"
    vm_check "bridge address" ip addr add "$VM_POOL_SERVER/24" dev "$VM_POOL_BRIDGE"
    vm_check "bridge up" ip link set "$VM_POOL_BRIDGE" up
}

vm_pool_has_hostname() { [ "$(nsenter -t "$1" -u hostname 2>/dev/null)" = "$2" ]; }
vm_pool_has_conf() { nsenter -t "$1" -m -- test -f /etc/sm/sm.conf; }

vm_pool_host() {
    local h=$1 index=$2 extra=${3:-}
    vm_check "netns $h" ip netns add "$h"
    vm_on_exit ip netns del "$h"
    vm_check "veth for $h" ip link add "veth-$h" type veth peer name eth0 netns "$h"
    vm_on_exit ip link del "veth-$h"
    vm_check "veth-$h on the bridge" ip link set "veth-$h" master "$VM_POOL_BRIDGE" up
    vm_check "address of $h" ip -n "$h" addr add "192.168.77.$((10 + index))/24" dev eth0
    vm_check "eth0 of $h up" ip -n "$h" link set eth0 up
    vm_check "lo of $h up" ip -n "$h" link set lo up
    # A new host: nothing of a host of the same name in an earlier group (its SMlog, state).
    rm -rf "/run/$h"
    mkdir -p "/run/$h/etc-sm" /etc/sm
    cat > "/run/$h/etc-sm/sm.conf" <<EOF
# host $h of the pool (VM lane)
host_id = $h
run_dir = /run/$h/sm
lock_dir = /run/$h/lock
mount_dir = /run/$h/sr-mount
log_file = /run/$h/SMlog
$extra
EOF
    ip netns exec "$h" unshare --uts --mount --propagation private \
        sh -c "hostname $h && mount --bind /run/$h/etc-sm /etc/sm && exec sleep 1d" </dev/null >/dev/null 2>&1 &
    VM_POOL_HOLDER[$h]=$!
    vm_on_exit kill "${VM_POOL_HOLDER[$h]}"
    vm_wait_for 10 vm_pool_has_hostname "${VM_POOL_HOLDER[$h]}" "$h"
    vm_wait_for 10 vm_pool_has_conf "${VM_POOL_HOLDER[$h]}"
    vm_wait_for 20 vm_pool_in "$h" timeout 3 bash -c "echo > /dev/tcp/$VM_POOL_SERVER/2049"
}

vm_pool_in() {
    local h=$1
    shift
    nsenter -t "${VM_POOL_HOLDER[$h]}" -n -u -m -- "$@"
}

vm_pool_mount() { echo "/run/$1/sr-mount/$POOL_SR"; }

vm_pool_driver() {
    local h=$1 verb=$2 errors
    shift 2
    errors=$(mktemp)
    DRIVER_STATUS=0
    DRIVER_OUT=$(vm_pool_in "$h" env "${POOL_ENV[@]}" "$SM_BIN_DIR/NFSSR" "$POOL_DCONF" "$verb" "$@" 2>"$errors") || DRIVER_STATUS=$?
    DRIVER_ERR=$(cat "$errors")
    rm -f "$errors"
    [ -n "${POOL_QUIET:-}" ] || echo "  $h: NFSSR $verb $* -> exit $DRIVER_STATUS${DRIVER_ERR:+ (${DRIVER_ERR##*$'\n'})}"
}

vm_pool_ok() {
    vm_pool_driver "$@"
    [ "$DRIVER_STATUS" = 0 ] || vm_fail "$1: NFSSR $2 ${*:3} exited $DRIVER_STATUS: $DRIVER_ERR $DRIVER_OUT"
}

vm_pool_pids() {
    local h=$1 pid mine
    mine=$(readlink "/proc/${VM_POOL_HOLDER[$h]}/ns/net")
    for pid in /proc/[0-9]*; do
        [ "$(readlink "$pid/ns/net" 2>/dev/null)" = "$mine" ] && echo "${pid#/proc/}"
    done
}

# vm_pool_verb_times HOST: per verb in the host's SMlog, how many and their mean and longest
# duration, one line.
vm_pool_verb_times() {
    awk '/ result=/ { verb = $3; ms = $NF; sub(/^duration=/, "", ms); sub(/ms$/, "", ms); ms += 0
                      n[verb]++; sum[verb] += ms; if (ms > max[verb]) max[verb] = ms }
         END { for (v in n) printf "%s %d x %.0f ms (max %.0f); ", v, n[v], sum[v] / n[v], max[v] }' "/run/$1/SMlog"
}

# vm_pool_dump SERVER_DIR HOST: what a failure needs to be understood: each host's last SMlog
# lines, the claims and intent records on the server (ages in server seconds), and HOST's
# sr_scan with --verbose.
vm_pool_dump() {
    local dir=$1 h=$2 f now
    now=$(date +%s)
    for f in /run/h1/SMlog /run/h2/SMlog; do
        echo "----- $f (last 15 lines) -----"
        tail -n 15 "$f" 2>/dev/null
    done
    echo "----- $dir/.sm/claims -----"
    for f in "$dir"/.sm/claims/*; do
        [ -e "$f" ] && echo "$(basename "$f") age $((now - $(stat -c %Y "$f"))) s: $(head -c 200 "$f" 2>/dev/null)"
    done
    echo "----- $dir/.sm/journal -----"
    for f in "$dir"/.sm/journal/*; do
        [ -e "$f" ] && echo "$(basename "$f") age $((now - $(stat -c %Y "$f"))) s: $(tr '\n' ' ' < "$f")"
    done
    echo "----- $h: NFSSR --verbose sr_scan (stderr, last 30 lines) -----"
    vm_pool_in "$h" "$SM_BIN_DIR/NFSSR" --verbose "$POOL_DCONF" sr_scan "$POOL_SR" 2>&1 >/dev/null | tail -n 30
}
