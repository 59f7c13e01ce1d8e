#!/bin/bash
# Two hosts of a pool on one NFSSR, through the real kernel NFS client (Docs/pools.md). The
# hosts h1 and h2 are network + UTS + mount namespaces in the guest (Tests/vm/pool-hosts.sh):
# each has its own address, NFS client, host name, /etc/sm/sm.conf (host_id, run_dir, lock_dir,
# mount_dir, log_file, claim_lease) and SMlog. Both sr_attach the same SR (NFSv4.1, served by the
# guest's kernel nfsd on the bridge).
#
# For $POOL_DURATION seconds (240 in CI) each host runs a random mix of vdi_create, vdi_snapshot,
# vdi_clone, vdi_resize, vdi_delete, sr_scan, vdi_lock + sm-vhd writes + vdi_unlock, reads
# checked against the model, and sr_gc on its OWN VDIs, with the background collector after
# every delete; meanwhile sr_gc is started on both hosts at once every few seconds. Every verb
# must succeed. Afterwards: sr_check is clean from both hosts, `sm-vhd check` finds every file
# clean, every VDI reads exactly what the model (md5 per 512 KiB region) says, no hidden VDI is
# left with fewer than two children, and every merge happened exactly once: the parents named by
# the "coalesced" lines of both hosts' SMlogs are distinct, each was a hidden VDI of the model
# and is gone, and every hidden VDI that disappeared was either merged or reclaimed (its
# subtree deleted).
. "$VM_LIB"
. "$VM_REPO/Tests/vm/nfs-server.sh"
. "$VM_REPO/Tests/vm/pool-hosts.sh"
. "$VM_REPO/Tests/vm/pool-model.sh"

POOL_DURATION=${POOL_DURATION:-240}
POOL_LEASE=${POOL_LEASE:-6}
POOL_GC_EVERY=${POOL_GC_EVERY:-4}
export_dir=/srv/nfs-sm
POOL_SR=4a7c2e91-6b3d-4f85-9e21-0c8d5f7a3b64
POOL_DCONF="<dconf><server>$VM_POOL_SERVER</server><serverpath>/sm</serverpath><nfsversion>4.1</nfsversion></dconf>"
server_dir="$export_dir/sm/$POOL_SR"
mkdir -p /run/pool

vm_step "kernel nfsd exports an ext4 filesystem to the bridge; hosts h1, h2 (claim_lease $POOL_LEASE s)"
vm_nfs_serve "$export_dir" 127.0.0.1 192.168.77.0/24
mkdir -p "$export_dir/sm"
vm_pool_network
vm_pool_host h1 1 "claim_lease = $POOL_LEASE"
vm_pool_host h2 2 "claim_lease = $POOL_LEASE"
for h in h1 h2; do
    vm_on_exit vm_pool_in "$h" umount -f -l "$(vm_pool_mount "$h")"
done

vm_step "h1: sr_create; h1 and h2: sr_attach (each its own NFSv4.1 mount)"
vm_pool_ok h1 sr_create "$POOL_SR" 0
for h in h1 h2; do
    vm_pool_ok "$h" sr_attach "$POOL_SR"
    vm_pool_in "$h" findmnt -rn -t nfs4 --mountpoint "$(vm_pool_mount "$h")" >/dev/null \
        || vm_fail "$h has no NFSv4 mount at $(vm_pool_mount "$h")"
done
[ "$(vm_pool_in h1 hostname)" = h1 ] && [ "$(vm_pool_in h2 hostname)" = h2 ] || vm_fail "the hosts' names are not h1, h2"

