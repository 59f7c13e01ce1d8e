/// The recovery pass: every intent record a dead process left behind is completed or rolled
/// back before the next operation on the SR goes ahead. Drivers call `recover(holding:)` at the
/// start of every verb that touches an attached SR.
public enum RecoveryOutcome: Sendable, Equatable {
    case rolledBack
    case rolledForward
}

extension VHDRepository {
    /// Settles every abandoned record. `held` names the VDIs whose host locks this process
    /// already holds (the dispatcher's); the others named in a record are locked here, without
    /// waiting: a record whose VDIs are busy is left for the next pass.
    ///
    /// A record that cannot be replayed (a VHD it names is damaged, its operation is unknown, a
    /// field is missing) stays where it is, is logged, and is reported by sr_check; it costs only
    /// the VDIs it names: the verb fails (EIO) when it names one of them in `held`, every other
    /// verb goes on. The next pass tries it again (a transient error heals by itself).
    public func recover(holding held: Set<CanonicalUUID> = []) throws(StorageError) {
        let journal = self.journal
        if journal.isEmpty { return }
        let (entries, damaged) = journal.claimAbandoned()
        for path in damaged {
            OperationLog.note(host: host, "SR \(sr): unreadable intent record \(path) left in place; see sr_check")
        }
        var blocking: StorageError?
        for entry in entries {
            // Its VDIs' claims are taken side by side: lapsed ones cost one lease in all.
            guard let locks = tryHoldVDIs(Self.namedVDIs(entry.record).filter { !held.contains($0) }) else { continue }
            defer { locks.forEach { $0.release() } }
            // Another host's record is not locked by us (`claimAbandoned`): a process that held
            // these VDIs just before may have settled and removed it.
            if Syscall.lstatus(entry.path) == nil { continue }
            do throws(StorageError) {
                let outcome = try replay(entry)
                OperationLog.note(host: host, "SR \(sr): recovered \(entry.record.operationName) \(entry.record.fields): \(outcome)")
            } catch {
                OperationLog.note(
                    host: host,
                    "SR \(sr): recovery of \(entry.record.operationName) \(entry.path) failed, "
                        + "record left for sr_check: \(error)")
                let mine = Self.namedVDIs(entry.record).filter(held.contains)
                if blocking == nil, let vdi = mine.first {
                    blocking = StorageError(
                        code: error.code,
                        message: "VDI \(vdi) is named by an interrupted "
                            + "\(entry.record.operationName) in SR \(sr) that cannot be completed (\(error.message)); see sr_check")
                }
            }
        }
        if let blocking { throw blocking }
    }

    /// Every VDI that an unsettled record (one no process is carrying out) names, and whether an
    /// unreadable record exists (which could name any VDI). sr_gc leaves all of them alone.
    func unsettledVDIs() -> (vdis: Set<CanonicalUUID>, unreadable: Bool) {
        var vdis: Set<CanonicalUUID> = []
        var unreadable = false
        for record in journal.records() where !isRunning(record) {
            guard let intent = record.intent else {
                unreadable = true
                continue
            }
            vdis.formUnion(Self.namedVDIs(intent))
            vdis.formUnion(Self.reclaimCandidates(intent))
        }
        return (vdis, unreadable)
    }

    /// Whether a record's operation is being carried out now. On this host its lock says so. For
    /// another host's record the lock does not (it is the file server's, which keeps a dead
    /// client's locks for a lease or until that host reboots: `IntentJournal.claimAbandoned`):
    /// the operation runs while its writer still holds a live claim on a VDI the record names,
    /// as every operation does from before its record is written until after it is removed.
    func isRunning(_ record: (path: String, intent: IntentRecord?, live: Bool)) -> Bool {
        guard let intent = record.intent, journal.isForeign(intent) else { return record.live }
        let directory = SharedClaim.directory(srRoot: root)
        return Self.namedVDIs(intent).contains { vdi in
            guard let target = LockTarget("\(directory)/\(vdi)"),
                let holders = try? PersistentLock.holders(of: target)
            else { return true }  // unreadable: assume running
            return !holders.isEmpty && SharedClaim.judge(holders, target: target, host: host) == .live
        }
    }

    /// The VDIs a record's operation touches (whose host locks recovery must hold).
    static func namedVDIs(_ record: IntentRecord) -> [CanonicalUUID] {
        ["source", "destination", "base", "vdi", "parent", "child"].compactMap { record.uuid($0) }.sorted()
    }

    /// Completes or rolls back one record's operation, then removes the record.
    func replay(_ entry: IntentEntry) throws(StorageError) -> RecoveryOutcome {
        guard let operation = entry.record.operation else {
            throw .io("unknown operation '\(entry.record.operationName)' in \(entry.path)")
        }
        let outcome: RecoveryOutcome
        switch operation {
        case .snapshot: outcome = try recoverSnapshot(entry.record)
        case .clone: outcome = try recoverClone(entry.record)
        case .cloneChild: outcome = try recoverCloneAsChild(entry.record)
        case .delete: outcome = try recoverDelete(entry.record)
        case .coalesce: outcome = try recoverCoalesce(entry.record)
        case .resize: outcome = try recoverResize(entry.record)
        }
        try entry.finish()
        return outcome
    }
}
