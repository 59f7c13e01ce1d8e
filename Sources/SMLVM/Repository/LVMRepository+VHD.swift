import SMCore

/// The VDI verbs of a VHD SR (`LVMVDIType.vhd`): each VDI a VHD written straight onto its
/// logical volume (Docs/LVMSR.md). The raw verbs in `LVMRepository+VDIs.swift` hand over to these
/// when the group or the volume is tagged VHD.
extension LVMRepository {
    /// What vdi_attach of a VHD VDI reports.
    static let vhdContentType = "vhd"
    /// The largest virtual size of a VHD VDI (the VHD format's 2040 GiB).
    static let maximumVHDSize: UInt64 = 2040 << 30

    /// The group's report and VDI volumes, after settling any intent record (`recover`).
    func vhdState(
        sr: CanonicalUUID, group: VolumeGroup, holding held: Set<CanonicalUUID>
    ) throws(StorageError) -> (group: VolumeGroup.Report, volumes: VDIVolumes) {
        var contents: (group: VolumeGroup.Report, volumes: [LogicalVolume.Report])
        do {
            contents = try group.contents()
        } catch {
            throw explain(error, sr: sr, group: group)
        }
        if contents.group.tags.contains(where: { $0.hasPrefix(LVMIntent.prefix) }),
            try recover(sr: sr, group: group, tags: contents.group.tags, holding: held)
        {
            contents = try group.contents()
        }
        return (contents.group, try VDIVolumes(contents.volumes))
    }

    // MARK: vdi_create

    /// vdi_create of a VHD VDI: a volume just large enough for an empty VHD (written under a
    /// temporary name, then renamed), inactive afterwards. EINVAL for size 0 or above 2040 GiB.
    func createVHD(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64, group: VolumeGroup) throws(StorageError) {
        guard size > 0, size <= Self.maximumVHDSize else {
            throw .invalid("size \(size) is not a VHD size (1 byte to \(Self.maximumVHDSize))")
        }
        let (report, volumes) = try vhdState(sr: sr, group: group, holding: [vdi])
        let name = Self.logicalVolumeName(for: vdi)
        if volumes.names.contains(name) || volumes.names.contains(Self.temporaryName(for: vdi)) {
            throw .vdiExists(vdi.string, sr: sr.string)
        }
        let needed = LVMSpacePlan.emptyExtents(virtualSize: size, extentSize: report.extentSize)
        guard needed <= report.freeExtentCount else {
            throw .noRoomForWorstCase("vdi_create of VDI \(vdi)", extents: needed, in: report)
        }
        let intent = self.intent(.create, [vdi])
        try group.changeTags(adding: [intent.tag])
        FaultPoint.LVMCreate.journaled.reach()
        do throws(StorageError) {
            let tags = VDITags(isVHD: true, virtualSize: size)
            let volume = try writeNewVHD(
                group: group, name: Self.temporaryName(for: vdi), tags: tags, extentSize: report.extentSize, differencing: nil)
            FaultPoint.LVMCreate.written.reach()
            try volume.rename(to: name)
        } catch {
            try? group.logicalVolume(Self.temporaryName(for: vdi)).remove()
            try? group.changeTags(removing: [intent.tag])
            throw error
        }
        try group.changeTags(removing: [intent.tag])
    }

    /// Creates the volume `name` with `tags`, sized for an empty VHD, writes the VHD on it and
    /// deactivates it. EIO when no device appears (LVM activation disabled: a VHD cannot be
    /// written); the caller removes the volume.
    private func writeNewVHD(
        group: VolumeGroup, name: String, tags: VDITags, extentSize: UInt64,
        differencing: VHDImage.DifferencingSetup?
    ) throws(StorageError) -> LogicalVolume {
        let size = tags.virtualSize ?? 0
        let bytes = LVMSpacePlan.emptyExtents(virtualSize: size, extentSize: extentSize) * extentSize
        let volume = try group.createLogicalVolume(named: name, size: bytes, tags: tags.tags)
        try volume.activate()
        guard Self.isBlockDevice(volume.path) else {
            throw .io("\(volume.qualifiedName): no device to write the VHD on (LVM activation is disabled on this host)")
        }
        try VHDImage.createOnBlockDevice(
            at: volume.path, size: size, uniqueID: CanonicalUUID.random().bytes, differencing: differencing)
        try volume.deactivate()
        return volume
    }

    // MARK: vdi_snapshot, vdi_clone

    /// vdi_snapshot: the source's volume becomes the read-only VDI `destination` (renamed, its
    /// VHD untouched); the source continues as a new empty child of it. Only the source and the
    /// new child are activated. Docs/LVMSR.md has the steps and their recovery.
    public func snapshotVDI(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws(StorageError) {
        let (group, report, volumes, volume) = try copyOnWriteSource(sr: sr, source: source, destination: destination, verb: "vdi_snapshot")
        if volumes.children[source]?.isEmpty == false {
            throw .vdiHasDependents(source.string, advice: "clone it instead")
        }
        try requireSpace("vdi_snapshot of VDI \(source)", children: 1, volume: volume, report: report)
        let parent = try prepareParent(group: group, volume: volume, extentSize: report.extentSize)
        let intent = self.intent(.snapshot, [source, destination])
        try group.changeTags(adding: [intent.tag])
        FaultPoint.LVMSnapshot.journaled.reach()
        try settling(intent, sr: sr, group: group) { () throws(StorageError) in
            let child = try writeNewVHD(
                group: group, name: Self.temporaryName(for: source),
                tags: VDITags(isVHD: true, virtualSize: volume.tags.virtualSize, parent: destination),
                extentSize: report.extentSize, differencing: parent.setup(named: Self.logicalVolumeName(for: destination)))
            FaultPoint.LVMSnapshot.childCreated.reach()
            try group.logicalVolume(Self.logicalVolumeName(for: source)).rename(to: Self.logicalVolumeName(for: destination))
            FaultPoint.LVMSnapshot.sourceRenamed.reach()
            try child.rename(to: Self.logicalVolumeName(for: source))
            FaultPoint.LVMSnapshot.committed.reach()
        }
    }

    /// vdi_clone: the source's volume is renamed to a new base copy B (read-only) and the
    /// source and `destination` become two new empty children of it. A source with children (a
    /// snapshot or base copy, immutable) is not renamed: `destination` becomes a new child of it.
    public func cloneVDI(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws(StorageError) {
        let (group, report, volumes, volume) = try copyOnWriteSource(sr: sr, source: source, destination: destination, verb: "vdi_clone")
        let hasChildren = volumes.children[source]?.isEmpty == false
        try requireSpace("vdi_clone of VDI \(source)", children: hasChildren ? 1 : 2, volume: volume, report: report)
        let parent = try prepareParent(group: group, volume: volume, extentSize: report.extentSize)
        let size = volume.tags.virtualSize
        if hasChildren {
            let intent = self.intent(.cloneChild, [source, destination])
            try group.changeTags(adding: [intent.tag])
            try settling(intent, sr: sr, group: group) { () throws(StorageError) in
                let child = try writeNewVHD(
                    group: group, name: Self.temporaryName(for: destination),
                    tags: VDITags(isVHD: true, virtualSize: size, parent: source),
                    extentSize: report.extentSize, differencing: parent.setup(named: Self.logicalVolumeName(for: source)))
                try child.rename(to: Self.logicalVolumeName(for: destination))
            }
            return
        }
        let base = CanonicalUUID.random()
        let intent = self.intent(.clone, [source, destination, base])
        try group.changeTags(adding: [intent.tag])
        FaultPoint.LVMClone.journaled.reach()
        try settling(intent, sr: sr, group: group) { () throws(StorageError) in
            let setup = parent.setup(named: Self.logicalVolumeName(for: base))
            let tags = VDITags(isVHD: true, virtualSize: size, parent: base)
            let sourceChild = try writeNewVHD(
                group: group, name: Self.temporaryName(for: source), tags: tags, extentSize: report.extentSize, differencing: setup)
            let destinationChild = try writeNewVHD(
                group: group, name: Self.temporaryName(for: destination), tags: tags, extentSize: report.extentSize,
                differencing: setup)
            FaultPoint.LVMClone.childrenCreated.reach()
            try group.logicalVolume(Self.logicalVolumeName(for: source)).rename(to: Self.logicalVolumeName(for: base))
            FaultPoint.LVMClone.baseRenamed.reach()
            try destinationChild.rename(to: Self.logicalVolumeName(for: destination))
            FaultPoint.LVMClone.destinationRenamed.reach()
            try sourceChild.rename(to: Self.logicalVolumeName(for: source))
            FaultPoint.LVMClone.committed.reach()
        }
    }

    /// Runs the steps of `intent`; then removes the record. When a step fails, the record is
    /// replayed at once (rolled back or forward as a crash there would be) and the error thrown.
    private func settling(
        _ intent: LVMIntent, sr: CanonicalUUID, group: VolumeGroup, _ steps: () throws(StorageError) -> Void
    ) throws(StorageError) {
        do {
            try steps()
        } catch {
            // The dispatcher holds the named VDIs' host locks; the base copy's UUID is new.
            _ = try? recover(sr: sr, group: group, tags: [intent.tag], holding: Set(intent.vdis))
            throw error
        }
        try group.changeTags(removing: [intent.tag])
    }

    /// The checks every copy-on-write verb makes before touching anything: the SR attached, the
    /// source a listed VHD VDI (ENODEV; ENOSYS for a raw one), detached and not open (EBUSY),
    /// the destination free (EEXIST), the chain short enough (EPERM).
    private func copyOnWriteSource(
        sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID, verb: String
    ) throws(StorageError) -> (VolumeGroup, VolumeGroup.Report, VDIVolumes, VDIVolume) {
        try requireAttached(sr)
        guard source != destination else { throw .invalid("\(verb): source and destination are the same VDI \(source)") }
        let group = try volumeGroup(sr)
        let (report, volumes) = try vhdState(sr: sr, group: group, holding: [source, destination])
        guard let volume = volumes.byVDI[source], !volume.tags.hidden else { throw .noSuchVDI(source.string, sr: sr.string) }
        guard volume.tags.isVHD else { throw .rawVDI(verb, source) }
        if volumes.names.contains(Self.logicalVolumeName(for: destination)) || volumes.names.contains(Self.temporaryName(for: destination))
        {
            throw .vdiExists(destination.string, sr: sr.string)
        }
        if attachState(sr).isVDIAttached(source) { throw .vdiAttached(source.string) }
        if volume.report.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(volume.report.name)") }
        let length = try volumes.ancestors(of: source).count + 2
        guard length <= VHDChain.maximumLength else {
            throw .chainTooLong(
                verb, source.string, length: length, advice: "clone a snapshot further up, or delete snapshots and run sr_gc")
        }
        return (group, report, volumes, volume)
    }

    /// ENOSPC unless the group's free extents hold `children` new children, each inflated.
    private func requireSpace(_ what: String, children: Int, volume: VDIVolume, report: VolumeGroup.Report) throws(StorageError) {
        let needed = LVMSpacePlan.worstCase(children: children, virtualSize: volume.tags.virtualSize ?? 0, extentSize: report.extentSize)
        guard needed <= report.freeExtentCount else { throw .noRoomForWorstCase(what, extents: needed, in: report) }
    }

    /// What a new child records about its parent.
    struct ParentIdentity {
        var uniqueID: [UInt8]
        var timestamp: UInt32

        func setup(named name: String) -> VHDImage.DifferencingSetup {
            VHDImage.DifferencingSetup(parentUniqueID: uniqueID, parentTimestamp: timestamp, parentFileName: name)
        }
    }

    /// Activates the source (if it is not active already), makes its footers one again, deflates
    /// it to what its VHD occupies (a read-only parent is always deflated), reads its identity,
    /// and deactivates it again if this call activated it. Each step leaves a valid VHD.
    private func prepareParent(group: VolumeGroup, volume: VDIVolume, extentSize: UInt64) throws(StorageError) -> ParentIdentity {
        let logicalVolume = group.logicalVolume(volume.report.name)
        let wasActive = volume.report.activation == .active
        if !wasActive { try logicalVolume.activate() }
        defer { if !wasActive { try? logicalVolume.deactivate() } }
        guard Self.isBlockDevice(logicalVolume.path) else {
            throw .io("\(logicalVolume.qualifiedName): no device to read the VHD from (LVM activation is disabled on this host)")
        }
        let image = try VHDImage.openBlockDevice(logicalVolume.path, writable: true)
        if try image.repairFooters() {
            Diagnostics.debug("repaired the footers of \(logicalVolume.qualifiedName) before copy-on-write")
        }
        let identity = ParentIdentity(uniqueID: image.footer.uniqueID, timestamp: image.footer.timestamp)
        let wanted = LVMSpacePlan.extents(image.occupiedBytes, extentSize: extentSize)
        if wanted < volume.report.size / extentSize {
            try logicalVolume.reduce(toExtents: wanted)
        }
        return identity
    }

    // MARK: vdi_attach, vdi_detach

    /// vdi_attach of a VHD VDI: inflates a leaf (a VDI without children) to the full size of its
    /// VHD (ENOSPC when the group cannot hold that), activates it and its ancestors
    /// (`activateChain`), checks the chain opens, and returns the leaf's device with type `vhd`.
    func attachVHD(sr: CanonicalUUID, vdi: CanonicalUUID, group: VolumeGroup) throws(StorageError) -> AttachResult {
        let (report, volumes) = try vhdState(sr: sr, group: group, holding: [vdi])
        guard let leaf = volumes.byVDI[vdi], !leaf.tags.hidden else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        let ancestors = try volumes.ancestors(of: vdi)
        let wanted = LVMSpacePlan.inflatedExtents(virtualSize: leaf.tags.virtualSize ?? 0, extentSize: report.extentSize)
        let current = report.extents(for: leaf.report.size)
        // A VDI with children is immutable (read by them): it stays deflated.
        if wanted > current, volumes.children[vdi]?.isEmpty != false {
            guard wanted - current <= report.freeExtentCount else {
                throw .noRoomForWorstCase("inflating VDI \(vdi) for vdi_attach", extents: wanted - current, in: report)
            }
            try group.logicalVolume(leaf.report.name).extend(toExtents: wanted)
        }
        do throws(StorageError) {
            try activateChain(leaf: leaf, ancestors: ancestors, group: group)
        } catch {
            // E.g. the leaf active on another host: the ancestors' shared locks are not kept.
            let needed = readByAttached(sr: sr, volumes: volumes, except: vdi)
            for volume in ancestors where !needed.contains(volume.vdi) {
                try? group.logicalVolume(volume.report.name).deactivate()
            }
            throw error
        }
        let path = group.logicalVolume(leaf.report.name).path
        if Self.isBlockDevice(path) {
            let chain = try VHDChain.open(path, blockDevices: true)
            guard chain.length == ancestors.count + 1 else {
                throw .io("VDI \(vdi): its VHD chain has \(chain.length) links, its tags \(ancestors.count + 1)")
            }
        } else {
            Diagnostics.debug("vdi_attach: LVM activation is disabled; \(path) recorded without a device")
        }
        try attachState(sr).markVDIAttached(vdi, path: path)
        return AttachResult(path: path, type: Self.vhdContentType)
    }

    /// Activates a chain for reading through it, root first: in a shared group every ancestor
    /// shared (`-asy`: read-only, several hosts may read one base at once) and the leaf
    /// exclusively (`-aey`: a leaf is active on one host at a time), each asked of lvmlockd even
    /// when `lvs` calls it active (it reports only this host's device-mapper, and the lock is
    /// what matters); in a local group whatever is not active. Returns what it activated (in a
    /// shared group, everything). EBUSY when another host has the leaf active, or an ancestor
    /// exclusively (a merge in progress there); what this call activated stays for the caller.
    @discardableResult
    func activateChain(leaf: VDIVolume, ancestors: [VDIVolume], group: VolumeGroup) throws(StorageError) -> [VDIVolume] {
        var activated: [VDIVolume] = []
        for volume in ancestors.reversed() + [leaf] where locking.isShared || volume.report.activation != .active {
            try group.logicalVolume(volume.report.name).activate(shared: volume.vdi != leaf.vdi)
            activated.append(volume)
        }
        return activated
    }

    /// vdi_detach of a VHD VDI: EBUSY while the device is open; deflates the leaf to the bytes
    /// its VHD occupies, deactivates it and every ancestor no other VDI attached on this host
    /// reads through.
    func detachVHD(sr: CanonicalUUID, vdi: CanonicalUUID, group: VolumeGroup) throws(StorageError) {
        let (report, volumes) = try vhdState(sr: sr, group: group, holding: [vdi])
        guard let leaf = volumes.byVDI[vdi] else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        if leaf.report.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(leaf.report.name)") }
        let logicalVolume = group.logicalVolume(leaf.report.name)
        if leaf.report.activation == .active, Self.isBlockDevice(logicalVolume.path) {
            let occupied = try VHDImage.openBlockDevice(logicalVolume.path).occupiedBytes
            let wanted = report.extents(for: occupied)
            if wanted < report.extents(for: leaf.report.size) { try logicalVolume.reduce(toExtents: wanted) }
        }
        let needed = readByAttached(sr: sr, volumes: volumes, except: vdi)
        // In a shared group each is deactivated whatever `lvs` says here: that drops this host's
        // LV lock, which a merge elsewhere needs.
        for volume in [leaf] + ((try? volumes.ancestors(of: vdi)) ?? []) where !needed.contains(volume.vdi) {
            if locking.isShared || volume.report.activation != .inactive { try group.logicalVolume(volume.report.name).deactivate() }
        }
        try attachState(sr).clearVDIAttached(vdi)
    }

    /// The VDIs that a VDI attached on this host (other than `vdi`) reads through, itself included.
    func readByAttached(sr: CanonicalUUID, volumes: VDIVolumes, except vdi: CanonicalUUID) -> Set<CanonicalUUID> {
        var needed: Set<CanonicalUUID> = []
        for other in attachState(sr).attachedVDIs() where other != vdi && volumes.byVDI[other] != nil {
            needed.insert(other)
            for ancestor in (try? volumes.ancestors(of: other)) ?? [] { needed.insert(ancestor.vdi) }
        }
        return needed
    }

    // MARK: vdi_resize

    /// vdi_resize of a VHD VDI: grows its virtual size. The same size succeeds (idempotent), a
    /// smaller one or one above 2040 GiB is EINVAL; EPERM with children (they would read
    /// differently); EBUSY attached or open; ENOSPC when the group cannot hold the volume's growth
    /// (the larger BAT and the blocks it may have to move). The volume is extended, the VHD
    /// resized by the engine (each step of which leaves a valid VHD), the size tag set from the
    /// VHD, the volume deflated again. Journaled (`resize:<VDI>`): recovery copies the VHD's
    /// size into the tag.
    func resizeVHD(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64, group: VolumeGroup) throws(StorageError) {
        let (report, volumes) = try vhdState(sr: sr, group: group, holding: [vdi])
        guard let volume = volumes.byVDI[vdi], !volume.tags.hidden else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        let current = volume.tags.virtualSize ?? 0
        guard size >= current else {
            throw .invalid("new-size \(size) is smaller than VDI \(vdi)'s \(current) bytes; VDIs only grow")
        }
        guard size <= Self.maximumVHDSize else { throw .invalid("new-size \(size) is above the VHD limit of \(Self.maximumVHDSize)") }
        guard size > current else { return }
        if volumes.children[vdi]?.isEmpty == false { throw .vdiHasDependents(vdi.string) }
        if attachState(sr).isVDIAttached(vdi) { throw .vdiAttached(vdi.string) }
        if volume.report.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(volume.report.name)") }
        let metadata = VHDImage.metadataSize(virtualSize: size)
        let moved = (metadata / VHDImage.blockSize + 2) * (VHDImage.blockSize + VHDImage.dataAlignment)
        let wanted = report.extents(for: volume.report.size + metadata + moved)
        let have = report.extents(for: volume.report.size)
        guard wanted - have <= report.freeExtentCount else {
            throw .noRoomForWorstCase("vdi_resize of VDI \(vdi)", extents: wanted - have, in: report)
        }
        let logicalVolume = group.logicalVolume(volume.report.name)
        let wasActive = volume.report.activation == .active
        if !wasActive { try logicalVolume.activate() }
        defer { if !wasActive { try? logicalVolume.deactivate() } }
        guard Self.isBlockDevice(logicalVolume.path) else {
            throw .io("\(logicalVolume.qualifiedName): no device to resize the VHD on (LVM activation is disabled on this host)")
        }
        let intent = self.intent(.resize, [vdi])
        try group.changeTags(adding: [intent.tag])
        FaultPoint.LVMResize.journaled.reach()
        try settling(intent, sr: sr, group: group) { () throws(StorageError) in
            try logicalVolume.extend(toExtents: wanted)
            let image = try VHDImage.openBlockDevice(logicalVolume.path, writable: true)
            try image.repairFooters()
            try image.resize(to: size)
            FaultPoint.LVMResize.resized.reach()
            try logicalVolume.changeTags(
                adding: ["\(VDITags.sizePrefix)\(size)"], removing: ["\(VDITags.sizePrefix)\(current)"])
            let deflated = report.extents(for: image.occupiedBytes)
            if deflated < wanted { try logicalVolume.reduce(toExtents: deflated) }
        }
    }

    // MARK: vdi_delete

    /// vdi_delete of a VHD VDI: with children it is hidden (a tag); otherwise its volume is
    /// removed, then every hidden ancestor left without children. Idempotent.
    func deleteVHD(sr: CanonicalUUID, vdi: CanonicalUUID, group: VolumeGroup) throws(StorageError) {
        var (_, volumes) = try vhdState(sr: sr, group: group, holding: [vdi])
        guard let volume = volumes.byVDI[vdi] else { return }
        if attachState(sr).isVDIAttached(vdi) { throw .vdiAttached(vdi.string) }
        if volume.report.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(volume.report.name)") }
        if volumes.children[vdi]?.isEmpty == false {
            if !volume.tags.hidden { try group.logicalVolume(volume.report.name).changeTags(adding: [VDITags.hiddenTag]) }
            return
        }
        try group.logicalVolume(volume.report.name).remove()
        var next = volume.tags.parent
        volumes.children[volume.tags.parent ?? vdi]?.removeAll { $0 == vdi }
        while let parent = next, let ancestor = volumes.byVDI[parent], ancestor.tags.hidden,
            volumes.children[parent]?.isEmpty != false
        {
            try group.logicalVolume(ancestor.report.name).remove()
            if let grandparent = ancestor.tags.parent { volumes.children[grandparent]?.removeAll { $0 == parent } }
            next = ancestor.tags.parent
        }
    }

    // MARK: sr_scan

    /// The sr_scan entry of a VHD VDI: virtual size from its tag, utilisation the bytes its
    /// volume holds, parent the nearest listed ancestor, read-only when it has children.
    static func scanEntry(_ volume: VDIVolume, in volumes: VDIVolumes) -> VDIReport {
        var entry = VDIReport(uuid: volume.vdi, size: volume.tags.virtualSize ?? 0, utilisation: volume.report.size)
        entry.parent = volumes.listedParent(of: volume.vdi)
        entry.readOnly = volume.report.isReadOnly || volumes.children[volume.vdi]?.isEmpty == false
        return entry
    }
}
