#!/bin/bash
# The lvm-vhd group with a chain of 3 snapshots instead of 29: every other step (clone, ENOSPC,
# kill -9 at every fault point of create, snapshot and clone, delete until every extent is free)
# is the same. lvm-vhd proves the 30-deep chain; this one fits a lane.
LVM_VHD_DEPTH=3
. "${BASH_SOURCE[0]%/*}/lvm-vhd.sh"
