import SMCore
import SystemPackage

/// vdi_export and vdi_import on LVM SRs (LVMSR, LVMoISCSISR): raw logical volumes, and VHDs on
/// logical volumes in a `vdi_type=vhd` SR (Docs/export.md).
extension LVMRepository {
    /// The name a volume has while vdi_import fills it: not a VDI's name, so sr_scan does not
    /// list it (`vdi(fromLogicalVolume:)`).
    static func importingName(for vdi: CanonicalUUID) -> String { "\(logicalVolumeName(for: vdi)).importing" }

    /// `vdi_export`: activates the volume for the call (in a shared group exclusively, so EBUSY
    /// while another host has it active: a VM may be writing it there) and reads it whole; zero
    /// blocks are found by reading (a raw volume has no allocation map). EBUSY while it is
    /// attached or open on this host.
    public func exportVDI(sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, to output: FileDescriptor) throws(StorageError) {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        let name = Self.logicalVolumeName(for: vdi)
        let lookup: (volume: LogicalVolume.Report, group: VolumeGroup.Report)?
        do throws(StorageError) { lookup = try group.logicalVolume(named: name) } catch { throw explain(error, sr: sr, group: group) }
        guard let (found, _) = lookup else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        // A VHD VDI's volume holds a VHD (and its data in its ancestors' volumes): read through
        // the VHD engine, never raw.
        if found.tags.contains(VDITags.vhdTag) {
            try exportVHD(sr: sr, vdi: vdi, format: format, to: output, group: group)
            return
        }
        if attachState(sr).isVDIAttached(vdi) { throw .vdiAttached(vdi.string) }
        if found.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(found.name)") }
        let volume = group.logicalVolume(name)
        try volume.activate()
        defer {
            if found.activation != .active {
                do throws(StorageError) { try volume.deactivate() } catch {
                    Diagnostics.debug("vdi_export: \(volume.qualifiedName) stays active: \(error.message)")
                }
            }
        }
        guard Self.isBlockDevice(volume.path) else {
            throw .io("\(volume.qualifiedName) was activated but \(volume.path) is no block device (is LVM activation disabled here?)")
        }
        let descriptor = try Syscall.open(volume.path, .readOnly)
        defer { descriptor.closeIgnoringErrors() }
        try VDIExport.write(RawDiskSource(descriptor: descriptor, path: volume.path, size: found.size), as: format, to: output)
    }

    /// `vdi_import`: the volume is made under `importingName`, filled (blocks of zeros and
    /// the tail past the stream zeroed, since new extents may hold an old volume's data),
    /// synced, deactivated, and only then renamed to the VDI's name (one LVM metadata commit):
    /// a failure removes it; a crash leaves the `.importing` volume, unlisted, which the next
    /// vdi_import of that UUID removes. The free-space check is LVM's own (ENOSPC naming the
    /// extents, as vdi_create).
    public func importVDI(sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, size declared: UInt64, from input: FileDescriptor)
        throws(StorageError)
    {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        let name = Self.logicalVolumeName(for: vdi)
        let temporaryName = Self.importingName(for: vdi)
        let existing: (volume: LogicalVolume.Report, group: VolumeGroup.Report)?
        do throws(StorageError) { existing = try group.logicalVolume(named: name) } catch { throw explain(error, sr: sr, group: group) }
        if existing != nil { throw .vdiExists(vdi.string, sr: sr.string) }
        let plan = try VDIImport.begin(format: format, declaredSize: declared, from: input)
        if try type(of: group, sr: sr) == .vhd {
            try importVHD(sr: sr, vdi: vdi, plan: plan, group: group)
            return
        }
        if try group.logicalVolume(named: temporaryName) != nil {
            OperationLog.note(host: host, "vdi_import \(sr): removing \(temporaryName), left by an interrupted vdi_import")
            try group.logicalVolume(temporaryName).remove()
        }
        let volume: LogicalVolume
        do throws(StorageError) {
            volume = try group.createLogicalVolume(named: temporaryName, size: plan.size)
        } catch {
            if case .some(let report) = try? group.report(), report.extents(for: plan.size) > report.freeExtentCount {
                throw .noRoom(for: vdi, extents: report.extents(for: plan.size), in: report)
            }
            throw error
        }
        do throws(StorageError) {
            try volume.activate()
            guard Self.isBlockDevice(volume.path) else {
                throw .io("\(volume.qualifiedName) was activated but \(volume.path) is no block device (is LVM activation disabled here?)")
            }
            let descriptor = try Syscall.open(volume.path, .readWrite)
            do throws(StorageError) {
                let device = try BlockDevice(path: volume.path)
                let sink = RawDiskSink(descriptor: descriptor, path: volume.path, size: try device.size)
                try plan.copy(into: sink)
                try sink.finish()
            } catch {
                descriptor.closeIgnoringErrors()
                throw error
            }
            do { try descriptor.close() } catch { throw StorageError.system(error as? Errno ?? .ioError, "close", path: volume.path) }
            try volume.deactivate()
            FaultPoint.Import.written.reach()
            try lvm().run(LVMCommand("lvrename", ["-qq", group.name, temporaryName, name]))
        } catch {
            do throws(StorageError) { try volume.remove() } catch {
                Diagnostics.debug("vdi_import: could not remove \(volume.qualifiedName): \(error.message)")
            }
            throw error
        }
    }
}

