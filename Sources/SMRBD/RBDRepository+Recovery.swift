import SMCore

/// Intent records: what RBDSR's multi-step verbs write in the omap of the SR's marker object
/// `sm-sr` before their first change on the cluster and remove after their last, so that a crash
/// in between is completed or rolled back by the next verb on any host (Docs/RBDSR.md, "Crash
/// safety"). Every verb that connects to the SR reads them together with the marker (one read,
/// no round trip of its own) and recovers what it can; sr_scan hides what it cannot yet.
///
/// Key `intent.<VDI-UUID>` (the VDI the verb makes or deletes); value, words separated by spaces:
/// - `clone <image> <base>`: vdi_clone of an image; the base copy snapshot `<image>@<base>`,
///   then the clone image `<VDI>`. The writer holds `<image>`'s exclusive lock throughout (its
///   claim: it dies with the writer's client, see `RBDImage.claim`).
/// - `delete-image <parent image> <parent snapshot>`: vdi_delete of the image `<VDI>`, a clone of
///   that snapshot, which may have to be reclaimed after it (and its hidden image, and up).
/// - `delete-snapshot <image>`: vdi_delete of the snapshot `<image>@<VDI>`; its metadata, index
///   entry and maybe its hidden image (and up) follow.
/// A delete is recovered by anyone at any time: when the VDI is still there the record is dropped
/// (the delete did not happen), else the SR is swept (`reclaimAll`), which removes only hidden
/// snapshots without clones and hidden images without snapshots, and RBD itself refuses to
/// remove what a live verb still uses.
struct RBDIntent: Equatable {
    enum Kind: Equatable {
        case clone(image: String, base: String)
        case deleteImage(parent: String, snapshot: String)
        case deleteSnapshot(image: String)
    }

    static let prefix = "intent."

    var vdi: String
    var kind: Kind

    var key: String { Self.prefix + vdi }

    var value: String {
        switch kind {
        case .clone(let image, let base): return "clone \(image) \(base)"
        case .deleteImage(let parent, let snapshot): return "delete-image \(parent) \(snapshot)"
        case .deleteSnapshot(let image): return "delete-snapshot \(image)"
        }
    }

    init(vdi: String, kind: Kind) {
        self.vdi = vdi
        self.kind = kind
    }

    /// Nil for a record this version does not understand (left alone).
    init?(key: String, value: String) {
        guard key.hasPrefix(Self.prefix) else { return nil }
        vdi = String(key.dropFirst(Self.prefix.count))
        let words = value.split(separator: " ").map(String.init)
        switch (words.first, words.count) {
        case ("clone", 3): kind = .clone(image: words[1], base: words[2])
        case ("delete-image", 3): kind = .deleteImage(parent: words[1], snapshot: words[2])
        case ("delete-snapshot", 2): kind = .deleteSnapshot(image: words[1])
        default: return nil
        }
    }

    /// The VDIs sr_scan must not list while this record waits: a clone's base copy and destination.
    var unfinishedVDIs: [String] {
        if case .clone(_, let base) = kind { return [base, vdi] }
        return []
    }
}

extension RBDRepository {
    /// Writes `intent` (and, in the same atomic omap write, `alsoSet`) before a verb's first change.
    func record(_ intent: RBDIntent, _ session: CephSession, alsoSet: [(key: String, value: String)] = []) throws(StorageError) {
        try session.setMapValues([(intent.key, intent.value)] + alsoSet, in: Self.markerObject)
    }

    /// Removes `intent` (and `alsoRemove`) after the verb's last change.
    func finish(_ intent: RBDIntent, _ session: CephSession, alsoRemove: [String] = []) throws(StorageError) {
        try session.removeMapValues([intent.key] + alsoRemove, in: Self.markerObject)
    }

    /// Completes or rolls back every recorded intent whose writer is gone; returns those left
    /// waiting (their writer, or its lock, is still alive). Run by every verb that connects to the
    /// SR, before it reads anything else.
    func recover(_ records: [String: String], _ session: CephSession) throws(StorageError) -> [RBDIntent] {
        var waiting: [RBDIntent] = []
        for (key, value) in records.sorted(by: { $0.key < $1.key }) {
            guard let intent = RBDIntent(key: key, value: value) else { continue }
            if try !recover(intent, session) { waiting.append(intent) }
        }
        return waiting
    }

    /// One intent; false when it must wait.
    private func recover(_ intent: RBDIntent, _ session: CephSession) throws(StorageError) -> Bool {
        switch intent.kind {
        case .clone(let name, let base):
            if let image = try RBDImage.openIfPresent(session, name: name, readOnly: false) {
                // The writer's claim: held while the clone is under way, broken once its client is
                // gone. Never wait for it here: a live (or not yet expired) owner means "later".
                guard try !image.lockHeldByLiveClient(), try image.claim() else { return false }
                if try RBDImage.openIfPresent(session, name: intent.vdi) != nil {
                    // The clone exists: the verb had done its work; only the record was left.
                    Diagnostics.debug("recovery: vdi_clone to \(intent.vdi) had finished; forgetting its intent")
                    try finish(intent, session)
                    return true
                }
                Diagnostics.debug("recovery: rolling back vdi_clone to \(intent.vdi) (base copy \(base) of \(name))")
                if try image.snapshots().contains(where: { $0.name == base }) { try image.removeSnapshot(base) }
                try image.removeMetadata(RBDTree.baseCopyKey(base))
            }
            try finish(intent, session, alsoRemove: [RBDRepository.snapshotIndexKey(base), RBDRepository.cloneIndexKey(intent.vdi)])
        case .deleteImage(let parent, let snapshot):
            if try RBDImage.openIfPresent(session, name: intent.vdi) == nil {
                // Removed; the reclaim up its chain may have stopped anywhere: sweep the SR.
                Diagnostics.debug("recovery: completing vdi_delete of \(intent.vdi) (a clone of \(parent)@\(snapshot))")
                try reclaimAll(session)
                try finish(intent, session, alsoRemove: [RBDRepository.cloneIndexKey(intent.vdi)])
            } else {
                try finish(intent, session)
            }
        case .deleteSnapshot(let name):
            if let image = try RBDImage.openIfPresent(session, name: name),
                try image.snapshots().contains(where: { $0.name == intent.vdi })
            {
                try finish(intent, session)  // not removed: the VDI is as before
                return true
            }
            Diagnostics.debug("recovery: completing vdi_delete of snapshot \(name)@\(intent.vdi)")
            try forgetSnapshot(session, image: name, snapshot: intent.vdi)
            try reclaimAll(session)
            try finish(intent, session, alsoRemove: [RBDRepository.snapshotIndexKey(intent.vdi)])
        }
        return true
    }
}
