#!/usr/bin/python3
"""RBDSR tests' data helper: writes and reads guest data through librbd (Debian's python3-rbd),
as the client.admin of the test cluster's ceph.conf.

  rbd-data.py CONF POOL NAMESPACE IMAGE[@SNAP] write OFFSET BYTE LENGTH   fill with one byte value
  rbd-data.py CONF POOL NAMESPACE IMAGE[@SNAP] read OFFSET LENGTH         print the bytes' hex digest (sha256)
  rbd-data.py CONF POOL NAMESPACE IMAGE hold                              open it for writing, print "held",
                                                                          keep it open until stdin closes
  rbd-data.py CONF POOL NAMESPACE - state                                 print the namespace as JSON: every
      image with its snapshots (name, protected), metadata and parent, and the omap of the SR marker sm-sr
"""
import hashlib
import json
import sys

import rados
import rbd

conf, pool, namespace, spec, verb = sys.argv[1:6]
image_name, _, snapshot = spec.partition("@")
cluster = rados.Rados(conffile=conf, conf={"client_mount_timeout": "15", "log_to_stderr": "false"})
cluster.connect()
try:
    ioctx = cluster.open_ioctx(pool)
    ioctx.set_namespace(namespace)
    if verb == "state":
        images = {}
        for name in rbd.RBD().list(ioctx):
            with rbd.Image(ioctx, name, read_only=True) as image:
                snapshots = [{"name": s["name"], "protected": image.is_protected_snap(s["name"])}
                             for s in image.list_snaps()]
                try:
                    parent = image.get_parent_image_spec()
                    parent = "%s@%s" % (parent["image_name"], parent["snap_name"])
                except rbd.ImageNotFound:
                    parent = None
                images[name] = {"snapshots": snapshots, "metadata": dict(image.metadata_list()), "parent": parent}
        omap = {}
        try:
            with rados.ReadOpCtx() as op:
                values, _ = ioctx.get_omap_vals(op, "", "", 10000)
                ioctx.operate_read_op(op, "sm-sr")
                omap = {k: v.decode() for k, v in values}
        except rados.ObjectNotFound:
            omap = None
        print(json.dumps({"images": images, "omap": omap}))
        sys.exit(0)
    with rbd.Image(ioctx, image_name, snapshot=snapshot or None, read_only=verb == "read") as image:
        if verb == "hold":
            print("held", flush=True)
            sys.stdin.read()
        elif verb == "write":
            offset, value, length = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
            image.write(bytes([value]) * length, offset)
            image.flush()
        else:
            offset, length = int(sys.argv[6]), int(sys.argv[7])
            print(hashlib.sha256(image.read(offset, length)).hexdigest())
    ioctx.close()
finally:
    cluster.shutdown()