// MARK: VHD VDIs

extension LVMRepository {
    /// vdi_export of a VHD VDI: the leaf and its ancestors that are not active are activated
    /// for the call (in a shared group as vdi_attach does: the leaf exclusively, EBUSY while
    /// another host has it active; the ancestors shared), the chain read through the VHD engine on their devices (only the blocks
    /// some BAT of the chain holds), and what this call activated is deactivated again, except a
    /// volume that a VDI attached on this host meanwhile reads through. EBUSY while the VDI is
    /// attached or open on this host; EIO where LVM activation is disabled (no device to read).
    func exportVHD(
        sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, to output: FileDescriptor, group: VolumeGroup
    ) throws(StorageError) {
        let (_, volumes) = try vhdState(sr: sr, group: group, holding: [vdi])
        guard let leaf = volumes.byVDI[vdi], !leaf.tags.hidden else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        if attachState(sr).isVDIAttached(vdi) { throw .vdiAttached(vdi.string) }
        if leaf.report.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(leaf.report.name)") }
        let links = [leaf] + (try volumes.ancestors(of: vdi))
        var activated: [VDIVolume] = []
        defer { deactivate(activated, group: group, volumes: volumes, sr: sr, verb: "vdi_export") }
        for volume in links.reversed() where locking.isShared || volume.report.activation != .active {
            try group.logicalVolume(volume.report.name).activate(shared: volume.vdi != vdi)
            activated.append(volume)
        }
        let path = group.logicalVolume(leaf.report.name).path
        guard Self.isBlockDevice(path) else {
            throw .io("\(group.name)/\(leaf.report.name): no device to read the VHD from (LVM activation is disabled on this host)")
        }
        let chain: VHDChain
        do { chain = try VHDChain.open(path, blockDevices: true) } catch {
            throw error.reworded("VDI \(vdi) cannot be exported: \(error.message)")
        }
        guard chain.length == links.count else {
            throw .io("VDI \(vdi): its VHD chain has \(chain.length) links, its tags \(links.count)")
        }
        try VDIExport.write(VHDChainSource(chain), as: format, to: output)
    }

    /// Deactivates `volumes` (activated by this call), nearest the leaf first, except those a VDI
    /// attached on this host reads through; a failure is logged, not thrown (the data is out).
    private func deactivate(_ activated: [VDIVolume], group: VolumeGroup, volumes: VDIVolumes, sr: CanonicalUUID, verb: String) {
        var needed: Set<CanonicalUUID> = []
        for other in attachState(sr).attachedVDIs() where volumes.byVDI[other] != nil {
            needed.insert(other)
            for ancestor in (try? volumes.ancestors(of: other)) ?? [] { needed.insert(ancestor.vdi) }
        }
        for volume in activated.reversed() where !needed.contains(volume.vdi) {
            do throws(StorageError) { try group.logicalVolume(volume.report.name).deactivate() } catch {
                Diagnostics.debug("\(verb): \(group.name)/\(volume.report.name) stays active: \(error.message)")
            }
        }
    }

    /// vdi_import into a VHD SR: a new VHD VDI (no parent), built as vdi_create builds one and
    /// journaled the same way (`create:<VDI>`; the volume `LV-<VDI>.new` until its rename, which
    /// recovery removes): the volume is created inflated to what the stream may need (a vhd
    /// stream: its blocks of data; a raw one: every block), the VHD written on it by the engine,
    /// blocks of zeros left unallocated, synced, deflated to what the VHD occupies, deactivated,
    /// renamed. ENOSPC before anything is created when the group's free extents do not hold the
    /// inflated volume; EIO where LVM activation is disabled (nothing is left).
    func importVHD(sr: CanonicalUUID, vdi: CanonicalUUID, plan: VDIImport, group: VolumeGroup) throws(StorageError) {
        let (report, volumes) = try vhdState(sr: sr, group: group, holding: [vdi])
        let name = Self.logicalVolumeName(for: vdi)
        let temporary = Self.temporaryName(for: vdi)
        if volumes.names.contains(name) || volumes.names.contains(temporary) { throw .vdiExists(vdi.string, sr: sr.string) }
        let virtualSize = VHDRepository.roundedSize(plan.size)
        guard virtualSize <= Self.maximumVHDSize else {
            throw .invalid("size \(plan.size) is above the VHD limit of \(Self.maximumVHDSize)")
        }
        let blocks = UInt64(plan.dataBlocks ?? TransferBlock.count(virtualSize))
        let bytes =
            VHDImage.metadataSize(virtualSize: virtualSize) + blocks * (VHDImage.blockSize + VHDImage.dataAlignment)
            + VHDImage.dataAlignment + UInt64(VHDFooter.size)
        let needed = LVMSpacePlan.extents(bytes, extentSize: report.extentSize)
        guard needed <= report.freeExtentCount else {
            let what = plan.dataBlocks == nil ? "a raw stream of \(plan.size) bytes" : "a VHD stream of \(blocks) blocks of data"
            throw .noRoomForWorstCase("vdi_import of VDI \(vdi) from \(what)", extents: needed, in: report)
        }
        let intent = self.intent(.create, [vdi])
        try group.changeTags(adding: [intent.tag])
        do throws(StorageError) {
            let volume = try group.createLogicalVolume(
                named: temporary, size: needed * report.extentSize, tags: VDITags(isVHD: true, virtualSize: virtualSize).tags)
            try volume.activate()
            guard Self.isBlockDevice(volume.path) else {
                throw .io("\(volume.qualifiedName): no device to write the VHD on (LVM activation is disabled on this host)")
            }
            let occupied = try Self.writeImportedVHD(at: volume.path, size: virtualSize, plan: plan)
            let deflated = LVMSpacePlan.extents(occupied, extentSize: report.extentSize)
            if deflated < needed { try volume.reduce(toExtents: deflated) }
            try volume.deactivate()
            FaultPoint.Import.written.reach()
            try volume.rename(to: name)
        } catch {
            try? group.logicalVolume(temporary).remove()
            try? group.changeTags(removing: [intent.tag])
            throw error
        }
        try group.changeTags(removing: [intent.tag])
    }

    /// Writes a new VHD of `size` on the device at `path` and the stream's blocks into it;
    /// returns the bytes it occupies. The device is closed when this returns.
    private static func writeImportedVHD(at path: String, size: UInt64, plan: VDIImport) throws(StorageError) -> UInt64 {
        let image = try VHDImage.createOnBlockDevice(at: path, size: size, uniqueID: CanonicalUUID.random().bytes)
        let sink = try VHDFileSink(image)
        try plan.copy(into: sink)
        try sink.finish()
        return image.occupiedBytes
    }
}

extension LVMRepositoryDriver {
    public func vdiExport(sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, to output: FileDescriptor) throws {
        try repository(for: sr).exportVDI(sr: sr, vdi: vdi, format: format, to: output)
    }

    public func vdiImport(
        sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, size: UInt64, from input: FileDescriptor
    ) throws {
        try repository(for: sr).importVDI(sr: sr, vdi: vdi, format: format, size: size, from: input)
    }
}
