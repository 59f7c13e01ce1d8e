import SMCore
import SystemPackage

/// vdi_export and vdi_import on LVM SRs (LVMSR, LVMoISCSISR), whose VDIs are raw logical
/// volumes: Docs/export.md.
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
        // A VHD VDI's volume holds a VHD (and its data in its ancestors' volumes): read raw, it
        // would export metadata as if it were the disk's bytes.
        if found.tags.contains(VDITags.vhdTag) {
            throw .notImplemented(
                "vdi_export", driver: "LVM",
                reason: "VDI \(vdi) is a VHD on logical volumes; exporting VHD chains on LVM is not built yet (Docs/export.md)")
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
