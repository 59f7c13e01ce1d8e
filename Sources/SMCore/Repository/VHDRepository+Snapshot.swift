#if canImport(Glibc)
    import Glibc
#endif

/// vdi_snapshot and vdi_clone: O(1) in the data size (metadata of one or two new files and a
/// few directory operations), crash-safe through an intent record.
///
/// Snapshot of a leaf S as D: the file S.vhd becomes D.vhd (read-only); a new empty
/// differencing S.vhd continues S as D's child.
/// 1. record {snapshot, S, D, S's unique id}, fsynced;          fault point `snapshot.journaled`
/// 2. D's attributes (read_only) written and renamed into place, then `.S.vhd.cow`, a child of
///    D.vhd, written (neither fsynced yet);                        `snapshot.child-created`
/// 3. link S.vhd as D.vhd (fails if D appeared); then one batch of flushes: the attribute file
///    and its directory, the child, the SR directory;              `snapshot.linked`
/// 4. rename `.S.vhd.cow` over S.vhd, fsync the directory: the commit point; `snapshot.committed`
/// 5. remove the record.
/// Recovery: while S.vhd still carries S's old unique id nothing was committed and the extra
/// names are removed (rolled back); after step 4 only clean-up remains (rolled forward).
///
/// Clone of a leaf S as D: S.vhd becomes B.vhd, a new UUID, listed read-only as "base copy";
/// S and D are two new empty children of it. Same pattern: both children built under temporary
/// names, B linked (`clone.base-linked`), D linked (`clone.destination-linked`), then the
/// rename over S.vhd commits (`clone.committed`).
///
/// A source that already has children (a snapshot or base copy, immutable) is not renamed:
/// a clone becomes a new child of it directly; a snapshot is EPERM (its data cannot change,
/// so a snapshot of it would be the same bytes: clone it instead).
extension VHDRepository {
    /// EBUSY when `vdi` is attached on this host or persistently locked (vdi_lock, see
    /// VHDRepository+Locks.swift). Snapshot, clone and coalescing all call it.
    public func ensureUnlocked(_ vdi: CanonicalUUID) throws(StorageError) {
        guard !attachState.isVDIAttached(vdi) else { throw .vdiAttached(vdi.string) }
        try requireUnlocked(vdi)
    }

    public var journal: IntentJournal { IntentJournal(srRoot: root, hostIdentity: host.identity) }

    /// The temporary name a new child is built under before it is published.
    func pendingChildPath(_ vdi: CanonicalUUID) -> String { "\(root)/.\(vdi)\(Self.vhdSuffix).cow" }

    /// What snapshot and clone learn about their source before changing anything.
    struct CopyOnWriteSource {
        var uniqueID: [UInt8]
        var size: UInt64
        var modificationTime: timespec
        var hasChildren: Bool
    }

    /// Checks shared by snapshot and clone: ENODEV, EEXIST, EBUSY, EPERM (depth), ENOSPC.
    func prepareCopyOnWrite(
        _ source: CanonicalUUID, _ destination: CanonicalUUID, newFiles: Int,
        verb: String
    ) throws(StorageError) -> CopyOnWriteSource {
        try requireAttached()
        guard fileExists(source) else { throw .noSuchVDI(source.string, sr: sr.string) }
        guard !fileExists(destination) else { throw .vdiExists(destination.string, sr: sr.string) }
        try ensureUnlocked(source)
        var image: VHDImage
        do throws(StorageError) { image = try VHDImage.open(vdiPath(source)) } catch {
            throw error.reworded("VDI \(source) cannot be read (\(error.message)); run sr_check")
        }
        guard !image.footer.hidden else { throw .noSuchVDI(source.string, sr: sr.string) }
        image = try repairedFooters(source, image)
        let tree = try tree()
        let length: Int
        switch tree.chains[source] {
        case .sound(let found)?:
            length = found
        case .broken(let at, let reason)?:
            throw .io("VDI \(source) has a damaged chain (VDI \(at): \(reason)); run sr_check")
        case nil:
            throw .io("VDI \(source) cannot be read; run sr_check")
        }
        guard length + 1 <= VHDChain.maximumLength else {
            // What to run: merges already waiting on this chain (deleted snapshots) shorten it at
            // the next sr_gc; otherwise snapshots must be deleted first. Not merged here: a merge
            // copies data, which has no bound inside the agent's call (Docs/chain-health.md).
            let waiting = tree.chain(from: source).filter { vdi in tree.nodes[vdi]?.hidden == true && tree.childrenOf(vdi).count == 1 }
            let advice =
                waiting.isEmpty
                ? "delete snapshots of it, then run sr_gc \(sr) to merge them away"
                : "run sr_gc \(sr): \(waiting.count) merge\(waiting.count == 1 ? "" : "s") waiting on this chain will shorten it to "
                    + "\(length - waiting.count) VHDs"
            throw .chainTooLong(verb, source.string, length: length + 1, advice: advice)
        }
        let perFile = UInt64(VHDFooter.size * 2 + VHDDynamicHeader.size) + VHDImage.reservedEntries(for: image.size) * 4 + 3 * 512
        let fileSystem = try Syscall.fileSystemStatus(root)
        let available = UInt64(fileSystem.f_bavail) * UInt64(fileSystem.f_frsize)
        guard available >= perFile * UInt64(newFiles) + 64 * 1024 else {
            throw .noSpace("SR \(sr) has \(available) bytes free, not enough for the metadata of \(verb) \(source) -> \(destination)")
        }
        let time = try image.modificationTime()
        return CopyOnWriteSource(
            uniqueID: image.footer.uniqueID, size: image.size, modificationTime: time,
            hasChildren: !tree.childrenOf(source).isEmpty)
    }

    /// The source with its two footers made one again (`VHDImage.repairFooters`: the end copy
    /// wins, or a missing end footer is put back) when an interrupted resize or write left them
    /// apart, so that the damage is never frozen into a read-only parent. The modification time
    /// is kept (children of a base copy record it). EIO when the file cannot be repaired.
    func repairedFooters(_ vdi: CanonicalUUID, _ image: VHDImage) throws(StorageError) -> VHDImage {
        do throws(StorageError) {
            guard try !image.footersAgree() else { return image }
            let time = try image.modificationTime()
            let writable = try VHDImage.open(vdiPath(vdi), writable: true)
            try writable.repairFooters()
            try writable.setModificationTime(time)
            OperationLog.note(host: host, "SR \(sr): VDI \(vdi) had footers left different by an interrupted change; repaired")
            return writable
        } catch {
            throw error.reworded("VDI \(vdi) is damaged and its footers cannot be repaired (\(error.message)); run sr_check")
        }
    }

    /// Writes (and fsyncs, unless `synced` is false: then the caller calls `sync()` on the image
    /// returned before it makes a name of it durable) an empty differencing disk at `path` whose
    /// parent is `parent`.vhd.
    @discardableResult
    func createChild(
        at path: String, parent: CanonicalUUID, parentUniqueID: [UInt8], parentTime: timespec,
        size: UInt64, synced: Bool = true
    ) throws(StorageError) -> VHDImage {
        try Syscall.unlinkIfPresent(path)
        let setup = VHDImage.DifferencingSetup(
            parentUniqueID: parentUniqueID,
            parentTimestamp: VHDTime.fromUnix(Int64(parentTime.tv_sec)),
            parentFileName: "\(parent)\(Self.vhdSuffix)")
        do throws(StorageError) {
            return try VHDImage.create(at: path, size: size, uniqueID: CanonicalUUID.random().bytes, differencing: setup, synced: synced)
        } catch {
            try? Syscall.unlinkIfPresent(path)
            throw error
        }
    }

    // MARK: Snapshot

    public func snapshot(_ source: CanonicalUUID, as destination: CanonicalUUID) throws(StorageError) {
        let info = try prepareCopyOnWrite(source, destination, newFiles: 1, verb: "snapshot")
        guard !info.hasChildren else {
            throw .vdiHasDependents(source.string, "it is a snapshot or base copy", advice: "clone it instead")
        }
        let entry = try journal.begin(
            IntentRecord(
                operation: .snapshot,
                fields: [
                    "source": source.string, "destination": destination.string,
                    "source-unique-id": CanonicalUUID(bytes: info.uniqueID).string
                ]))
        FaultPoint.Snapshot.journaled.reach()
        do throws(StorageError) {
            // Everything before the commit is staged first and flushed in one batch (files,
            // then the directories naming them): recovery rolls all of it back until the
            // rename below, so nothing of it needs to be durable before the next step is taken,
            // only before the rename. On ext4 the batch costs one journal commit, not four.
            let attributes = try metadata.stageAttributes(["read_only": "true"], of: destination)
            let child = try createChild(
                at: pendingChildPath(source), parent: destination, parentUniqueID: info.uniqueID,
                parentTime: info.modificationTime, size: info.size, synced: false)
            FaultPoint.Snapshot.childCreated.reach()
            guard try Syscall.linkNoReplace(vdiPath(source), vdiPath(destination)) else {
                throw StorageError.vdiExists(destination.string, sr: sr.string)
            }
            try attributes.makeDurable()
            try child.sync()
            // The new name must be durable before the rename replaces the old one: otherwise a
            // crash could keep the rename and lose the only name of the source's data. The same
            // fsync makes the child's temporary name durable (its contents are, just above).
            try Syscall.fsyncDirectory(root)
            FaultPoint.Snapshot.linked.reach()
            try Syscall.rename(pendingChildPath(source), vdiPath(source))
            try Syscall.fsyncDirectory(root)
            FaultPoint.Snapshot.committed.reach()
            try entry.finish()
        } catch {
            try settleAfterFailure(entry, error)
        }
    }

