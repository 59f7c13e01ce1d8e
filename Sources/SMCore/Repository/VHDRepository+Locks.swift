import SystemPackage

/// Persistent VDI locks on file-based SRs: the `PersistentLock` protocol (the same as
/// `lock-util`'s) on `<SR root>/<VDI-UUID>.vhd`, as the historical NFS driver called
/// `lock <sr-dir>/<vdi>.vhd w <force> <UserString> 30`. The holder is UserString on this host
/// (the host's short name is part of the lock file's name), so the same UserString on another
/// host is another holder.
///
/// The lock is persistent: it lasts until vdi_unlock whatever its age. The historical driver also
/// broke a lock that `delta` showed unrefreshed for longer than lease + 5 s; nothing in this
/// project refreshes a VDI lock from the data path, so doing that here would break every lock
/// after 35 s. Only Force breaks another user's lock.
extension VHDRepository {
    /// The lease written into VDI lock files: 30 s (LOCK-UTIL.md), or the host setting
    /// `vdi_lock_lease` in sm.conf. A forced takeover waits one lease.
    public func vdiLockLease() throws(StorageError) -> Int {
        guard let text = host.settings["vdi_lock_lease"] else { return 30 }
        guard let seconds = Int(text.trimmingWhitespace()), (0...3600).contains(seconds) else {
            throw .invalid("host setting vdi_lock_lease must be whole seconds from 0 to 3600, got '\(ArgumentParsing.printable(text))'")
        }
        return seconds
    }

    func lockTarget(_ vdi: CanonicalUUID) throws(StorageError) -> LockTarget {
        guard let target = LockTarget(vdiPath(vdi)) else { throw .io("cannot form the lock path of VDI \(vdi)") }
        return target
    }

    /// vdi_lock: takes the writer lock for `user`; reasserting one's own lock succeeds. Held by
    /// another user: ENOLCK, unless `force`, which removes their lock file and waits one lease
    /// before returning so that a holder that was cut off can notice.
    public func lock(_ vdi: CanonicalUUID, force: Bool, user: String) throws(StorageError) {
        try requireAttached()
        guard fileExists(vdi), !isHidden(vdi) else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        let lease = try vdiLockLease()
        let lock = PersistentLock(target: try lockTarget(vdi), owner: LockOwner(id: user))
        let outcome = lock.lock(mode: .writer, force: force, lease: lease)
        switch outcome.status {
        case .acquired, .reasserted:
            if !outcome.tookOver.isEmpty {
                OperationLog.note(host: host, "vdi_lock \(sr) \(vdi): \(outcome.message)")
            }
        case .heldByWriter, .heldByReaders:
            throw .vdiLockedByOther(vdi.string, holders: outcome.heldBy)
        case .mutexUnavailable:
            throw .vdiLockMutexUnavailable(vdi.string, outcome.message)
        default:
            throw .io("vdi_lock \(vdi): \(outcome.message)")
        }
    }

    /// vdi_unlock: removes `user`'s lock. No lock at all succeeds (idempotent); a lock held by
    /// another user is ENOLCK and stays.
    public func unlock(_ vdi: CanonicalUUID, user: String) throws(StorageError) {
        try requireAttached()
        guard fileExists(vdi), !isHidden(vdi) else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        let target = try lockTarget(vdi)
        let outcome = PersistentLock(target: target, owner: LockOwner(id: user)).unlock(mode: .writer)
        switch outcome.status {
        case .acquired:
            return
        case .noLock:
            let holders = try PersistentLock.holders(of: target)
            guard holders.isEmpty else { throw .vdiLockedByOther(vdi.string, holders: holders) }
        default:
            throw .io("vdi_unlock \(vdi): \(outcome.message)")
        }
    }

    /// Who holds a persistent lock on `vdi` (any host, any mode).
    public func lockHolders(_ vdi: CanonicalUUID) throws(StorageError) -> [LockHolder] {
        try PersistentLock.holders(of: try lockTarget(vdi))
    }

    /// True when a lock file exists for `vdi` (sr_scan's `<locked>`). A directory that cannot be
    /// read reports unlocked here; the verbs that must refuse a locked VDI use `requireUnlocked`.
    public func isLocked(_ vdi: CanonicalUUID) -> Bool {
        (try? lockHolders(vdi).isEmpty == false) ?? false
    }

    /// EBUSY naming the holders when `vdi` is locked (vdi_delete, and the source of vdi_clone
    /// and vdi_snapshot).
    public func requireUnlocked(_ vdi: CanonicalUUID) throws(StorageError) {
        let holders = try lockHolders(vdi)
        guard holders.isEmpty else { throw .vdiLocked(vdi.string, holders: holders) }
    }
}
