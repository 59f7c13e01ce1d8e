#!/bin/sh
# A real single-node Ceph cluster on 127.0.0.1 for RBDSR's tests and benchmark (../shared/CEPH.md's
# recipe): one mon, one OSD (bluestore on a sparse file, or STORE=memstore), cephx, no mgr.
#   cluster.sh up DIR      prints nothing; DIR/env holds PORT and the smtest key; pool `sm`
#   cluster.sh down DIR    stops the OSD then the mon (only the pids it started) and removes DIR
# The client `client.smtest` has `profile rbd` on pool sm; its keyring is DIR/smtest.keyring.
set -eu
command=$1 D=$2
case $command in
up)
    STORE=${STORE:-bluestore}
    mkdir -p "$D/mon" "$D/osd0" "$D/run" "$D/log"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    FSID=$(cat /proc/sys/kernel/random/uuid)
    cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $D/admin.keyring
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
osd pool default size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
osd crush chooseleaf type = 0
paxos propose interval = 0.01
# A SIGKILLed client's watches (and so its RBD exclusive locks) expire after this many seconds
# instead of 30: the crash tests wait for it at every fault point. Live clients ping every 5 s.
osd client watch timeout = 10
[mon.a]
mon data = $D/mon
[osd.0]
osd data = $D/osd0
osd objectstore = $STORE
bluestore block path = $D/osd0.block
bluestore block size = 8589934592
CONF
    C="-c $D/ceph.conf"
    ceph-authtool --create-keyring "$D/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool --create-keyring "$D/admin.keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool "$D/mon.keyring" --import-keyring "$D/admin.keyring" >/dev/null
    monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$PORT]" "$D/monmap" >/dev/null
    ceph-mon $C --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.keyring"
    ceph-mon $C -i a -f >"$D/log/mon.out" 2>&1 &
    echo $! > "$D/mon.pid"
    OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
    OSD_KEY=$(ceph-authtool --gen-print-key)
    echo "{\"cephx_secret\": \"$OSD_KEY\"}" > "$D/osd0/new.json"
    ID=$(timeout 60 ceph $C osd new "$OSD_UUID" -i "$D/osd0/new.json")
    ceph-authtool --create-keyring "$D/osd0/keyring" -n "osd.$ID" --add-key "$OSD_KEY" >/dev/null
    ceph-osd $C -i "$ID" --mkfs --osd-uuid "$OSD_UUID" --keyring "$D/osd0/keyring" >"$D/log/osd-mkfs.out" 2>&1
    ceph-osd $C -i "$ID" -f --keyring "$D/osd0/keyring" >"$D/log/osd.out" 2>&1 &
    echo $! > "$D/osd.pid"
    timeout 60 ceph $C osd pool create sm 32 32 >/dev/null 2>&1
    timeout 120 rbd $C pool init sm
    timeout 60 ceph $C auth get-or-create client.smtest mon 'profile rbd' \
        osd 'profile rbd pool=sm' mgr 'profile rbd pool=sm' -o "$D/smtest.keyring"
    KEY=$(ceph $C auth get-key client.smtest)
    printf 'PORT=%s\nKEY=%s\n' "$PORT" "$KEY" > "$D/env"
    ;;
down)
    for daemon in osd mon; do
        [ -f "$D/$daemon.pid" ] || continue
        pid=$(cat "$D/$daemon.pid")
        kill "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$D"
    ;;
*) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac
