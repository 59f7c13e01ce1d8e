#!/usr/bin/python3
"""powercutfs: a FUSE filesystem that forgets, when it is killed, everything that was not fsynced.

    powercutfs.py BACKING MOUNTPOINT      (foreground; Debian's /usr/bin/python3 with python3-llfuse)

Every operation works on a VOLATILE image held in this process's memory. A DURABLE image is kept in
BACKING (a directory on a real filesystem), and only fsync moves state into it:

- fsync(file) or fdatasync(file): the file's bytes, size and modification time become durable;
- fsync(directory): that directory's entries (names created, linked, renamed in or out, unlinked)
  become durable. A name made durable for an inode whose data was never fsynced is an empty file.

A power cut is the end of this process (SIGKILL from outside, or a cut it was armed to make): the
volatile image is gone, and the next mount starts from the durable image alone. Docs/power-loss.md
says which behaviours of a real filesystem this models and which it does not.

Durable layout in BACKING: `<inode>.data` (a file's bytes; its mtime is the file's), `<inode>.dir`
(JSON: name in hex -> inode). Inode 1 is the root. Files no durable directory reaches are removed
at mount (what fsck does with orphans).

Control: writes to the hidden file `.powercut` in the root, one command a line:
- `arm K MODE WRITEBACK SEED`: cut at the K-th fsync/fsyncdir from now. MODE `before`: the fsync is
  not applied; `torn`: a random subset of that file's dirty pages (and maybe its size) is applied
  first. WRITEBACK (0..1): the probability that each dirty page of any file reached the disk
  anyway before the cut (the kernel's background writeback).
- `cut WRITEBACK SEED`: cut now.
- `report PATH`: write counters (fsyncs, fsyncdirs, writes, bytes) to PATH.
"""
import errno
import json
import os
import random
import signal
import stat
import sys
import threading
import time

import llfuse

PAGE = 4096
ROOT = llfuse.ROOT_INODE
CONTROL_NAME = b".powercut"
CONTROL_INODE = 1 << 62
CAPACITY = 8 << 30  # what statfs reports as the filesystem's size


class Inode:
    def __init__(self, number, is_directory, mode):
        self.number = number
        self.is_directory = is_directory
        self.mode = mode
        self.links = 0
        self.data = bytearray()
        self.dirty = set()  # pages changed since the last fsync
        self.entries = {}  # name (bytes) -> inode number
        now = time.time_ns()
        self.mtime = now
        self.ctime = now


