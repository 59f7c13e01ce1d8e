# The data and tree model of one host's VDIs for the pool groups (sourced after pool-hosts.sh).
#
# Guest data is written with sm-vhd through the host's own NFS mount, always under the VDI's
# persistent lock (vdi_lock before any data access, as the agent does: it is what keeps another
# host's collector off a VDI in use), in regions of $POOL_REGION bytes; the model keeps the md5 of
# every region of every VDI and the VDI tree as the verbs make it:
#
#   POOL_REGIONS[vdi]  the md5 of each region, in order ("md5 md5 ...")
#   POOL_PARENT[vdi]   its parent in the tree the verbs made ("" for none); merges are not
#                      modelled (a merge keeps every VDI's data and who has children)
#   POOL_KIND[vdi]     w (writable leaf), r (read-only, listed), h (hidden: deleted with children)
#   POOL_OWNER[vdi]    the host whose verbs made it (pool_of and pool_pick keep to the host named
#                      by POOL_ONLY when it is set)
#
# Events for the merge accounting go to $POOL_EVENTS: "hidden X" when a delete leaves X hidden,
# "reclaimed X" when the model says a delete removed the hidden ancestor X (no children left).
POOL_REGION=$((512 * 1024))
POOL_ZERO=$(head -c "$POOL_REGION" /dev/zero | md5sum | cut -d' ' -f1)
declare -A POOL_REGIONS=() POOL_PARENT=() POOL_KIND=() POOL_OWNER=()
POOL_WRITES=0

pool_uuid() { cat /proc/sys/kernel/random/uuid; }

pool_children() {
    local x=$1 k count=0
    for k in "${!POOL_PARENT[@]}"; do [ "${POOL_PARENT[$k]}" = "$x" ] && count=$((count + 1)); done
    echo "$count"
}

pool_depth() {
    local x=$1 depth=0
    while [ -n "$x" ]; do depth=$((depth + 1)); x=${POOL_PARENT[$x]:-}; done
    echo "$depth"
}

# pool_of KIND...: the host's VDIs of those kinds, one a line.
pool_of() {
    local k kind
    for k in "${!POOL_KIND[@]}"; do
        [ -z "${POOL_ONLY:-}" ] || [ "${POOL_OWNER[$k]:-}" = "$POOL_ONLY" ] || continue
        for kind in "$@"; do [ "${POOL_KIND[$k]}" = "$kind" ] && echo "$k"; done
    done | sort
}

