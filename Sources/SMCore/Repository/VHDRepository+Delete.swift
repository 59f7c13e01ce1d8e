#if canImport(Glibc)
    import Glibc
#endif

/// vdi_delete of VHD chains.
///
/// - A VDI other VDIs depend on (it has children) is hidden (blktap's flag, both footers, its
///   modification time kept so that children still agree with it) and leaves sr_scan at once;
///   coalescing reclaims it later.
/// - A leaf is unlinked, then each hidden ancestor left without children, bottom up.
///
/// A leaf whose parent is visible (or that has none) is one unlink, not recorded (`delete.unlinked`
/// is its only fault point). The others are recorded first ({delete, vdi, mode, modification time}; fault point
/// `delete.journaled`) and always rolled forward by recovery: `delete.hidden`,
/// `delete.unlinked`, `delete.ancestor-reclaimed` are the later points.
extension VHDRepository {
    /// What a delete leaves for coalescing: true when a hidden VDI with one child now exists.
    func removeOrHide(_ vdi: CanonicalUUID) throws(StorageError) -> Bool {
        let tree = try tree()
        if let node = tree.nodes[vdi], node.hidden { return false }
        let hasChildren = !tree.childrenOf(vdi).isEmpty
        if hasChildren, let reason = tree.damaged[vdi] {
            // Hiding means writing into the file, which cannot be read: a record that can never
            // be replayed helps nobody. The VDI stays as it is, and sr_check names the damage.
            // (An unreadable leaf is simply unlinked.)
            throw .io("VDI \(vdi) is damaged (\(reason)) and other VDIs depend on it: it cannot be deleted as it is; see sr_check")
        }
        if !hasChildren, tree.nodes[vdi]?.parent.map({ tree.nodes[$0]?.hidden != true }) ?? true {
            // A leaf with no hidden parent to reclaim: the unlink is the whole delete, one step,
            // so no record (3 fsyncs fewer). Its attributes go after the unlink is durable: a
            // crash between leaves an attribute file of no VDI, which nothing reads (sr_scan reads
            // a VDI's attributes only; vdi_create of that UUID removes it first).
            try Syscall.unlinkIfPresent(vdiPath(vdi))
            try Syscall.fsyncDirectory(root)
            FaultPoint.Delete.unlinked.reach()
            try metadata.remove(vdi)
            // The removed leaf changed no hidden VDI's children: the work left is what was there.
            return tree.nodes.values.contains { $0.hidden && tree.childrenOf($0.vdi).count <= 1 }
        }
        var fields = ["vdi": vdi.string, "mode": hasChildren ? "hide" : "remove"]
        // Where reclaiming goes once the file is gone: the hidden ancestors, nearest first (not
        // keys recovery locks: reclaiming does). All of them, because a crash after the nearest
        // was reclaimed leaves nothing in the SR that leads from it to the next.
        if !hasChildren, let parent = tree.nodes[vdi]?.parent {
            fields["leaf-parent"] = parent.string
            let ancestors = tree.chain(from: parent).prefix { tree.nodes[$0]?.hidden == true }
            if !ancestors.isEmpty { fields["ancestors"] = ancestors.map(\.string).joinedText(separator: ",") }
        }
        if hasChildren, let time = Syscall.modificationTime(vdiPath(vdi)) { fields["modification-time"] = Self.encode(time) }
        let entry = try journal.begin(IntentRecord(operation: .delete, fields: fields))
        FaultPoint.Delete.journaled.reach()
        _ = try replay(entry)
        let after = try self.tree()
        return after.nodes.values.contains { $0.hidden && after.childrenOf($0.vdi).count <= 1 }
    }

    func recoverDelete(_ record: IntentRecord) throws(StorageError) -> RecoveryOutcome {
        guard let vdi = record.uuid("vdi") else { throw .io("delete record is incomplete") }
        if record["mode"] == "hide" {
            if fileExists(vdi) {
                let image = try VHDImage.open(vdiPath(vdi), writable: true)
                var time = try image.modificationTime()
                if let recorded = record["modification-time"].flatMap(Self.decodeTime) { time = recorded }
                // The flag in both footers, the recorded time back with the copy at 0, one fsync
                // for both (the record is replayed until it is removed).
                try image.setHidden(true, keepingModificationTime: time)
                FaultPoint.Delete.hidden.reach()
            }
            try metadata.remove(vdi)
            return .rolledForward
        }
        let tree = try tree()
        try Syscall.unlinkIfPresent(vdiPath(vdi))
        try Syscall.fsyncDirectory(root)
        try metadata.remove(vdi)
        FaultPoint.Delete.unlinked.reach()
        // The ancestors as the SR shows them now, then those the record names (the SR no longer
        // shows the ones a crash already reclaimed, nor so the way from them to the rest).
        var ancestors = tree.nodes[vdi]?.parent.map { tree.chain(from: $0) } ?? []
        ancestors += Self.reclaimCandidates(record).filter { !ancestors.contains($0) }
        try reclaimChildlessAncestors(ancestors, removed: vdi, tree: tree)
        return .rolledForward
    }

    /// The hidden ancestors a leaf delete record names, nearest first (records written before
    /// `ancestors` existed name only the nearest, as `leaf-parent`).
    static func reclaimCandidates(_ record: IntentRecord) -> [CanonicalUUID] {
        guard record.operation == .delete else { return [] }
        let listed = (record["ancestors"] ?? "").split(separator: ",").compactMap { CanonicalUUID(String($0)) }
        return listed.isEmpty ? [record.uuid("leaf-parent")].compactMap { $0 } : listed
    }

    /// Removes, nearest first, each of `ancestors` that is hidden and has no children left; stops
    /// at the first one that is visible or still has a child. One already gone is passed over. A
    /// hidden VDI whose lock is held (coalescing is at work on it) is left for sr_gc.
    func reclaimChildlessAncestors(_ ancestors: [CanonicalUUID], removed: CanonicalUUID, tree: SRTree) throws(StorageError) {
        // An unreadable VHD may be a child of any of them: leave them (sr_check reports the damage).
        guard tree.damaged.keys.allSatisfy({ $0 == removed }) else { return }
        var gone: Set<CanonicalUUID> = [removed]
        for parent in ancestors {
            guard let node = tree.nodes[parent] else {
                gone.insert(parent)  // reclaimed before a crash
                continue
            }
            guard node.hidden, tree.childrenOf(parent).allSatisfy({ gone.contains($0) }) else { return }
            guard let lock = tryHoldVDI(parent) else { return }
            try Syscall.unlinkIfPresent(vdiPath(parent))
            try Syscall.fsyncDirectory(root)
            try metadata.remove(parent)
            lock.release()
            FaultPoint.Delete.ancestorReclaimed.reach()
            gone.insert(parent)
        }
    }

    static func encode(_ time: timespec) -> String { "\(time.tv_sec).\(time.tv_nsec)" }

    static func decodeTime(_ text: String) -> timespec? {
        let parts = text.split(separator: ".")
        guard parts.count == 2, let seconds = Int(parts[0]), let nanoseconds = Int(parts[1]) else { return nil }
        return timespec(tv_sec: seconds, tv_nsec: nanoseconds)
    }
}