    /// After a failed step: recovery decides; the caller sees success only if it rolled forward.
    func settleAfterFailure(_ entry: IntentEntry, _ error: StorageError) throws(StorageError) {
        let outcome: RecoveryOutcome
        do throws(StorageError) { outcome = try replay(entry) } catch {
            OperationLog.note(host: host, "SR \(sr): could not settle \(entry.record.operationName) after \(error.message): \(error)")
            throw error
        }
        if outcome == .rolledBack { throw error }
    }

    func recoverSnapshot(_ record: IntentRecord) throws(StorageError) -> RecoveryOutcome {
        guard let source = record.uuid("source"), let destination = record.uuid("destination"),
            let sourceID = record.uuid("source-unique-id")
        else { throw .io("snapshot record is incomplete") }
        let current = try? VHDImage.open(vdiPath(source))
        if let current, current.footer.uniqueID == sourceID.bytes {
            if Syscall.sameFile(vdiPath(source), vdiPath(destination)) { try Syscall.unlinkIfPresent(vdiPath(destination)) }
            try Syscall.unlinkIfPresent(pendingChildPath(source))
            try metadata.remove(destination)
            try Syscall.fsyncDirectory(root)
            return .rolledBack
        }
        if current == nil, let parent = try? VHDImage.open(vdiPath(destination)), parent.footer.uniqueID == sourceID.bytes {
            // Not reachable with the order above (the rename replaces S.vhd atomically); handled anyway.
            let time = (try? parent.modificationTime()) ?? timespec()
            try createChild(
                at: pendingChildPath(source), parent: destination, parentUniqueID: sourceID.bytes, parentTime: time,
                size: parent.size)
            try Syscall.rename(pendingChildPath(source), vdiPath(source))
        }
        try Syscall.unlinkIfPresent(pendingChildPath(source))
        try metadata.setAttributes(metadata.attributes(of: destination).merging(["read_only": "true"]) { $1 }, of: destination)
        try Syscall.fsyncDirectory(root)
        return .rolledForward
    }

    // MARK: Clone

    public func clone(_ source: CanonicalUUID, as destination: CanonicalUUID) throws(StorageError) {
        let info = try prepareCopyOnWrite(source, destination, newFiles: 2, verb: "clone")
        if info.hasChildren {
            try cloneAsChild(source, destination, info)
            return
        }
        let base = CanonicalUUID.random()
        let entry = try journal.begin(
            IntentRecord(
                operation: .clone,
                fields: [
                    "source": source.string, "destination": destination.string, "base": base.string,
                    "source-unique-id": CanonicalUUID(bytes: info.uniqueID).string
                ]))
        FaultPoint.Clone.journaled.reach()
        do throws(StorageError) {
            // Staged, then flushed in one batch before the commit, as in snapshot.
            let attributes = try metadata.stageAttributes(["label": "base copy", "read_only": "true"], of: base)
            try metadata.remove(destination)
            var children: [VHDImage] = []
            for child in [source, destination] {
                children.append(
                    try createChild(
                        at: pendingChildPath(child), parent: base, parentUniqueID: info.uniqueID,
                        parentTime: info.modificationTime, size: info.size, synced: false))
            }
            FaultPoint.Clone.childrenCreated.reach()
            guard try Syscall.linkNoReplace(vdiPath(source), vdiPath(base)) else {
                throw StorageError.vdiExists(base.string, sr: sr.string)
            }
            FaultPoint.Clone.baseLinked.reach()
            guard try Syscall.linkNoReplace(pendingChildPath(destination), vdiPath(destination)) else {
                throw StorageError.vdiExists(destination.string, sr: sr.string)
            }
            try Syscall.unlinkIfPresent(pendingChildPath(destination))
            try attributes.makeDurable()
            for child in children { try child.sync() }
            // As in snapshot: the base copy's name is durable before the rename replaces the
            // source; so are D's name and the source's new child, whose contents are, just above.
            try Syscall.fsyncDirectory(root)
            FaultPoint.Clone.destinationLinked.reach()
            try Syscall.rename(pendingChildPath(source), vdiPath(source))
            try Syscall.fsyncDirectory(root)
            FaultPoint.Clone.committed.reach()
            try entry.finish()
        } catch {
            try settleAfterFailure(entry, error)
        }
    }