# One host's mix: random verbs on its own VDIs until the deadline; the model and the counts of
# each verb are saved for the parent. Runs in a subshell: a failure ends it with status 1.
mix() {
    local h=$1 seed=$2 deadline=$3 op x visible
    local -A count=() spent=()
    local started
    RANDOM=$seed
    POOL_QUIET=1
    POOL_EVENTS=/run/pool/events.$h
    : > "$POOL_EVENTS"
    pool_create "$h"
    pool_create "$h"
    # A mergeable chain from the start (a leaf with data over a hidden snapshot, its only child),
    # so that the collectors running on both hosts at once have a merge to do however few verbs
    # the load lets the mix run: beside a second boot at load 14-20 a mix of 9 to 15 verbs per
    # host made no mergeable parent at all, and the group proved nothing (it failed, saying so).
    x=$(pool_pick w)
    pool_write "$h" "$x" 2
    pool_snapshot "$h" "$x"
    pool_delete "$h" "${POOL_PARENT[$x]}"
    while [ "$(date +%s)" -lt "$deadline" ]; do
        visible=$(pool_of w r | wc -l)
        op=$((RANDOM % 100))
        if [ "$visible" -lt 3 ] || { [ "$op" -lt 8 ] && [ "$visible" -lt 10 ]; }; then
            op=create
        elif [ "$op" -lt 30 ]; then
            op=write
        elif [ "$op" -lt 45 ]; then
            op=snapshot
        elif [ "$op" -lt 50 ]; then
            op=clone
        elif [ "$op" -lt 54 ]; then
            op=resize
        elif [ "$op" -lt 72 ]; then
            op=delete
        elif [ "$op" -lt 78 ]; then
            op=scan
        elif [ "$op" -lt 86 ]; then
            op=check
        else
            op=gc
        fi
        started=$(date +%s%N)
        case $op in
        create) pool_create "$h" ;;
        write)
            x=$(pool_pick w)
            [ -n "$x" ] && pool_write "$h" "$x" $((1 + RANDOM % 3)) ;;
        snapshot)
            x=$(pool_pick w)
            if [ -n "$x" ] && [ "$(pool_depth "$x")" -lt 20 ]; then
                pool_write "$h" "$x" 1
                pool_snapshot "$h" "$x"
            fi ;;
        clone)
            x=$(pool_pick w r)
            if [ -n "$x" ] && { [ "${POOL_KIND[$x]}" = w ] || [ "$(pool_children "$x")" -gt 0 ]; } && [ "$(pool_depth "$x")" -lt 20 ]; then
                pool_clone "$h" "$x"
            fi ;;
        resize)
            x=$(pool_pick w)
            if [ -n "$x" ] && [ "$(wc -w <<< "${POOL_REGIONS[$x]}")" -lt 24 ]; then
                pool_resize "$h" "$x"
                pool_write "$h" "$x" 1
            fi ;;
        delete)
            # Mostly a read-only VDI with children (it becomes hidden: work for the collectors).
            x=""
            [ $((RANDOM % 3)) = 0 ] || x=$(for y in $(pool_of r); do [ "$(pool_children "$y")" -gt 0 ] && echo "$y"; done | shuf -n 1)
            [ -n "$x" ] || x=$(pool_pick w r)
            [ -n "$x" ] && pool_delete "$h" "$x" ;;
        scan) pool_scan "$h" ;;
        check)
            x=$(pool_pick w r)
            [ -n "$x" ] && pool_check "$h" "$x" ;;
        gc) vm_pool_ok "$h" sr_gc "$POOL_SR" ;;
        esac
        count[$op]=$((${count[$op]:-0} + 1))
        spent[$op]=$((${spent[$op]:-0} + ($(date +%s%N) - started) / 1000000))
    done
    pool_save "/run/pool/model.$h"
    local summary=""
    for op in "${!count[@]}"; do summary+="$op ${count[$op]} x $((${spent[$op]} / ${count[$op]})) ms, "; done
    echo "  $h: $summary(sm-vhd writes: $POOL_WRITES)"
}

# sr_gc on both hosts at once, every $POOL_GC_EVERY s until the deadline.
gc_both() {
    local deadline=$1 rounds=0 p1 p2 s1 s2
    POOL_QUIET=1
    while [ "$(date +%s)" -lt "$deadline" ]; do
        vm_pool_in h1 "$SM_BIN_DIR/NFSSR" "$POOL_DCONF" sr_gc "$POOL_SR" >/run/pool/gc.h1 2>&1 &
        p1=$!
        vm_pool_in h2 "$SM_BIN_DIR/NFSSR" "$POOL_DCONF" sr_gc "$POOL_SR" >/run/pool/gc.h2 2>&1 &
        p2=$!
        s1=0 s2=0
        wait "$p1" || s1=$?
        wait "$p2" || s2=$?
        [ "$s1" = 0 ] && [ "$s2" = 0 ] || vm_fail "sr_gc on both hosts at once: h1 exit $s1 ($(cat /run/pool/gc.h1)), h2 exit $s2 ($(cat /run/pool/gc.h2))"
        rounds=$((rounds + 1))
        sleep "$POOL_GC_EVERY"
    done
    echo "  sr_gc on both hosts at once: $rounds rounds"
}

vm_step "both hosts: random verbs on their own VDIs for $POOL_DURATION s, sr_gc on both at once every $POOL_GC_EVERY s"
mix_start=$(date +%s)
deadline=$((mix_start + POOL_DURATION))
(mix h1 11 "$deadline") &
mix1=$!
(mix h2 22 "$deadline") &
mix2=$!
(gc_both "$deadline") &
gcs=$!
failed=""
for pid in $mix1 $mix2 $gcs; do wait "$pid" || failed+=" $pid"; done
[ -z "$failed" ] || vm_fail "the mix failed (process$failed; the FAIL line above says why)"
echo "  the mix ran $(($(date +%s) - mix_start)) s"
for h in h1 h2; do echo "  $h's verbs: $(vm_pool_verb_times "$h")"; done

vm_step "after the mix: background collectors finish; sr_gc on h1, h2, h1"
collectors() { ps -eo args= | grep -c "[N]FSSR.* sr_gc" || true; }
waited=0
while [ "$(collectors)" != 0 ]; do
    [ "$waited" -lt 300 ] || vm_fail "collectors still running 60 s after the mix: $(ps -eo pid=,args= | grep '[N]FSSR')"
    sleep 0.2
    waited=$((waited + 1))
done
for h in h1 h2 h1; do vm_pool_ok "$h" sr_gc "$POOL_SR"; done