# pool_pick KIND...: one of them at random ("" when none).
pool_pick() {
    local list
    mapfile -t list < <(pool_of "$@")
    [ ${#list[@]} -gt 0 ] || return 0
    echo "${list[RANDOM % ${#list[@]}]}"
}

pool_file() { echo "$(vm_pool_mount "$1")/$2.vhd"; }

# pool_regions_of HOST X: the md5 of each region that X reads now through HOST's mount.
pool_regions_of() {
    vm_pool_in "$1" "$SM_BIN_DIR/sm-vhd" read "$(pool_file "$1" "$2")" | python3 -c '
import hashlib, sys
region, sums = int(sys.argv[1]), []
while True:
    chunk = sys.stdin.buffer.read(region)
    if not chunk:
        break
    sums.append(hashlib.md5(chunk).hexdigest())
print(" ".join(sums))' "$POOL_REGION"
}

# pool_verify HOST X WHAT: X reads exactly what the model says, or the group fails.
pool_verify() {
    local h=$1 x=$2 seen
    seen=$(pool_regions_of "$h" "$x")
    [ "$seen" = "${POOL_REGIONS[$x]}" ] || vm_fail "$h: VDI $x (${POOL_KIND[$x]}) reads other bytes than the model says ($3):
  model: ${POOL_REGIONS[$x]}
  read:  $seen"
}

pool_create() {
    local h=$1 x size=$((4 * 1024 * 1024)) regions="" i
    x=$(pool_uuid)
    vm_pool_ok "$h" vdi_create "$POOL_SR" "$x" "$size"
    for ((i = 0; i < size / POOL_REGION; i++)); do regions+="$POOL_ZERO "; done
    POOL_REGIONS[$x]=${regions% }
    POOL_PARENT[$x]=""
    POOL_KIND[$x]=w
    POOL_OWNER[$x]=$h
}

# pool_write HOST X COUNT: COUNT random regions of X get a new pattern, under X's persistent lock.
pool_write() {
    local h=$1 x=$2 count=$3 regions index n tag data sum
    read -r -a regions <<< "${POOL_REGIONS[$x]}"
    vm_pool_ok "$h" vdi_lock "$POOL_SR" "$x" FALSE "agent-$h"
    data=/run/pool/data.$h
    for ((n = 0; n < count; n++)); do
        index=$((RANDOM % ${#regions[@]}))
        POOL_WRITES=$((POOL_WRITES + 1))
        tag="$h $x region $index write $POOL_WRITES"
        yes "$tag" | head -c "$POOL_REGION" > "$data"
        sum=$(md5sum < "$data" | cut -d' ' -f1)
        vm_pool_in "$h" "$SM_BIN_DIR/sm-vhd" write "$(pool_file "$h" "$x")" $((index * POOL_REGION)) < "$data" \
            || vm_fail "$h: sm-vhd write into $x at region $index failed"
        regions[index]=$sum
    done
    POOL_REGIONS[$x]=${regions[*]}
    vm_pool_ok "$h" vdi_unlock "$POOL_SR" "$x" "agent-$h"
}

# pool_check HOST X: X read under its persistent lock, as the model says.
pool_check() {
    local h=$1 x=$2
    vm_pool_ok "$h" vdi_lock "$POOL_SR" "$x" FALSE "agent-$h"
    pool_verify "$h" "$x" "during the run"
    vm_pool_ok "$h" vdi_unlock "$POOL_SR" "$x" "agent-$h"
}

pool_snapshot() {
    local h=$1 s=$2 d
    d=$(pool_uuid)
    vm_pool_ok "$h" vdi_snapshot "$POOL_SR" "$s" "$d"
    POOL_REGIONS[$d]=${POOL_REGIONS[$s]}
    POOL_PARENT[$d]=${POOL_PARENT[$s]}
    POOL_PARENT[$s]=$d
    POOL_KIND[$d]=r
    POOL_OWNER[$d]=$h
}

# pool_clone HOST X: a writable leaf X becomes a child of a new base copy B beside the clone; a
# read-only X with children gets the clone as one more child.
pool_clone() {
    local h=$1 x=$2 d b
    d=$(pool_uuid)
    vm_pool_ok "$h" vdi_clone "$POOL_SR" "$x" "$d"
    POOL_REGIONS[$d]=${POOL_REGIONS[$x]}
    POOL_KIND[$d]=w
    POOL_OWNER[$d]=$h
    if [ "${POOL_KIND[$x]}" = w ]; then
        b=$(vm_pool_in "$h" "$SM_BIN_DIR/sm-vhd" chain "$(pool_file "$h" "$x")" | sed -n '2{s/ .*//;s|.*/||;s/\.vhd$//;p}')
        [ -n "$b" ] && [ -z "${POOL_KIND[$b]:-}" ] || vm_fail "$h: after vdi_clone of $x its parent is '$b', not a new base copy"
        POOL_REGIONS[$b]=${POOL_REGIONS[$x]}
        POOL_PARENT[$b]=${POOL_PARENT[$x]}
        POOL_KIND[$b]=r
        POOL_OWNER[$b]=$h
        POOL_PARENT[$x]=$b
        POOL_PARENT[$d]=$b
    else
        POOL_PARENT[$d]=$x
    fi
}

pool_resize() {
    local h=$1 x=$2 regions
    read -r -a regions <<< "${POOL_REGIONS[$x]}"
    local size=$(((${#regions[@]} + 4) * POOL_REGION))
    vm_pool_ok "$h" vdi_resize "$POOL_SR" "$x" "$size"
    POOL_REGIONS[$x]="${POOL_REGIONS[$x]} $POOL_ZERO $POOL_ZERO $POOL_ZERO $POOL_ZERO"
}

pool_delete() {
    local h=$1 x=$2 p next
    vm_pool_ok "$h" vdi_delete "$POOL_SR" "$x"
    if [ "$(pool_children "$x")" -gt 0 ]; then
        POOL_KIND[$x]=h
        echo "hidden $x" >> "$POOL_EVENTS"
        return
    fi
    p=${POOL_PARENT[$x]}
    unset "POOL_PARENT[$x]" "POOL_KIND[$x]" "POOL_REGIONS[$x]"
    while [ -n "$p" ] && [ "${POOL_KIND[$p]}" = h ] && [ "$(pool_children "$p")" = 0 ]; do
        echo "reclaimed $p" >> "$POOL_EVENTS"
        next=${POOL_PARENT[$p]}
        unset "POOL_PARENT[$p]" "POOL_KIND[$p]" "POOL_REGIONS[$p]"
        p=$next
    done
}

# pool_scan HOST: sr_scan lists every listed VDI of this host.
pool_scan() {
    local h=$1 x listed
    vm_pool_ok "$h" sr_scan "$POOL_SR"
    listed=$(vm_xml_values uuid <<< "$DRIVER_OUT")
    for x in $(pool_of w r); do
        grep -qx "$x" <<< "$listed" || vm_fail "$h: sr_scan does not list its VDI $x (${POOL_KIND[$x]})"
    done
}

# pool_save FILE: the model, one VDI a line: "<vdi> <kind> <parent or -> <md5>...".
pool_save() {
    local x
    for x in "${!POOL_KIND[@]}"; do
        echo "$x ${POOL_KIND[$x]} ${POOL_PARENT[$x]:--} ${POOL_REGIONS[$x]}"
    done > "$1"
}

# pool_load FILE: adds a saved model to this shell's.
pool_load() {
    local x kind parent regions
    while read -r x kind parent regions; do
        POOL_KIND[$x]=$kind
        POOL_REGIONS[$x]=$regions
        [ "$parent" = - ] && parent=""
        POOL_PARENT[$x]=$parent
    done < "$1"
}
