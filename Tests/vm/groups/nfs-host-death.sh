#!/bin/bash
# A host of the pool dies in the middle of an operation on a shared NFSSR (Docs/pools.md, "When
# a host dies"), through the real kernel NFS client; hosts h1 and h2 as in nfs-pool
# (Tests/vm/pool-hosts.sh), NFSv4.1, claim_lease $DEATH_LEASE s, no background collector.
#
# Three deaths of h1, each paused at a named fault point (SM_FAULT_PAUSE) so that it is known to
# be mid-operation, with its intent record and claims on the server:
#   1. its sr_gc in a merge (coalesce.data-copied), the driver process SIGKILLed;
#   2. its vdi_snapshot (snapshot.child-created), the driver process SIGKILLed;
#   3. its sr_gc in a merge (coalesce.merged), then the whole host: its veth deleted (no network)
#      and every process in its namespaces SIGKILLed.
# Each time h2 meanwhile runs verbs on its own VDIs, which succeed, and leaves h1's record and
# VDIs alone while h1's claims are live; once they have lapsed an h2 sr_scan recovers the record;
# then the record is gone, sr_check is clean, every VDI reads what the model says, and the
# interrupted merge happened exactly once. The kill -> recovery times are printed.
#
# "While h1's claims are live" is measured from the claims themselves, not from how fast h2's
# verbs are (beside a second VM boot on 2 cores an h2 verb can take longer than the whole live
# window): LIVE_UNTIL is the newest refresh of h1's claim files on the server (this guest's
# clock) plus one lease. So
#   - h2's first verbs start right after the kill, inside the window (asserted: at least one);
#   - h2 took over h1's claims (its SMlog's "has lapsed; taking it over" lines, logged when
#     decided) only at or after LIVE_UNTIL, however long the verbs around them ran;
#   - a takeover waits one more lease, so every h2 verb that ends before LIVE_UNTIL + lease has
#     left h1's record and VDI files untouched (asserted after each), and the recovery ends no
#     earlier (asserted).
. "$VM_LIB"
. "$VM_REPO/Tests/vm/nfs-server.sh"
. "$VM_REPO/Tests/vm/pool-hosts.sh"
. "$VM_REPO/Tests/vm/pool-model.sh"

DEATH_LEASE=${DEATH_LEASE:-20}
export_dir=/srv/nfs-sm
POOL_SR=5e8d3f02-7c4e-4a96-8f32-1d9e6a8b4c75
POOL_DCONF="<dconf><server>$VM_POOL_SERVER</server><serverpath>/sm</serverpath><nfsversion>4.1</nfsversion><timeo>10</timeo><retrans>1</retrans></dconf>"
server_dir="$export_dir/sm/$POOL_SR"
POOL_EVENTS=/run/pool/events
mkdir -p /run/pool
: > "$POOL_EVENTS"
TIMES=()

vm_step "kernel nfsd exports to the bridge; hosts h1, h2 (claim_lease $DEATH_LEASE s, no background sr_gc)"
vm_nfs_serve "$export_dir" 127.0.0.1 192.168.77.0/24
mkdir -p "$export_dir/sm"
vm_pool_network
vm_pool_host h1 1 "claim_lease = $DEATH_LEASE
gc_after_delete = false"
vm_pool_host h2 2 "claim_lease = $DEATH_LEASE
gc_after_delete = false"
vm_on_exit vm_pool_in h1 umount -f -l "$(vm_pool_mount h1)"
vm_on_exit vm_pool_in h2 umount -f -l "$(vm_pool_mount h2)"
vm_pool_ok h1 sr_create "$POOL_SR" 0
vm_pool_ok h1 sr_attach "$POOL_SR"
vm_pool_ok h2 sr_attach "$POOL_SR"

