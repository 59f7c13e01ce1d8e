import SMCore

/// sr_gc of a VHD SR (Docs/LVMSR.md, "sr_gc"): hidden VDIs without children are removed; a
/// hidden VDI H with exactly one child C absorbs C's sectors and takes C's place, so the chain
/// loses a link and H's extents come back.
///
/// One collector per SR on this host (`<lock_dir>/<SR>/gc`); each merge holds H's and C's host
/// locks (without waiting: a busy VDI is skipped). In a shared group (LVMoISCSISR) one collector
/// per group across hosts (the `sm-gc` volume's exclusive LV lock, `takePoolCollectorLock`),
/// every LVM command holds the group's lock, and H and C are activated exclusively, so a pair
/// another host reads (C active there, or H held shared by a VDI below it) is skipped.
///
/// A merge, each step one LVM commit or a durable VHD write (fault points in brackets):
/// 1. the space check (before anything): the group's free extents must hold H grown by C's
///    blocks in the worst case (`LVMSpacePlan.coalesceExtents`); otherwise the pair is skipped
///    with the ENOSPC text as the reason;
/// 2. the record `sm_intent=coalesce:H:C` [`lvm-coalesce.journaled`];
/// 3. `LV-H` extended to that worst case, H and C activated, `VHDImage.absorb` copies C's
///    allocated sectors into H (H's sectors that C does not hold are untouched, so C and
///    everything below it read the same bytes at every instant) [`lvm-coalesce.merged`];
/// 4. `LV-C` renamed `LV-C.coalesced` (the commit: from here recovery rolls forward)
///    [`lvm-coalesce.child-set-aside`];
/// 5. H takes C's identity (unique id, timestamp, hidden flag: `VHDImage.takeIdentity`)
///    [`lvm-coalesce.identity-written`];
/// 6. `LV-H` renamed `LV-C` [`lvm-coalesce.renamed`]; its tags become C's (size, hidden);
///    `LV-C.coalesced` removed [`lvm-coalesce.committed`]; the record removed; the merged
///    volume deflated to what its VHD occupies.
extension LVMRepository {
    /// What one sr_gc run did (logged; sr_gc prints nothing).
    public struct GCReport: Sendable, Equatable {
        public var coalesced: [CanonicalUUID] = []
        public var reclaimed: [CanonicalUUID] = []
        public var skipped: [CanonicalUUID: String] = [:]
    }

    /// The suffix of the child's volume between the commit of a merge and its removal.
    static func setAsideName(for vdi: CanonicalUUID) -> String { "\(logicalVolumeName(for: vdi)).coalesced" }

    /// sr_gc: passes until nothing more can be done. A raw SR has nothing to collect (success).
    @discardableResult
    public func collectGarbage(sr: CanonicalUUID) throws(StorageError) -> GCReport {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        var result = GCReport()
        guard try type(of: group, sr: sr) == .vhd else {
            OperationLog.note(host: host, "sr_gc \(sr): a raw SR (thick volumes, no chains): nothing to collect")
            return result
        }
        let gcLock = try HostLock.acquire("\(host.lockDirectory)/\(sr)/gc", mode: .exclusive, timeout: host.lockTimeout)
        defer { gcLock.release() }
        // One collector per shared group at a time, across hosts: the pool's collector lock.
        var poolLock: LogicalVolume?
        if locking.isShared {
            switch try takePoolCollectorLock(group: group, extentSize: try group.report().extentSize) {
            case .failure(let error):
                OperationLog.note(
                    host: host,
                    "sr_gc \(sr): another host's collector holds the pool's collector lock; nothing done here (\(error.message))")
                return result
            case .success(let volume): poolLock = volume
            }
        }
        defer {
            if let poolLock {
                do throws(StorageError) { try poolLock.deactivate() } catch {
                    OperationLog.note(
                        host: host, "sr_gc \(sr): the pool's collector lock \(poolLock.qualifiedName) not released: \(error.message)")
                }
            }
        }
        while true {
            let (report, volumes) = try vhdState(sr: sr, group: group, holding: [])
            if let reason = Self.unsound(volumes) {
                OperationLog.note(host: host, "sr_gc \(sr): not coalescing or reclaiming: \(reason) (run sr_check)")
                return result
            }
            let pending = Self.pendingVDIs(report.tags)
            var progressed = false
            for volume in volumes.byVDI.values.sorted(by: { $0.vdi < $1.vdi })
            where volume.tags.hidden && result.skipped[volume.vdi] == nil {
                let children = volumes.children[volume.vdi] ?? []
                if let named = ([volume.vdi] + children).first(where: pending.contains) {
                    result.skipped[volume.vdi] = "VDI \(named) is named by an unfinished operation record"
                    continue
                }
                if children.isEmpty {
                    guard let lock = tryHold(sr: sr, volume.vdi) else { continue }
                    defer { lock.release() }
                    if volume.report.isOpen == true {
                        result.skipped[volume.vdi] = "\(group.name)/\(volume.report.name) is open"
                        continue
                    }
                    do throws(StorageError) {
                        try group.logicalVolume(volume.report.name).remove()
                    } catch {
                        // E.g. active on another host of a shared group: that host reads it.
                        result.skipped[volume.vdi] = error.message
                        OperationLog.note(host: host, "sr_gc \(sr): not removing hidden VDI \(volume.vdi) now: \(error.message)")
                        continue
                    }
                    result.reclaimed.append(volume.vdi)
                    OperationLog.note(host: host, "sr_gc \(sr): removed hidden VDI \(volume.vdi) (no children)")
                    progressed = true
                } else if children.count == 1 {
                    if let reason = try coalesce(sr: sr, group: group, parent: volume.vdi, child: children[0]) {
                        result.skipped[volume.vdi] = reason
                        OperationLog.note(host: host, "sr_gc \(sr): not coalescing \(volume.vdi) into \(children[0]) now: \(reason)")
                    } else {
                        result.coalesced.append(volume.vdi)
                        OperationLog.note(host: host, "sr_gc \(sr): coalesced \(volume.vdi) into \(children[0])")
                        progressed = true
                    }
                }
                if progressed { break }
            }
            if !progressed { return result }
        }
    }

    /// Why no chain decision may be taken now (a parent tag naming no volume, a loop): merging or
    /// removing could cut a VDI from its data. Nil when every chain walks to a base.
    static func unsound(_ volumes: VDIVolumes) -> String? {
        for vdi in volumes.byVDI.keys.sorted() {
            do throws(StorageError) { _ = try volumes.ancestors(of: vdi) } catch { return error.message }
        }
        return nil
    }

    /// The VDIs named by intent records still in the group's tags (an unreadable record names
    /// none; sr_check reports it).
    static func pendingVDIs(_ tags: [String]) -> Set<CanonicalUUID> {
        var named: Set<CanonicalUUID> = []
        for tag in tags {
            guard let intent = (try? LVMIntent(tag: tag)) ?? nil else { continue }
            named.formUnion(intent.vdis)
        }
        return named
    }

    func tryHold(sr: CanonicalUUID, _ vdi: CanonicalUUID) -> HostLock? {
        try? HostLock.acquire("\(host.lockDirectory)/\(sr)/\(vdi)", mode: .exclusive, timeout: 0)
    }

    /// Why `child` must not be merged now, nil when it may: attached on this host (itself or a VDI
    /// below it), open, or parent and child not as a merge needs them.
    static func coalesceHazard(
        parent: VDIVolume, child: VDIVolume, volumes: VDIVolumes, attached: Set<CanonicalUUID>
    ) -> String? {
        var below: [CanonicalUUID] = [child.vdi]
        var seen: Set<CanonicalUUID> = []
        while let next = below.popLast() {
            guard seen.insert(next).inserted else { continue }
            if attached.contains(next) {
                return next == child.vdi
                    ? "VDI \(child.vdi) is attached on this host"
                    : "VDI \(next), which reads through \(child.vdi), is attached on this host"
            }
            below += volumes.children[next] ?? []
        }
        for volume in [parent, child] where volume.report.isOpen == true {
            return "logical volume \(volume.report.name) is open"
        }
        guard child.tags.isVHD, parent.tags.isVHD else { return "VDI \(child.vdi) or \(parent.vdi) is not a VHD" }
        guard (parent.tags.virtualSize ?? 0) <= (child.tags.virtualSize ?? 0) else {
            return "parent \(parent.vdi) is larger than its child \(child.vdi)"
        }
        return nil
    }

    /// Merges hidden `parent` into its only child; nil when done, otherwise why it was skipped
    /// (nothing changed). Errors after the record is written replay it, as a crash would.
    func coalesce(sr: CanonicalUUID, group: VolumeGroup, parent: CanonicalUUID, child: CanonicalUUID) throws(StorageError) -> String? {
        guard let parentLock = tryHold(sr: sr, parent) else { return "VDI \(parent) is busy" }
        defer { parentLock.release() }
        guard let childLock = tryHold(sr: sr, child) else { return "VDI \(child) is busy" }
        defer { childLock.release() }
        let (report, volumes) = try vhdState(sr: sr, group: group, holding: [parent, child])
        guard let h = volumes.byVDI[parent], h.tags.hidden, volumes.children[parent] == [child], let c = volumes.byVDI[child] else {
            return "the chain changed"
        }
        if let hazard = Self.coalesceHazard(parent: h, child: c, volumes: volumes, attached: Set(attachState(sr).attachedVDIs())) {
            return hazard
        }
        let wanted = LVMSpacePlan.coalesceExtents(
            parentBytes: h.report.size, childBytes: c.report.size, parentSize: h.tags.virtualSize ?? 0,
            childSize: c.tags.virtualSize ?? 0, extentSize: report.extentSize)
        let have = report.extents(for: h.report.size)
        if wanted > have, wanted - have > report.freeExtentCount {
            return StorageError.noRoomForWorstCase("coalescing VDI \(parent) into \(child)", extents: wanted - have, in: report).message
        }
        let parentVolume = group.logicalVolume(h.report.name)
        let childVolume = group.logicalVolume(c.report.name)
        // Activation is checked before the record: without a device nothing can be merged.
        let activated: [LogicalVolume]
        do throws(StorageError) {
            activated = try activateForMerge([h, c], group: group)
        } catch {
            // E.g. C active on another host of a shared group (its leaf in use there), or H
            // active shared there (read by a VDI of that host): a merge needs both exclusively.
            return "the merge needs both volumes exclusively on this host: \(error.message)"
        }
        guard Self.isBlockDevice(parentVolume.path), Self.isBlockDevice(childVolume.path) else {
            for volume in activated { try? volume.deactivate() }
            return "no device to merge on (LVM activation is disabled on this host)"
        }
        let intent = self.intent(.coalesce, [parent, child])
        do throws(StorageError) {
            try group.changeTags(adding: [intent.tag])
        } catch {
            for volume in activated { try? volume.deactivate() }
            throw error
        }
        FaultPoint.LVMCoalesce.journaled.reach()
        let merged = group.logicalVolume(Self.logicalVolumeName(for: child))
        do throws(StorageError) {
            if wanted > have { try parentVolume.extend(toExtents: wanted) }
            let childFooter: VHDFooter
            do {
                let target = try VHDImage.openBlockDevice(parentVolume.path, writable: true)
                if try target.repairFooters() { Diagnostics.debug("repaired the footers of \(parentVolume.qualifiedName) before merging") }
                let source = try VHDImage.openBlockDevice(childVolume.path)
                guard source.header.parentUniqueID == target.footer.uniqueID else {
                    throw StorageError.io(
                        "\(childVolume.qualifiedName) names parent unique id \(CanonicalUUID(bytes: source.header.parentUniqueID)), "
                            + "\(parentVolume.qualifiedName) has \(target.uniqueID)")
                }
                try target.absorb(source)
                childFooter = source.footer
            }
            FaultPoint.LVMCoalesce.merged.reach()
            try childVolume.deactivate()
            try childVolume.rename(to: Self.setAsideName(for: child))
            FaultPoint.LVMCoalesce.setAside.reach()
            try VHDImage.openBlockDevice(parentVolume.path, writable: true).takeIdentity(of: childFooter)
            FaultPoint.LVMCoalesce.identityWritten.reach()
            try parentVolume.rename(to: merged.name)
            FaultPoint.LVMCoalesce.renamed.reach()
            try takeTags(of: c.tags, onto: merged, now: h.tags)
            try group.logicalVolume(Self.setAsideName(for: child)).remove()
            FaultPoint.LVMCoalesce.committed.reach()
        } catch {
            // The dispatcher holds no lock for sr_gc: this call holds both VDIs' host locks.
            _ = try? recover(sr: sr, group: group, tags: [intent.tag], holding: [parent, child])
            throw error
        }
        try group.changeTags(removing: [intent.tag])
        deflateAfterMerge(merged, extentSize: report.extentSize)
        try? merged.deactivate()
        return nil
    }

    /// Activates the volumes that are not active (in a shared group each of them, exclusively:
    /// `lvs` reports only this host's activation, and the merge must hold every other host off);
    /// returns those it activated.
    private func activateForMerge(_ volumes: [VDIVolume], group: VolumeGroup) throws(StorageError) -> [LogicalVolume] {
        var activated: [LogicalVolume] = []
        for volume in volumes where locking.isShared || volume.report.activation != .active {
            let logicalVolume = group.logicalVolume(volume.report.name)
            do throws(StorageError) {
                try logicalVolume.activate()
            } catch {
                for done in activated { try? done.deactivate() }
                throw error
            }
            activated.append(logicalVolume)
        }
        return activated
    }

    /// The merged volume's tags become the child's (its size; hidden as the child was), keeping
    /// the parent link it had as H. One metadata commit; idempotent.
    private func takeTags(of child: VDITags, onto volume: LogicalVolume, now current: VDITags) throws(StorageError) {
        var adding: [String] = []
        var removing: [String] = []
        if current.virtualSize != child.virtualSize {
            if let size = current.virtualSize { removing.append("\(VDITags.sizePrefix)\(size)") }
            if let size = child.virtualSize { adding.append("\(VDITags.sizePrefix)\(size)") }
        }
        if current.hidden, !child.hidden { removing.append(VDITags.hiddenTag) }
        if !current.hidden, child.hidden { adding.append(VDITags.hiddenTag) }
        try volume.changeTags(adding: adding, removing: removing)
    }

    /// Shrinks a merged volume to what its VHD occupies, when it is active here (best effort:
    /// an inflated hidden or read-only volume only holds extents the next pass gives back).
    private func deflateAfterMerge(_ volume: LogicalVolume, extentSize: UInt64) {
        guard Self.isBlockDevice(volume.path) else { return }
        do throws(StorageError) {
            let image = try VHDImage.openBlockDevice(volume.path)
            let wanted = LVMSpacePlan.extents(image.occupiedBytes, extentSize: extentSize)
            let capacity = image.capacity / extentSize
            if wanted < capacity { try volume.reduce(toExtents: wanted) }
        } catch {
            OperationLog.note(host: host, "sr_gc: \(volume.qualifiedName) not deflated: \(error.message)")
        }
    }

    /// Recovery of `coalesce:H:C` from the volume names (each step idempotent):
    /// - `LV-C.coalesced` exists (after the commit): H takes C's identity again (needs
    ///   activation), `LV-H` is renamed `LV-C`, its tags become C's, `LV-C.coalesced` removed:
    ///   rolled forward;
    /// - `LV-H` and `LV-C` exist (before it): H only gained sectors C holds, so nothing reads
    ///   differently; where activation works H's footers are repaired and it is deflated:
    ///   rolled back (the next sr_gc merges again);
    /// - otherwise (`LV-C` alone: done but the record; or C gone): nothing to do.
    func replayCoalesce(
        parent: CanonicalUUID, child: CanonicalUUID, group: VolumeGroup, names: Set<String>
    ) throws(StorageError) -> RecoveryOutcome {
        let parentName = Self.logicalVolumeName(for: parent)
        let childName = Self.logicalVolumeName(for: child)
        let asideName = Self.setAsideName(for: child)
        let extentSize = try group.report().extentSize
        if names.contains(asideName) {
            guard let aside = try group.logicalVolume(named: asideName)?.volume else { throw .io("\(asideName) vanished") }
            let asideTags = try VDITags(tags: aside.tags, volume: asideName)
            if names.contains(parentName), !names.contains(childName) {
                let parentVolume = group.logicalVolume(parentName)
                let asideVolume = group.logicalVolume(asideName)
                let activated = try activateNamed([parentName, asideName], group: group)
                defer { for volume in activated where volume.name == asideName { try? volume.deactivate() } }
                guard Self.isBlockDevice(parentVolume.path), Self.isBlockDevice(asideVolume.path) else {
                    for volume in activated { try? volume.deactivate() }
                    throw .io("\(group.name): the merge into \(childName) cannot be completed (LVM activation is disabled on this host)")
                }
                let childFooter = try VHDImage.openBlockDevice(asideVolume.path).footer
                try VHDImage.openBlockDevice(parentVolume.path, writable: true).takeIdentity(of: childFooter)
                try parentVolume.rename(to: childName)
            }
            if let now = try group.logicalVolume(named: childName)?.volume {
                try takeTags(of: asideTags, onto: group.logicalVolume(childName), now: try VDITags(tags: now.tags, volume: childName))
            }
            try group.logicalVolume(asideName).remove()
            finishMerged(childName, group: group, extentSize: extentSize)
            return .rolledForward
        }
        guard names.contains(parentName), names.contains(childName) else {
            // Done but the record (or C gone): the merged volume may still be inflated.
            if !names.contains(parentName) { finishMerged(childName, group: group, extentSize: extentSize) }
            return .rolledForward
        }
        if let found = try group.logicalVolume(named: parentName)?.volume, found.activation == .active || found.activation == .unknown {
            let volume = group.logicalVolume(parentName)
            if Self.isBlockDevice(volume.path), found.isOpen != true {
                do throws(StorageError) {
                    let image = try VHDImage.openBlockDevice(volume.path, writable: true)
                    _ = try image.repairFooters()
                    let wanted = LVMSpacePlan.extents(image.occupiedBytes, extentSize: extentSize)
                    if wanted < image.capacity / extentSize { try volume.reduce(toExtents: wanted) }
                } catch {
                    OperationLog.note(host: host, "rolling back the merge of \(parent): \(parentName) not deflated: \(error.message)")
                }
                try? volume.deactivate()
            }
        }
        if let found = try group.logicalVolume(named: childName)?.volume, found.activation == .active, found.isOpen != true {
            try? group.logicalVolume(childName).deactivate()
        }
        return .rolledBack
    }

