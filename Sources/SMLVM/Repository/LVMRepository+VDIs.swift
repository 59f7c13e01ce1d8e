import SMCore
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The VDI verbs of an LVM SR: one logical volume per VDI. Every verb needs the SR attached on
/// this host (ENODEV otherwise) and an existing volume group (ENODEV).
///
/// The usual case is one LVM command: LVM itself checks, under its lock, that a name is free,
/// that the space is there and that a volume is not open. Only when a command fails are reports
/// read, to turn the failure into the spec's errno (`diagnose`).
extension LVMRepository {
    /// `vdi_create`: a logical volume of Size rounded up to whole extents, left inactive.
    /// EEXIST for an existing VDI; ENOSPC when the group's free extents do not hold it.
    public func createVDI(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws(StorageError) {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        if try type(of: group, sr: sr) == .vhd {
            try createVHD(sr: sr, vdi: vdi, size: size, group: group)
            return
        }
        let name = Self.logicalVolumeName(for: vdi)
        let volume: LogicalVolume
        do {
            volume = try group.createLogicalVolume(named: name, size: size)
        } catch {
            let found = try diagnose(error, sr: sr, vdi: vdi, group: group)
            if found != nil { throw .vdiExists(vdi.string, sr: sr.string) }
            if case .some(let report) = try? group.report(), report.extents(for: size) > report.freeExtentCount {
                throw .noRoom(for: vdi, extents: report.extents(for: size), in: report)
            }
            throw error
        }
        guard Self.isBlockDevice(volume.path) else { return }
        do {
            try volume.deactivate()
        } catch {
            Diagnostics.debug("vdi_create: \(volume.qualifiedName) was created but stays active: \(error.message)")
        }
    }

    /// `vdi_delete`: idempotent. EBUSY while the VDI is attached on this host or open.
    public func deleteVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws(StorageError) {
        try requireAttached(sr)
        if attachState(sr).isVDIAttached(vdi) { throw .vdiAttached(vdi.string) }
        let group = try volumeGroup(sr)
        if try isVHD(vdi, sr: sr, group: group) {
            try deleteVHD(sr: sr, vdi: vdi, group: group)
            return
        }
        do {
            try group.logicalVolume(Self.logicalVolumeName(for: vdi)).remove()
        } catch {
            guard let found = try diagnose(error, sr: sr, vdi: vdi, group: group) else { return }
            if found.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(found.name)") }
            throw error
        }
    }

    /// `vdi_attach`: idempotent. Activates the logical volume and returns its device with type
    /// `aio`. When LVM's activation is disabled by configuration (`global/activation = 0`, a
    /// host-test setting), LVM accepts the activation without creating a device; the attach is
    /// recorded and the path LVM would create is returned (see Docs/LVMSR.md).
    public func attachVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws(StorageError) -> AttachResult {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        if try isVHD(vdi, sr: sr, group: group) { return try attachVHD(sr: sr, vdi: vdi, group: group) }
        let volume = group.logicalVolume(Self.logicalVolumeName(for: vdi))
        do {
            try volume.activate()
        } catch {
            if try diagnose(error, sr: sr, vdi: vdi, group: group) == nil { throw .noSuchVDI(vdi.string, sr: sr.string) }
            throw error
        }
        if !Self.isBlockDevice(volume.path) {
            guard try group.logicalVolume(named: volume.name)?.volume.activation == .unknown else {
                throw .io("\(volume.qualifiedName) was activated but \(volume.path) did not appear")
            }
            Diagnostics.debug("vdi_attach: LVM activation is disabled; \(volume.path) recorded without a device")
        }
        try attachState(sr).markVDIAttached(vdi, path: volume.path)
        return AttachResult(path: volume.path, type: Self.contentType)
    }

    /// `vdi_detach`: idempotent. EBUSY while the device is open; deactivates and drops the record.
    public func detachVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws(StorageError) {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        if try isVHD(vdi, sr: sr, group: group) {
            try detachVHD(sr: sr, vdi: vdi, group: group)
            return
        }
        do {
            try group.logicalVolume(Self.logicalVolumeName(for: vdi)).deactivate()
        } catch {
            guard let found = try diagnose(error, sr: sr, vdi: vdi, group: group) else {
                throw .noSuchVDI(vdi.string, sr: sr.string)
            }
            if found.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(found.name)") }
            throw error
        }
        try attachState(sr).clearVDIAttached(vdi)
    }

    /// `vdi_resize`: grows the volume to new-size rounded up to whole extents. The same size is
    /// success (idempotent); a smaller one is EINVAL; EBUSY while attached or open; ENOSPC when
    /// the group's free extents do not hold the growth.
    public func resizeVDI(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws(StorageError) {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        let lookup: (volume: LogicalVolume.Report, group: VolumeGroup.Report)?
        do {
            lookup = try group.logicalVolume(named: Self.logicalVolumeName(for: vdi))
        } catch {
            throw explain(error, sr: sr, group: group)
        }
        guard let (found, report) = lookup else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        if try VDITags(tags: found.tags, volume: found.name).isVHD {
            try resizeVHD(sr: sr, vdi: vdi, size: size, group: group)
            return
        }
        if attachState(sr).isVDIAttached(vdi) { throw .vdiAttached(vdi.string) }
        if found.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(found.name)") }
        let current = report.extents(for: found.size)
        let wanted = report.extents(for: size)
        guard wanted >= current else {
            throw .invalid("new-size \(size) is smaller than VDI \(vdi)'s \(found.size) bytes; VDIs only grow")
        }
        guard wanted > current else { return }
        guard wanted - current <= report.freeExtentCount else {
            throw .noRoom(for: vdi, extents: wanted - current, in: report)
        }
        do {
            try group.logicalVolume(found.name).extend(toExtents: wanted)
        } catch {
            if case .some(let now) = try? group.report(), wanted - current > now.freeExtentCount {
                throw .noRoom(for: vdi, extents: wanted - current, in: now)
            }
            throw error
        }
    }

    /// After `error` from a command on the VDI's volume: the volume as LVM now reports it, nil
    /// when it does not exist; ENODEV when the group does not exist; `error` itself when LVM
    /// cannot even say.
    private func diagnose(
        _ error: StorageError, sr: CanonicalUUID, vdi: CanonicalUUID,
        group: VolumeGroup
    ) throws(StorageError) -> LogicalVolume.Report? {
        do {
            return try group.logicalVolume(named: Self.logicalVolumeName(for: vdi))?.volume
        } catch let failure {
            Diagnostics.debug("cannot look up \(vdi) after a failure: \(failure.message)")
            throw explain(error, sr: sr, group: group)
        }
    }

    /// The SR's VDI type, from its group's tags (ENODEV when the group does not exist).
    func type(of group: VolumeGroup, sr: CanonicalUUID) throws(StorageError) -> LVMVDIType {
        do {
            return LVMVDIType(groupTags: try group.report().tags)
        } catch {
            throw explain(error, sr: sr, group: group)
        }
    }

    /// Whether the VDI's volume is a VHD (false when it does not exist: the raw verbs answer that).
    func isVHD(_ vdi: CanonicalUUID, sr: CanonicalUUID, group: VolumeGroup) throws(StorageError) -> Bool {
        let found: (volume: LogicalVolume.Report, group: VolumeGroup.Report)?
        do {
            found = try group.logicalVolume(named: Self.logicalVolumeName(for: vdi))
        } catch {
            throw explain(error, sr: sr, group: group)
        }
        guard let found else {
            // A VHD SR whose VDI is gone: the VHD verbs answer (recovery first).
            return LVMVDIType(groupTags: (try? group.report().tags) ?? []) == .vhd
        }
        return try VDITags(tags: found.volume.tags, volume: found.volume.name).isVHD
    }

    static func isBlockDevice(_ path: String) -> Bool {
        guard let status = Syscall.fileStatus(path) else { return false }
        return (status.st_mode & S_IFMT) == S_IFBLK
    }
}

extension StorageError {
    /// ENOSPC: the group's free extents do not hold what a VDI needs.
    static func noRoom(for vdi: CanonicalUUID, extents: UInt64, in report: VolumeGroup.Report) -> StorageError {
        .noSpace(
            "VDI \(vdi) needs \(extents) extents (\(extents * report.extentSize) bytes); the volume group has "
                + "\(report.freeExtentCount) free (\(report.freeExtentCount * report.extentSize) bytes)")
    }
}
