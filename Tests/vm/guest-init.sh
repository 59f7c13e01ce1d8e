#!/bin/bash
# PID 1 of the VM lane's guest, on the host's root (read-only 9p under a tmpfs overlay). Sets up
# a minimal system (tmpfs /run, udev, loopback), then runs each requested group in turn
# under its own time limit and writes "<exit status> <seconds>" for it into the results share,
# which the host reads after the guest powers off. Output goes to the serial console.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb LVM_SUPPRESS_FD_WARNINGS=1

power_off() {
    sync
    echo o > /proc/sysrq-trigger
    sleep 60
}

mount -t tmpfs -o mode=0755,size=50% tmpfs /run
mkdir -p /run/lock /run/vm-out /dev/pts /dev/shm
# /tmp stays the overlay's (its writes land in the overlay's tmpfs, so RAM all the same): a tmpfs
# mounted over it would hide a checkout or SM_BIN_DIR that lives under the host's /tmp.
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t configfs configfs /sys/kernel/config 2>/dev/null
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=none out /run/vm-out; then
    echo "vm guest: cannot mount the results share"
    power_off
fi
# shellcheck source=/dev/null
. /run/vm-out/config
read -r uptime _ < /proc/uptime
echo "${uptime%.*}" > /run/vm-out/booted

hostname vm-lane
ip link set lo up
: > /etc/mtab 2>/dev/null; ln -sf /proc/self/mounts /etc/mtab

# udev, so that /dev/disk/by-*, /dev/VG/LV and device-mapper's udev synchronisation work.
# Only block devices are replayed at start: a full coldplug loads dozens of modules the groups
# never use (kvm, sound, input...) and costs seconds under TCG. Later events are all handled.
/lib/systemd/systemd-udevd --daemon --resolve-names=never
modprobe -a virtio_blk virtio_rng
udevadm trigger --action=add --subsystem-match=block
udevadm settle --timeout=60
dmesg -n 3
read -r uptime _ < /proc/uptime
echo "vm guest: ready after ${uptime} s of guest uptime"

# The scratch disk QEMU attached for a group carries the group's name as its virtio serial.
disk_for() {
    local block
    for block in /sys/block/vd*; do
        [ -e "$block/serial" ] && [ "$(cat "$block/serial")" = "$1" ] && { echo "/dev/${block##*/}"; return; }
    done
}

for group in $VM_GROUPS; do
    echo
    echo "===== VM group $group: start ====="
    start=$(date +%s.%N)
    dmesg_lines=$(dmesg | wc -l)
    (
        cd "$VM_REPO" || exit 1
        export VM_REPO SM_BIN_DIR VM_GROUP="$group" VM_LIB="$VM_REPO/Tests/vm/lib.sh"
        VM_DISK=$(disk_for "$group")
        export VM_DISK
        exec timeout --kill-after=10 "$VM_GROUP_TIMEOUT" bash "Tests/vm/groups/$group.sh"
    ) 2>&1 | tee "/run/vm-out/$group.log"
    status=${PIPESTATUS[0]}
    seconds=$(echo "$start $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
    if [ "$status" = 0 ]; then verdict=PASS; else verdict="FAIL (exit status $status)"; fi
    if [ "$status" != 0 ]; then
        echo "----- kernel messages during the group (last 25 lines) -----"
        dmesg | tail -n "+$((dmesg_lines + 1))" | tail -n 25
    fi
    echo "===== VM group $group: $verdict in $seconds s ====="
    echo "$status $seconds" > "/run/vm-out/results/$group"
done
echo "done" > /run/vm-out/finished
power_off