class PowerCutFS(llfuse.Operations):
    def __init__(self, backing):
        super().__init__()
        self.backing = backing
        self.inodes = {}
        self.armed = None
        self.counters = {"fsyncs": 0, "fsyncdirs": 0, "writes": 0, "written_bytes": 0, "cuts_armed": 0}
        self.load()

    # Durable image

    def path(self, number, suffix):
        return os.path.join(self.backing, "%d.%s" % (number, suffix))

    def load(self):
        if not os.path.exists(self.path(ROOT, "dir")):
            self.write_json(self.path(ROOT, "dir"), {})
        reached = set()

        def visit(number, is_directory):
            if number in self.inodes:
                self.inodes[number].links += 1
                return
            inode = Inode(number, is_directory, (stat.S_IFDIR | 0o755) if is_directory else (stat.S_IFREG | 0o644))
            inode.links = 1
            self.inodes[number] = inode
            if is_directory:
                reached.add("%d.dir" % number)
                with open(self.path(number, "dir")) as handle:
                    entries = json.load(handle)
                for name, child in entries.items():
                    inode.entries[bytes.fromhex(name)] = child
                    visit(child, os.path.exists(self.path(child, "dir")))
            else:
                reached.add("%d.data" % number)
                with open(self.path(number, "data"), "rb") as handle:
                    inode.data = bytearray(handle.read())
                inode.mtime = os.stat(self.path(number, "data")).st_mtime_ns

        visit(ROOT, True)
        for inode in self.inodes.values():
            if inode.is_directory:
                inode.links = 2 + sum(self.inodes[child].is_directory for child in inode.entries.values())
        for name in os.listdir(self.backing):
            if name not in reached:
                os.unlink(os.path.join(self.backing, name))
        self.next_number = max(self.inodes) + 1

    def write_json(self, path, value):
        temporary = path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(value, handle)
        os.replace(temporary, path)

    def persist_pages(self, inode, pages, size):
        """Writes the pages' current bytes into the durable image, then sets the durable size and mtime."""
        path = self.path(inode.number, "data")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for page in sorted(pages):
                chunk = bytes(inode.data[page * PAGE:(page + 1) * PAGE])
                if chunk:
                    os.pwrite(descriptor, chunk, page * PAGE)
            if size is not None:
                os.ftruncate(descriptor, size)
        finally:
            os.close(descriptor)
        os.utime(path, ns=(inode.mtime, inode.mtime))

    def persist_directory(self, inode):
        for child in inode.entries.values():
            node = self.inodes[child]
            if node.is_directory and not os.path.exists(self.path(child, "dir")):
                self.write_json(self.path(child, "dir"), {})
            elif not node.is_directory and not os.path.exists(self.path(child, "data")):
                self.persist_pages(node, [], 0)
        self.write_json(self.path(inode.number, "dir"), {name.hex(): child for name, child in inode.entries.items()})

    # Power cuts

    def cut(self, writeback, generator):
        """Lets each dirty page reach the durable image with probability `writeback`, then dies."""
        if writeback > 0:
            for inode in self.inodes.values():
                if inode.is_directory or not inode.dirty:
                    continue
                pages = [page for page in inode.dirty if generator.random() < writeback]
                if pages:
                    durable = self.path(inode.number, "data")
                    old = os.path.getsize(durable) if os.path.exists(durable) else 0
                    end = max(min(len(inode.data), (page + 1) * PAGE) for page in pages)
                    self.persist_pages(inode, pages, max(old, end))
        sys.stderr.write("powercutfs: power cut after %d fsyncs, %d fsyncdirs\n"
                         % (self.counters["fsyncs"], self.counters["fsyncdirs"]))
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def count_sync(self, inode):
        """Counts one fsync or fsyncdir; makes the armed cut when it is this one."""
        if self.armed is None:
            return
        self.armed["remaining"] -= 1
        if self.armed["remaining"] > 0:
            return
        generator = random.Random(self.armed["seed"])
        if self.armed["mode"] == "torn" and not inode.is_directory and inode.dirty:
            pages = [page for page in inode.dirty if generator.random() < 0.5]
            size = len(inode.data) if generator.random() < 0.5 else None
            self.persist_pages(inode, pages, size)
        self.cut(self.armed["writeback"], generator)

    def control(self, text):
        for line in text.decode().splitlines():
            words = line.split()
            if not words:
                continue
            if words[0] == "arm":
                self.armed = {"remaining": int(words[1]), "mode": words[2], "writeback": float(words[3]),
                              "seed": int(words[4])}
                self.counters["cuts_armed"] += 1
            elif words[0] == "cut":
                self.cut(float(words[1]), random.Random(int(words[2])))
            elif words[0] == "report":
                with open(words[1], "w") as handle:
                    json.dump(self.counters, handle)
            else:
                raise llfuse.FUSEError(errno.EINVAL)

    # Attributes

    def attributes(self, inode):
        entry = llfuse.EntryAttributes()
        entry.st_ino = inode.number
        entry.generation = 0
        entry.entry_timeout = 0
        entry.attr_timeout = 0
        entry.st_mode = inode.mode
        entry.st_nlink = inode.links
        entry.st_uid = 0
        entry.st_gid = 0
        entry.st_rdev = 0
        entry.st_size = len(inode.data)
        entry.st_blksize = PAGE
        entry.st_blocks = (len(inode.data) + 511) // 512
        entry.st_atime_ns = inode.mtime
        entry.st_mtime_ns = inode.mtime
        entry.st_ctime_ns = inode.ctime
        return entry

    def control_attributes(self):
        entry = self.attributes(Inode(CONTROL_INODE, False, stat.S_IFREG | 0o600))
        entry.st_nlink = 1
        return entry

    def node(self, number):
        try:
            return self.inodes[number]
        except KeyError:
            raise llfuse.FUSEError(errno.ENOENT)

    def directory(self, number):
        inode = self.node(number)
        if not inode.is_directory:
            raise llfuse.FUSEError(errno.ENOTDIR)
        return inode

    def lookup(self, parent_inode, name, ctx=None):
        parent = self.directory(parent_inode)
        if parent_inode == ROOT and name == CONTROL_NAME:
            return self.control_attributes()
        if name == b".":
            return self.attributes(parent)
        if name not in parent.entries:
            raise llfuse.FUSEError(errno.ENOENT)
        return self.attributes(self.inodes[parent.entries[name]])

    def getattr(self, inode, ctx=None):
        if inode == CONTROL_INODE:
            return self.control_attributes()
        return self.attributes(self.node(inode))

    def setattr(self, inode, attr, fields, fh, ctx):
        if inode == CONTROL_INODE:
            return self.control_attributes()
        node = self.node(inode)
        if fields.update_size:
            old = len(node.data)
            new = attr.st_size
            if new < old:
                del node.data[new:]
            else:
                node.data.extend(bytes(new - old))
            low, high = min(old, new), max(old, new)
            node.dirty.update(range(low // PAGE, (high + PAGE - 1) // PAGE))
            node.mtime = time.time_ns()
        if fields.update_mode:
            node.mode = (node.mode & ~0o7777) | (attr.st_mode & 0o7777)
        if fields.update_mtime:
            node.mtime = attr.st_mtime_ns
        node.ctime = time.time_ns()
        return self.attributes(node)

    def access(self, inode, mode, ctx):
        return True

    def statfs(self, ctx):
        used = sum(len(inode.data) for inode in self.inodes.values())
        data = llfuse.StatvfsData()
        data.f_bsize = PAGE
        data.f_frsize = PAGE
        data.f_blocks = CAPACITY // PAGE
        data.f_bfree = max(0, (CAPACITY - used) // PAGE)
        data.f_bavail = data.f_bfree
        data.f_files = 1 << 20
        data.f_ffree = data.f_files - len(self.inodes)
        data.f_favail = data.f_ffree
        data.f_namemax = 255
        return data

    # Names

    def new_inode(self, parent, name, is_directory, mode):
        if name in parent.entries or (parent.number == ROOT and name == CONTROL_NAME):
            raise llfuse.FUSEError(errno.EEXIST)
        inode = Inode(self.next_number, is_directory, mode)
        self.next_number += 1
        inode.links = 2 if is_directory else 1
        self.inodes[inode.number] = inode
        parent.entries[name] = inode.number
        if is_directory:
            parent.links += 1
        return inode

    def create(self, parent_inode, name, mode, flags, ctx):
        mode &= ~getattr(ctx, "umask", 0)
        inode = self.new_inode(self.directory(parent_inode), name, False, stat.S_IFREG | (mode & 0o7777))
        return (inode.number, self.attributes(inode))

    def mknod(self, parent_inode, name, mode, rdev, ctx):
        if not stat.S_ISREG(mode):
            raise llfuse.FUSEError(errno.EPERM)
        return self.attributes(self.new_inode(self.directory(parent_inode), name, False, mode))

    def mkdir(self, parent_inode, name, mode, ctx):
        mode &= ~getattr(ctx, "umask", 0)
        return self.attributes(self.new_inode(self.directory(parent_inode), name, True, stat.S_IFDIR | (mode & 0o7777)))

    def drop_entry(self, parent, name):
        child = self.inodes[parent.entries.pop(name)]
        child.links -= 1
        child.ctime = time.time_ns()
        if child.is_directory:
            child.links = 0
            parent.links -= 1

    def unlink(self, parent_inode, name, ctx):
        parent = self.directory(parent_inode)
        if name not in parent.entries:
            raise llfuse.FUSEError(errno.ENOENT)
        if self.inodes[parent.entries[name]].is_directory:
            raise llfuse.FUSEError(errno.EISDIR)
        self.drop_entry(parent, name)

    def rmdir(self, parent_inode, name, ctx):
        parent = self.directory(parent_inode)
        if name not in parent.entries:
            raise llfuse.FUSEError(errno.ENOENT)
        child = self.inodes[parent.entries[name]]
        if not child.is_directory:
            raise llfuse.FUSEError(errno.ENOTDIR)
        if child.entries:
            raise llfuse.FUSEError(errno.ENOTEMPTY)
        self.drop_entry(parent, name)

    def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, ctx):
        old_parent = self.directory(parent_inode_old)
        new_parent = self.directory(parent_inode_new)
        if name_old not in old_parent.entries:
            raise llfuse.FUSEError(errno.ENOENT)
        moved = self.inodes[old_parent.entries[name_old]]
        if name_new in new_parent.entries:
            if new_parent.entries[name_new] == moved.number:
                return
            target = self.inodes[new_parent.entries[name_new]]
            if target.is_directory and target.entries:
                raise llfuse.FUSEError(errno.ENOTEMPTY)
            if target.is_directory != moved.is_directory:
                raise llfuse.FUSEError(errno.EISDIR if target.is_directory else errno.ENOTDIR)
            self.drop_entry(new_parent, name_new)
        del old_parent.entries[name_old]
        new_parent.entries[name_new] = moved.number
        if moved.is_directory:
            old_parent.links -= 1
            new_parent.links += 1
        moved.ctime = time.time_ns()

    def link(self, inode, new_parent_inode, new_name, ctx):
        node = self.node(inode)
        parent = self.directory(new_parent_inode)
        if node.is_directory:
            raise llfuse.FUSEError(errno.EPERM)
        if new_name in parent.entries:
            raise llfuse.FUSEError(errno.EEXIST)
        parent.entries[new_name] = node.number
        node.links += 1
        node.ctime = time.time_ns()
        return self.attributes(node)

    def opendir(self, inode, ctx):
        self.directory(inode)
        return inode

    def readdir(self, fh, off):
        names = sorted(self.directory(fh).entries.items())
        for index in range(off, len(names)):
            name, number = names[index]
            yield (name, self.attributes(self.inodes[number]), index + 1)

    def fsyncdir(self, fh, datasync):
        inode = self.directory(fh)
        self.counters["fsyncdirs"] += 1
        self.count_sync(inode)
        self.persist_directory(inode)

    def releasedir(self, fh):
        pass

    # Data

    def open(self, inode, flags, ctx):
        if inode != CONTROL_INODE and self.node(inode).is_directory:
            raise llfuse.FUSEError(errno.EISDIR)
        return inode

    def read(self, fh, off, size):
        if fh == CONTROL_INODE:
            return b""
        return bytes(self.node(fh).data[off:off + size])

    def write(self, fh, off, buf):
        if fh == CONTROL_INODE:
            self.control(buf)
            return len(buf)
        inode = self.node(fh)
        end = off + len(buf)
        if end > len(inode.data):
            old = len(inode.data)
            inode.data.extend(bytes(end - old))
            inode.dirty.update(range(old // PAGE, (end + PAGE - 1) // PAGE))
        inode.data[off:end] = buf
        inode.dirty.update(range(off // PAGE, (end + PAGE - 1) // PAGE))
        inode.mtime = time.time_ns()
        self.counters["writes"] += 1
        self.counters["written_bytes"] += len(buf)
        return len(buf)

    def fsync(self, fh, datasync):
        if fh == CONTROL_INODE:
            return
        inode = self.node(fh)
        self.counters["fsyncs"] += 1
        self.count_sync(inode)
        self.persist_pages(inode, inode.dirty, len(inode.data))
        inode.dirty.clear()

    def flush(self, fh):
        pass

    def release(self, fh):
        pass

    def forget(self, inode_list):
        pass


def die_with_parent():
    """A test that dies without stopping the daemon must not leave it (and its mount) running."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: powercutfs.py BACKING MOUNTPOINT\n")
        sys.exit(2)
    backing, mountpoint = sys.argv[1], sys.argv[2]
    os.makedirs(backing, exist_ok=True)
    operations = PowerCutFS(backing)
    options = set(llfuse.default_options)
    options.discard("default_permissions")
    options.add("fsname=powercutfs")
    llfuse.init(operations, mountpoint, options)
    die_with_parent()
    try:
        llfuse.main(workers=1)
    finally:
        llfuse.close(unmount=False)


if __name__ == "__main__":
    main()
