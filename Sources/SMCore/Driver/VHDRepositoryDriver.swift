/// A driver whose VDIs are a `VHDRepository` (EXTSR, and any other SR whose root is a mounted
/// filesystem): it says where the repository is once it has checked the SR is usable, and every
/// VDI verb comes from here, so a verb added to the repository reaches all of them at once.
public protocol VHDRepositoryDriver: Driver {
    /// The SR's repository, after checking that the SR is attached and usable on this host
    /// (ENODEV otherwise). Called once per VDI verb.
    func attachedRepository(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository
}

extension VHDRepositoryDriver {
    public func vdiCreate(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try attachedRepository(sr).create(vdi, size: size)
    }

    public func vdiDelete(sr: CanonicalUUID, vdi: CanonicalUUID) throws {
        try attachedRepository(sr).delete(vdi)
    }

    public func vdiAttach(sr: CanonicalUUID, vdi: CanonicalUUID) throws -> AttachResult {
        try attachedRepository(sr).attach(vdi)
    }

    public func vdiDetach(sr: CanonicalUUID, vdi: CanonicalUUID) throws {
        try attachedRepository(sr).detach(vdi)
    }

    public func vdiResize(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try attachedRepository(sr).resize(vdi, size: size)
    }

    public func vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws {
        try attachedRepository(sr).lock(vdi, force: force, user: user)
    }

    public func vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws {
        try attachedRepository(sr).unlock(vdi, user: user)
    }
}

/// The SR verbs that EXTSR, NFSSR and any other driver whose SR root is a mount share.
extension VHDRepositoryDriver {
    /// sr_scan of a mounted SR: everything as FileSR (`VHDRepository.scan`), with physical size
    /// and utilisation from statvfs(3) of the mount.
    public func scanMountedSR(_ sr: CanonicalUUID) throws(StorageError) -> SRScanReport {
        let repository = try attachedRepository(sr)
        let usage = try repository.fileSystemUsage()
        return try repository.scan(physicalSize: usage.size, physicalUtilisation: usage.used)
    }

    /// sr_detach of a mounted SR. Idempotent; EBUSY while a VDI is attached here or a process
    /// has files open in the SR. Unmounts, removes the mount-point directory, clears the record.
    public func detachMountedSR(_ sr: CanonicalUUID, mountPoint: String, host: HostEnvironment) throws(StorageError) {
        let state = AttachState(host: host, sr: sr)
        if let attached = state.attachedVDIs().first {
            throw StorageError.srHasAttachedVDI(sr.string, vdi: attached.string)
        }
        try Mount.unmount(mountPoint)
        Mount.removeMountPoint(mountPoint)
        try state.clearSRAttached()
    }
}