vm_step "sr_check clean from both hosts; sm-vhd check clean on the server; no intent record left"
for h in h1 h2; do vm_pool_ok "$h" sr_check "$POOL_SR"; done
mapfile -t files < <(find "$server_dir" -maxdepth 1 -name '*.vhd' ! -name '.*' | sort)
vm_check "sm-vhd check of ${#files[@]} files" "$SM_BIN_DIR/sm-vhd" check "${files[@]}" >/dev/null
left=$(find "$server_dir/.sm/journal" -type f 2>/dev/null)
[ -z "$left" ] || vm_fail "intent records left: $left"

vm_step "every VDI reads what the model says, through its own host's mount"
declare -A owner
for h in h1 h2; do
    POOL_REGIONS=() POOL_PARENT=() POOL_KIND=()
    pool_load "/run/pool/model.$h"
    checked=0
    for x in $(pool_of w r); do
        pool_verify "$h" "$x" "after the run"
        checked=$((checked + 1))
    done
    for x in "${!POOL_KIND[@]}"; do owner[$x]=$h; done
    echo "  $h: $checked VDIs read back as the model says; $(pool_of h | wc -l) hidden in the model"
done

vm_step "the tree on the server: every file is a model VDI, no hidden VDI with fewer than two children"
declare -A children=() hidden_file=()
for f in "${files[@]}"; do
    x=$(basename "$f" .vhd)
    [ -n "${owner[$x]:-}" ] || vm_fail "$f is no VDI of the model (leaked)"
    chain=$("$SM_BIN_DIR/sm-vhd" chain "$f") || vm_fail "sm-vhd chain $f failed"
    head -1 <<< "$chain" | grep -q " hidden=true$" && hidden_file[$x]=1
    parent=$(sed -n '2{s/ .*//;s|.*/||;s/\.vhd$//;p}' <<< "$chain")
    [ -z "$parent" ] || children[$parent]=$((${children[$parent]:-0} + 1))
done
for x in "${!hidden_file[@]}"; do
    [ "${children[$x]:-0}" -ge 2 ] || vm_fail "hidden VDI $x has ${children[$x]:-0} children after the collectors (a merge or reclaim was missed)"
done
echo "  ${#files[@]} VHD files, ${#hidden_file[@]} hidden (each with two or more children)"

vm_step "every merge happened exactly once (SMlogs of both hosts against the parents that disappeared)"
merged=$(cat /run/h1/SMlog /run/h2/SMlog | grep -o ': coalesced [0-9a-f-]* into' | awk '{ print $3 }' | sort)
duplicates=$(uniq -d <<< "$merged")
[ -z "$duplicates" ] || vm_fail "parents merged more than once: $duplicates"
hidden_ever=$(cat /run/pool/events.h1 /run/pool/events.h2 | awk '$1 == "hidden" { print $2 }' | sort -u)
reclaimed=$(cat /run/pool/events.h1 /run/pool/events.h2 | awk '$1 == "reclaimed" { print $2 }' | sort -u)
gone=$(for x in $hidden_ever; do [ -f "$server_dir/$x.vhd" ] || echo "$x"; done | sort)
for x in $merged; do
    grep -qx "$x" <<< "$hidden_ever" || vm_fail "the SMlog says $x was merged, but no delete made it hidden"
    grep -qx "$x" <<< "$gone" || vm_fail "the SMlog says $x was merged, but its file is still there"
done
for x in $gone; do
    grep -qx "$x" <<< "$merged" || grep -qx "$x" <<< "$reclaimed" \
        || vm_fail "hidden VDI $x disappeared without a merge, and its subtree was not deleted"
done
lines() { grep -c . <<< "$1" || true; }
by_host=$(for h in h1 h2; do echo "$h=$(grep -c ': coalesced ' "/run/$h/SMlog" || true)"; done | tr '\n' ' ')
echo "  merges: $(lines "$merged") ($by_host), each parent once; hidden during the run: $(lines "$hidden_ever"), gone: $(lines "$gone"), of which reclaimed with their subtree only: $(comm -23 <(echo "$gone") <(echo "$merged") | grep -c . || true)"
[ "$(lines "$merged")" -gt 0 ] || vm_fail "no merge at all happened: the run proves nothing about the collectors"
for h in h1 h2; do
    verbs=$(grep -c 'result=' "/run/$h/SMlog" || true)
    errors=$(grep 'result=' "/run/$h/SMlog" | grep -vc 'result=OK' || true)
    echo "  $h: $verbs verbs in its SMlog, $errors not OK: $(vm_pool_verb_times "$h")"
    [ "$errors" = 0 ] || vm_fail "$h's SMlog has failed verbs: $(grep 'result=' "/run/$h/SMlog" | grep -v 'result=OK' | head -5)"
done

vm_step "both hosts: sr_detach"
for h in h1 h2; do
    vm_pool_ok "$h" sr_detach "$POOL_SR"
    ! vm_pool_in "$h" findmnt --mountpoint "$(vm_pool_mount "$h")" >/dev/null || vm_fail "$h still has the SR mounted"
done
echo "PASS: $VM_GROUP"
