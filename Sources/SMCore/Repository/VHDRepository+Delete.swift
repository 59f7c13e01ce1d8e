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
/// Both are recorded first ({delete, vdi, mode, modification time}; fault point
/// `delete.journaled`) and always rolled forward by recovery: `delete.hidden`,
/// `delete.unlinked`, `delete.ancestor-reclaimed` are the later points.
extension VHDRepository {
    /// What a delete leaves for coalescing: true when a hidden VDI with one child now exists.
    func removeOrHide(_ vdi: CanonicalUUID) throws(StorageError) -> Bool {
        let tree = try tree()
        if let node = tree.nodes[vdi], node.hidden { return false }
        let hasChildren = !tree.childrenOf(vdi).isEmpty
        var fields = ["vdi": vdi.string, "mode": hasChildren ? "hide" : "remove"]
        // Where reclaiming starts once the file is gone (not a key recovery locks: reclaiming does).
        if let parent = tree.nodes[vdi]?.parent { fields["leaf-parent"] = parent.string }
        if hasChildren, let time = Syscall.modificationTime(vdiPath(vdi)) { fields["modification-time"] = Self.encode(time) }
        let entry = try journal.begin(IntentRecord(operation: "delete", fields: fields))
        FaultPoint.reach("delete.journaled")
        _ = try replay(entry)
        let after = try self.tree()
        return after.nodes.values.contains { $0.hidden && after.childrenOf($0.vdi).count <= 1 }
    }

    func recoverDelete(_ record: IntentRecord) throws(StorageError) -> RecoveryOutcome {
        guard let vdi = record.uuid("vdi") else { throw .io("delete record is incomplete") }
        if record["mode"] == "hide" {
            if fileExists(vdi) {
                do throws(VHDError) {
                    let image = try VHDImage.open(vdiPath(vdi), writable: true)
                    var time = try image.modificationTime()
                    if let recorded = record["modification-time"].flatMap(Self.decodeTime) { time = recorded }
                    try image.setHidden(true)
                    FaultPoint.reach("delete.hidden")
                    try image.setModificationTime(time)
                    try image.sync()
                } catch { throw error.storageError }
            }
            try metadata.remove(vdi)
            return .rolledForward
        }
        let tree = try tree()
        try Syscall.unlinkIfPresent(vdiPath(vdi))
        try Syscall.fsyncDirectory(root)
        try metadata.remove(vdi)
        FaultPoint.reach("delete.unlinked")
        try reclaimChildlessAncestors(from: tree.nodes[vdi]?.parent ?? record.uuid("leaf-parent"), removed: vdi, tree: tree)
        return .rolledForward
    }

    /// Removes hidden VDIs that no longer have children, walking up from `start`. A hidden VDI
    /// whose lock is held (coalescing is at work on it) is left for sr_gc.
    func reclaimChildlessAncestors(from start: CanonicalUUID?, removed: CanonicalUUID, tree: SRTree) throws(StorageError) {
        // An unreadable VHD may be a child of any of them: leave them (sr_check reports the damage).
        guard tree.damaged.keys.allSatisfy({ $0 == removed }) else { return }
        var gone: Set<CanonicalUUID> = [removed]
        var current = start
        while let parent = current, let node = tree.nodes[parent], node.hidden,
              tree.childrenOf(parent).allSatisfy({ gone.contains($0) }) {
            guard let lock = tryLockVDI(parent) else { return }
            try Syscall.unlinkIfPresent(vdiPath(parent))
            try Syscall.fsyncDirectory(root)
            try metadata.remove(parent)
            lock.release()
            FaultPoint.reach("delete.ancestor-reclaimed")
            gone.insert(parent)
            current = node.parent
        }
    }

    /// The host lock of one VDI if it is free now, nil if another process holds it.
    func tryLockVDI(_ vdi: CanonicalUUID) -> HostLock? {
        try? HostLock.acquire("\(host.lockDirectory)/\(sr)/\(vdi)", mode: .exclusive, timeout: 0)
    }

    static func encode(_ time: timespec) -> String { "\(time.tv_sec).\(time.tv_nsec)" }

    static func decodeTime(_ text: String) -> timespec? {
        let parts = text.split(separator: ".")
        guard parts.count == 2, let seconds = Int(parts[0]), let nanoseconds = Int(parts[1]) else { return nil }
        return timespec(tv_sec: seconds, tv_nsec: nanoseconds)
    }
}