gone_or_zombie() { [ ! -d "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status"; }
seconds_since() { echo "$1 $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }'; }
records() { find "$server_dir/.sm/journal" -name '*.intent' 2>/dev/null; }
files_sum() { (cd "$server_dir" && cat "$@" | md5sum | cut -d' ' -f1); }

# paused HOST POINT OPERATION VERB ARGS...: starts the verb on HOST, paused at POINT; returns when
# it is there (its --verbose line), with its intent record (of OPERATION, written by HOST) in
# RECORD and the driver's pid (the record's pid field, checked to be that NFSSR) in PAUSED.
paused() {
    local h=$1 point=$2 operation=$3 launcher path
    shift 3
    : > /run/pool/paused.err
    vm_pool_in "$h" env SM_FAULT_PAUSE="$point:600" "$SM_BIN_DIR/NFSSR" --verbose "$POOL_DCONF" "$@" \
        >/dev/null 2>/run/pool/paused.err &
    launcher=$!
    local waited=0
    until grep -q "fault point $point: pausing" /run/pool/paused.err; do
        if [ "$waited" -ge 600 ] || ! kill -0 "$launcher" 2>/dev/null; then
            tail -n 20 /run/pool/paused.err
            vm_fail "$h: $* never reached $point"
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    RECORD=""
    for path in $(records); do grep -q "^operation=$operation$" "$path" && RECORD=$path; done
    [ -n "$RECORD" ] && grep -q "^host=$h$" "$RECORD" || vm_fail "no $operation record of $h on the server: $(records)"
    PAUSED=$(sed -n 's/^pid=//p' "$RECORD")
    [ "$(cat "/proc/$PAUSED/comm" 2>/dev/null)" = NFSSR ] || vm_fail "the record's pid $PAUSED is not the paused NFSSR"
    echo "  $h: $* paused at $point (NFSSR pid $PAUSED, launched as $launcher), record $(basename "$RECORD")"
    vm_on_exit kill -9 "$PAUSED"
}

# claims_live_until HOST: the server time (whole seconds) until which HOST's claims are surely
# live: the newest refresh of its claim files plus one lease, less a second for the rounding.
claims_live_until() {
    local newest
    newest=$(stat -c %Y "$server_dir"/.sm/claims/*.xenlk."$1".* 2>/dev/null | sort -n | tail -1)
    [ -n "$newest" ] || vm_fail "$1 holds no claim on the server"
    echo $((newest + DEATH_LEASE - 1))
}

# epoch_of ISO-TIME: seconds since the epoch (the SMlog's UTC times).
epoch_of() { date -d "$1" +%s.%N; }

# while_claims_live START RECORD SUM FILES...: h2's verbs on its own VDIs (each begins with the
# recovery pass). At least one starts while h1's claims are surely live (LIVE_UNTIL, server time:
# the server is this guest); after each that ends before LIVE_UNTIL + one lease (a takeover's
# wait), h1's record is still there and h1's VDIs' files are unchanged.
while_claims_live() {
    local start=$1 record=$2 sum=$3 started_live=0 asserted=0 b step
    shift 3
    echo "  h1's claims are live until $((LIVE_UNTIL - ${start%.*})) s after the kill (lease $DEATH_LEASE s)"
    for step in scan create gc write snapshot; do
        awk -v now="$(date +%s.%N)" -v until="$LIVE_UNTIL" 'BEGIN { exit !(now < until) }' && started_live=$((started_live + 1))
        case $step in
        scan) pool_scan h2 ;;
        create) pool_create h2 ;;
        gc) vm_pool_ok h2 sr_gc "$POOL_SR" ;;
        write) b=$(POOL_ONLY=h2 pool_pick w); pool_write h2 "$b" 2 ;;
        snapshot) b=$(POOL_ONLY=h2 pool_pick w); pool_snapshot h2 "$b" ;;
        esac
        if [ "$(date +%s)" -lt "$((LIVE_UNTIL + DEATH_LEASE))" ]; then
            [ -f "$record" ] || vm_fail "h2 recovered h1's record $(basename "$record") $(seconds_since "$start") s after the kill, before h1's claims could lapse and be taken over"
            [ "$(files_sum "$@")" = "$sum" ] || vm_fail "h2 changed h1's VDIs ($*) before h1's claims could lapse and be taken over"
            asserted=$((asserted + 1))
        fi
    done
    [ "$started_live" -ge 1 ] || vm_fail "no h2 verb started while h1's claims were live ($((LIVE_UNTIL - ${start%.*})) s after the kill)"
    echo "  h2's verbs on its own VDIs succeeded; $started_live started while h1's claims were live;" \
        "$asserted ended before the claims could lapse and be taken over, leaving h1's record and VDIs alone"
}

# takeovers_after_lapse: h2's takeovers of the claims of h1's killed process PAUSED, from h2's
# SMlog ("claim ... of 'sm-PID' on host h1 has lapsed; taking it over", logged when decided):
# at least one, and every one at or after LIVE_UNTIL. A verb's recovery pass takes another
# host's claims without waiting, so this is the moment h2 judged them lapsed, however long the
# verb around it ran.
takeovers_after_lapse() {
    local start=$1 line at n=0 first=""
    while IFS= read -r line; do
        at=$(epoch_of "${line%% *}")
        awk -v a="$at" -v u="$LIVE_UNTIL" 'BEGIN { exit !(a >= u) }' \
            || vm_fail "h2 took over a claim of h1 $(awk -v a="$at" -v s="$start" 'BEGIN { printf "%.1f", a - s }') s after the kill, while it was live (until $((LIVE_UNTIL - ${start%.*})) s): $line"
        n=$((n + 1))
        [ -n "$first" ] || first=$at
    done < <(grep "of 'sm-$PAUSED' on host h1 has lapsed; taking it over" /run/h2/SMlog)
    [ "$n" -ge 1 ] || vm_fail "h2's SMlog shows no takeover of the claims of h1's process $PAUSED"
    echo "  h2 took over $n claim(s) of h1's process, the first $(awk -v a="$first" -v s="$start" 'BEGIN { printf "%.1f", a - s }') s after the kill (live until $((LIVE_UNTIL - ${start%.*})) s)"
}

# recovered_by_h2 START RECORD WHAT: h2's sr_scan, again and again, until the record is gone;
# not before the claims could lapse plus one takeover lease. Prints and keeps the time.
recovered_by_h2() {
    local start=$1 record=$2 what=$3 elapsed earliest scans=0
    earliest=$((LIVE_UNTIL - ${start%.*} + DEATH_LEASE))
    while [ -f "$record" ]; do
        if awk -v e="$(seconds_since "$start")" -v l="$DEATH_LEASE" 'BEGIN { exit !(e > 4 * l + 60) }'; then
            vm_pool_dump "$server_dir" h2
            vm_fail "h1's record is still there $(seconds_since "$start") s after the kill"
        fi
        scan_start=$(date +%s.%N)
        POOL_QUIET=1 vm_pool_ok h2 sr_scan "$POOL_SR"
        scans=$((scans + 1))
        echo "  h2 sr_scan $scans at $(seconds_since "$start") s after the kill took $(seconds_since "$scan_start") s; record there: $([ -f "$record" ] && echo yes || echo no)"
        [ -f "$record" ] || break
        sleep 1
    done
    elapsed=$(seconds_since "$start")
    echo "  $what: kill -> record recovered by h2: $elapsed s (lease $DEATH_LEASE s)"
    awk -v e="$elapsed" -v m="$earliest" 'BEGIN { exit !(e >= m) }' \
        || vm_fail "recovered $elapsed s after the kill: before the claims could lapse and be taken over ($earliest s)"
    TIMES+=("$what=$elapsed")
    takeovers_after_lapse "$start"
    grep -h "recovered " /run/h2/SMlog | tail -1 | sed 's/^/  h2 SMlog: /'
}

# merged_once PARENT: the merge of PARENT is in the SMlogs exactly once (a coalesced line, or a
# recovery that rolled the merge forward), and its file is gone.
merged_once() {
    local parent=$1 coalesced forward
    coalesced=$(cat /run/h1/SMlog /run/h2/SMlog 2>/dev/null | grep -c ": coalesced $parent into" || true)
    forward=$(cat /run/h1/SMlog /run/h2/SMlog 2>/dev/null | grep "recovered coalesce" | grep "$parent" | grep -c rolledForward || true)
    [ $((coalesced + forward)) = 1 ] || vm_fail "the merge of $parent happened $coalesced times plus $forward roll-forwards, not once"
    [ ! -e "$server_dir/$parent.vhd" ] || vm_fail "the merged parent $parent.vhd is still there"
    echo "  the merge of $parent happened once ($coalesced coalesced, $forward rolled forward)"
}

check_all() {
    local h=$1 x
    vm_pool_ok "$h" sr_check "$POOL_SR"
    [ -z "$(records)" ] || vm_fail "intent records left: $(records)"
    for x in $(pool_of w r); do pool_verify "$h" "$x" "after the recovery"; done
    echo "  sr_check clean; $(pool_of w r | wc -l) VDIs read as the model says (through $h)"
}

# h1's chains: a leaf with data whose snapshot was deleted (hidden parent, one child).
make_chain() {
    local leaf parent
    pool_create h1
    leaf=$(comm -13 <(echo "$BEFORE") <(pool_of w) | head -1)
    pool_write h1 "$leaf" 3
    pool_snapshot h1 "$leaf"
    parent=${POOL_PARENT[$leaf]}
    pool_write h1 "$leaf" 2
    pool_delete h1 "$parent"
    [ "${POOL_KIND[$parent]}" = h ] || vm_fail "the deleted snapshot $parent is not hidden"
    CHAIN="$leaf $parent"
}
vm_step "h1: a chain (a leaf with data over a hidden parent) and a VDI with data; h2: one VDI"
BEFORE=$(pool_of w); make_chain; read -r leaf1 parent1 <<< "$CHAIN"
BEFORE=$(pool_of w); pool_create h1; leaf2=$(comm -13 <(echo "$BEFORE") <(pool_of w) | head -1); pool_write h1 "$leaf2" 3
pool_create h2

vm_step "1. h1's sr_gc paused mid-merge (coalesce.data-copied); its driver process SIGKILLed"
paused h1 coalesce.data-copied coalesce sr_gc "$POOL_SR"
record=$RECORD
sum=$(files_sum "$leaf1.vhd" "$parent1.vhd")
kill -9 "$PAUSED"
start=$(date +%s.%N)
LIVE_UNTIL=$(claims_live_until h1)
vm_wait_for 10 gone_or_zombie "$PAUSED"
while_claims_live "$start" "$record" "$sum" "$leaf1.vhd" "$parent1.vhd"
recovered_by_h2 "$start" "$record" "coalesce, process killed"
vm_pool_ok h2 sr_gc "$POOL_SR"
merged_once "$parent1"
check_all h2

vm_step "2. h1's vdi_snapshot paused (snapshot.child-created); its driver process SIGKILLed"
snap2=$(pool_uuid)
paused h1 snapshot.child-created snapshot vdi_snapshot "$POOL_SR" "$leaf2" "$snap2"
record=$RECORD
sum=$(files_sum "$leaf2.vhd")
kill -9 "$PAUSED"
start=$(date +%s.%N)
LIVE_UNTIL=$(claims_live_until h1)
vm_wait_for 10 gone_or_zombie "$PAUSED"
while_claims_live "$start" "$record" "$sum" "$leaf2.vhd"
recovered_by_h2 "$start" "$record" "snapshot, process killed"
if [ -e "$server_dir/$snap2.vhd" ]; then
    echo "  rolled forward: $snap2 is the read-only snapshot of $leaf2"
    POOL_REGIONS[$snap2]=${POOL_REGIONS[$leaf2]}
    POOL_PARENT[$snap2]=${POOL_PARENT[$leaf2]}
    POOL_PARENT[$leaf2]=$snap2
    POOL_KIND[$snap2]=r
    POOL_OWNER[$snap2]=h1
else
    echo "  rolled back: no $snap2"
fi
check_all h2
vm_pool_ok h1 sr_scan "$POOL_SR"
vm_xml_values uuid <<< "$DRIVER_OUT" | grep -qx "$leaf2" || vm_fail "h1's sr_scan does not list $leaf2 after the recovery"

vm_step "3. h1: a new chain; its sr_gc paused mid-merge (coalesce.merged); then h1 dies whole: veth deleted, every process SIGKILLed"
# Made now: h2's collector merges every hidden parent of the SR, h1's as well.
BEFORE=$(pool_of w); make_chain; read -r leaf3 parent3 <<< "$CHAIN"
paused h1 coalesce.merged coalesce sr_gc "$POOL_SR"
record=$RECORD
sum=$(files_sum "$leaf3.vhd" "$parent3.vhd")
mapfile -t victims < <(vm_pool_pids h1)
vm_check "delete h1's veth" ip link del veth-h1
kill -9 "${victims[@]}"
start=$(date +%s.%N)
LIVE_UNTIL=$(claims_live_until h1)
echo "  h1's network gone; killed ${#victims[@]} processes (${victims[*]})"
grep -qx "$PAUSED" <<< "$(printf '%s\n' "${victims[@]}")" || vm_fail "the paused NFSSR $PAUSED is not among h1's processes"
# h2's verbs begin at once: a killed process of h1 may take longer than the live window to end,
# each of its NFS calls on the way out (closes, lock releases) waiting for a server it cannot
# reach (CI: none of h2's verbs started before 14 s when they waited for it). It cannot reach
# the server either, so h2 need not wait; it is checked below to have ended.
while_claims_live "$start" "$record" "$sum" "$leaf3.vhd" "$parent3.vhd"
recovered_by_h2 "$start" "$record" "coalesce, host dead with its network"
vm_pool_ok h2 sr_gc "$POOL_SR"
merged_once "$parent3"
check_all h2
# Nor do the recovery and h2's verbs wait for them: they are checked to have ended after these.
for pid in "${victims[@]}"; do vm_wait_for 60 gone_or_zombie "$pid"; done
echo "  h1's killed processes ended within $(seconds_since "$start") s of the kill"

vm_step "h2: sr_detach"
vm_pool_ok h2 sr_detach "$POOL_SR"
echo "  measured (kill -> recovery, lease $DEATH_LEASE s): ${TIMES[*]}"
echo "PASS: $VM_GROUP"