    func recoverClone(_ record: IntentRecord) throws(StorageError) -> RecoveryOutcome {
        guard let source = record.uuid("source"), let destination = record.uuid("destination"), let base = record.uuid("base"),
            let sourceID = record.uuid("source-unique-id")
        else { throw .io("clone record is incomplete") }
        let current = try? VHDImage.open(vdiPath(source))
        if current == nil || current?.footer.uniqueID == sourceID.bytes {
            if current == nil, Syscall.exists(vdiPath(base)) {
                // Unreachable with the order above; keep the data under the source's name.
                try Syscall.rename(vdiPath(base), vdiPath(source))
            }
            if let made = try? VHDImage.open(vdiPath(destination)), made.isDifferencing,
                made.header.parentUniqueID == sourceID.bytes, Self.parentVDI(made.header) == base
            {
                try Syscall.unlinkIfPresent(vdiPath(destination))
            }
            if Syscall.sameFile(vdiPath(source), vdiPath(base)) { try Syscall.unlinkIfPresent(vdiPath(base)) }
            for child in [source, destination] { try Syscall.unlinkIfPresent(pendingChildPath(child)) }
            try metadata.remove(base)
            try Syscall.fsyncDirectory(root)
            return .rolledBack
        }
        if !fileExists(destination), let parent = try? VHDImage.open(vdiPath(base)) {
            let time = (try? parent.modificationTime()) ?? timespec()
            try createChild(
                at: pendingChildPath(destination), parent: base, parentUniqueID: sourceID.bytes, parentTime: time,
                size: parent.size)
            _ = try Syscall.linkNoReplace(pendingChildPath(destination), vdiPath(destination))
        }
        for child in [source, destination] { try Syscall.unlinkIfPresent(pendingChildPath(child)) }
        try metadata.setAttributes(["label": "base copy", "read_only": "true"], of: base)
        try Syscall.fsyncDirectory(root)
        return .rolledForward
    }

    /// Clone of an immutable VDI (one with children): the destination becomes its new child.
    func cloneAsChild(_ source: CanonicalUUID, _ destination: CanonicalUUID, _ info: CopyOnWriteSource) throws(StorageError) {
        let entry = try journal.begin(
            IntentRecord(
                operation: .cloneChild,
                fields: [
                    "source": source.string, "destination": destination.string,
                    "source-unique-id": CanonicalUUID(bytes: info.uniqueID).string
                ]))
        do throws(StorageError) {
            try metadata.remove(destination)
            try createChild(
                at: pendingChildPath(destination), parent: source, parentUniqueID: info.uniqueID,
                parentTime: info.modificationTime, size: info.size)
            guard try Syscall.linkNoReplace(pendingChildPath(destination), vdiPath(destination)) else {
                throw StorageError.vdiExists(destination.string, sr: sr.string)
            }
            try Syscall.unlinkIfPresent(pendingChildPath(destination))
            try Syscall.fsyncDirectory(root)
            try entry.finish()
        } catch {
            try settleAfterFailure(entry, error)
        }
    }

    func recoverCloneAsChild(_ record: IntentRecord) throws(StorageError) -> RecoveryOutcome {
        guard let destination = record.uuid("destination"), let sourceID = record.uuid("source-unique-id") else {
            throw .io("clone-child record is incomplete")
        }
        try Syscall.unlinkIfPresent(pendingChildPath(destination))
        try Syscall.fsyncDirectory(root)
        if let made = try? VHDImage.open(vdiPath(destination)), made.header.parentUniqueID == sourceID.bytes {
            return .rolledForward
        }
        return .rolledBack
    }
}
