import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The VDI verbs of an LVM SR: one logical volume per VDI. Every verb needs the SR attached on
/// this host (ENODEV otherwise) and an existing volume group (ENODEV).
extension LVMRepository {
    /// `vdi_create`: a logical volume of Size rounded up to whole extents, left inactive.
    /// EEXIST for an existing VDI; ENOSPC when the group's free extents do not hold it.
    public func createVDI(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws(StorageError) {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        guard let report = try group.report() else { throw .noSuchSR(sr.string) }
        let name = Self.logicalVolumeName(for: vdi)
        if report.logicalVolumeCount > 0, try group.logicalVolume(named: name) != nil {
            throw .vdiExists(vdi.string, sr: sr.string)
        }
        let extents = report.extents(for: size)
        guard extents <= report.freeExtentCount else { throw .noRoom(for: vdi, extents: extents, in: report) }
        let volume: LogicalVolume
        do {
            volume = try group.createLogicalVolume(named: name, extents: extents)
        } catch {
            // Another caller may have got there first (host locks are per VDI, not per group).
            if (try? group.logicalVolume(named: name)) != nil { throw .vdiExists(vdi.string, sr: sr.string) }
            if let now = try? group.report(), extents > now.freeExtentCount { throw .noRoom(for: vdi, extents: extents, in: now) }
            throw error
        }
        do {
            try volume.deactivate()
        } catch {
            Diagnostics.debug("vdi_create: \(volume.qualifiedName) was created but stays active: \(error.message)")
        }
    }

    /// `vdi_delete`: idempotent. EBUSY while the VDI is attached on this host or open.
    public func deleteVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws(StorageError) {
        try requireAttached(sr)
        let (group, found) = try lookUp(sr: sr, vdi: vdi)
        guard let found else { return }
        if attachState(sr).isVDIAttached(vdi) { throw .vdiAttached(vdi.string) }
        if found.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(found.name)") }
        try group.logicalVolume(found.name).remove()
    }

    /// `vdi_attach`: idempotent. Activates the logical volume and returns its device with type
    /// `aio`. When LVM's activation is disabled by configuration (`global/activation = 0`, a
    /// host-test setting), LVM accepts the activation without creating a device; the attach is
    /// recorded and the path LVM would create is returned (see Docs/LVMSR.md).
    public func attachVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws(StorageError) -> AttachResult {
        try requireAttached(sr)
        let (group, found) = try lookUp(sr: sr, vdi: vdi)
        guard let found else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        let volume = group.logicalVolume(found.name)
        try volume.activate()
        if !Self.isBlockDevice(volume.path) {
            guard found.activation == .unknown else {
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
        let (group, found) = try lookUp(sr: sr, vdi: vdi)
        guard let found else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        if found.isOpen == true { throw .logicalVolumeOpen("\(group.name)/\(found.name)") }
        if found.activation != .inactive {
            try group.logicalVolume(found.name).deactivate()
        }
        try attachState(sr).clearVDIAttached(vdi)
    }

    /// `vdi_resize`: grows the volume to new-size rounded up to whole extents. The same size is
    /// success (idempotent); a smaller one is EINVAL; EBUSY while attached or open; ENOSPC when
    /// the group's free extents do not hold the growth.
    public func resizeVDI(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws(StorageError) {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        guard let report = try group.report() else { throw .noSuchSR(sr.string) }
        guard let found = try group.logicalVolume(named: Self.logicalVolumeName(for: vdi)) else {
            throw .noSuchVDI(vdi.string, sr: sr.string)
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
            if let now = try? group.report(), wanted - current > now.freeExtentCount {
                throw .noRoom(for: vdi, extents: wanted - current, in: now)
            }
            throw error
        }
    }

    /// The VDI's logical volume, nil when there is none; ENODEV when the group does not exist.
    /// One LVM command in the usual case.
    private func lookUp(sr: CanonicalUUID, vdi: CanonicalUUID) throws(StorageError) -> (VolumeGroup, LogicalVolume.Report?) {
        let group = try volumeGroup(sr)
        do {
            return (group, try group.logicalVolume(named: Self.logicalVolumeName(for: vdi)))
        } catch {
            if try group.report() == nil { throw .noSuchSR(sr.string) }
            throw error
        }
    }

    static func isBlockDevice(_ path: String) -> Bool {
        guard let status = Syscall.fileStatus(path) else { return false }
        return (status.st_mode & S_IFMT) == S_IFBLK
    }
}

extension StorageError {
    /// ENOSPC: the group's free extents do not hold what a VDI needs.
    static func noRoom(for vdi: CanonicalUUID, extents: UInt64, in report: VolumeGroup.Report) -> StorageError {
        .noSpace("VDI \(vdi) needs \(extents) extents (\(extents * report.extentSize) bytes); the volume group has "
            + "\(report.freeExtentCount) free (\(report.freeExtentCount * report.extentSize) bytes)")
    }
}
