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
    public func recover(holding held: Set<CanonicalUUID> = []) throws(StorageError) {
        let journal = self.journal
        if journal.isEmpty { return }
        let (entries, damaged) = journal.claimAbandoned()
        for path in damaged {
            OperationLog.note(host: host, "SR \(sr): unreadable intent record \(path) left in place; see sr_check")
        }
        for entry in entries {
            var locks: [HostLock] = []
            var busy = false
            for vdi in Self.namedVDIs(entry.record) where !held.contains(vdi) {
                guard let lock = tryLockVDI(vdi) else {
                    busy = true
                    break
                }
                locks.append(lock)
            }
            defer { locks.forEach { $0.release() } }
            if busy { continue }
            do throws(StorageError) {
                let outcome = try replay(entry)
                OperationLog.note(host: host, "SR \(sr): recovered \(entry.record.operation) \(entry.record.fields): \(outcome)")
            } catch {
                OperationLog.note(host: host, "SR \(sr): recovery of \(entry.record.operation) failed: \(error)")
                throw StorageError(code: error.code, message: "recovering an interrupted \(entry.record.operation) in SR \(sr): "
                    + error.message)
            }
        }
    }

    /// The VDIs a record's operation touches (whose host locks recovery must hold).
    static func namedVDIs(_ record: IntentRecord) -> [CanonicalUUID] {
        ["source", "destination", "base", "vdi", "parent", "child"].compactMap { record.uuid($0) }.sorted()
    }

    /// Completes or rolls back one record's operation, then removes the record.
    func replay(_ entry: IntentEntry) throws(StorageError) -> RecoveryOutcome {
        let outcome: RecoveryOutcome
        switch entry.record.operation {
        case "snapshot": outcome = try recoverSnapshot(entry.record)
        case "clone": outcome = try recoverClone(entry.record)
        case "clone-child": outcome = try recoverCloneAsChild(entry.record)
        case "delete": outcome = try recoverDelete(entry.record)
        case "coalesce": outcome = try recoverCoalesce(entry.record)
        default: throw .io("unknown operation '\(entry.record.operation)' in \(entry.path)")
        }
        try entry.finish()
        return outcome
    }
}