    /// After a merge recovered forward: the merged volume deflated to what its VHD occupies and
    /// deactivated, unless it is open (a user: it stays as it is). Best effort, logged.
    private func finishMerged(_ name: String, group: VolumeGroup, extentSize: UInt64) {
        guard case .some(.some(let found)) = try? group.logicalVolume(named: name)?.volume, found.isOpen != true else { return }
        // An inflated leaf attached here keeps its size (its writer must never run out of room).
        let prefix = "VG_XenStorage-"
        if group.name.hasPrefix(prefix), let sr = CanonicalUUID(String(group.name.dropFirst(prefix.count))),
            let vdi = Self.vdi(fromLogicalVolume: name), attachState(sr).isVDIAttached(vdi)
        {
            return
        }
        let volume = group.logicalVolume(name)
        if found.activation != .active {
            do throws(StorageError) { try volume.activate() } catch {
                OperationLog.note(host: host, "\(volume.qualifiedName) not deflated after a merge: \(error.message)")
                return
            }
        }
        deflateAfterMerge(volume, extentSize: extentSize)
        try? volume.deactivate()
    }

    private func activateNamed(_ names: [String], group: VolumeGroup) throws(StorageError) -> [LogicalVolume] {
        var activated: [LogicalVolume] = []
        for name in names {
            guard let found = try group.logicalVolume(named: name)?.volume, found.activation != .active else { continue }
            let volume = group.logicalVolume(name)
            try volume.activate()
            activated.append(volume)
        }
        return activated
    }
}

extension LVMSpacePlan {
    /// The extents H's volume must have so that it can take every block of its child C, in the
    /// worst case: what H's volume holds, plus every byte of C's volume (C's blocks with their
    /// bitmaps cannot take more), plus 4 KiB of alignment per block C can hold, plus, when C is
    /// larger, the BAT growth and the blocks it may move (as vdi_resize counts them).
    public static func coalesceExtents(
        parentBytes: UInt64, childBytes: UInt64, parentSize: UInt64, childSize: UInt64, extentSize: UInt64
    ) -> UInt64 {
        var bytes = parentBytes + childBytes + (childBytes / VHDImage.blockSize + 2) * VHDImage.dataAlignment
        if childSize > parentSize {
            let metadata = VHDImage.metadataSize(virtualSize: childSize)
            bytes += metadata + (metadata / VHDImage.blockSize + 2) * (VHDImage.blockSize + VHDImage.dataAlignment)
        }
        return extents(bytes, extentSize: extentSize)
    }
}
