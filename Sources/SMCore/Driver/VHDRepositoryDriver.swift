/// A driver whose VDIs are a `VHDRepository` (EXTSR, and any other SR whose root is a mounted
/// filesystem): it says where the repository is once it has checked the SR is usable, and every
/// VDI verb comes from here, so a verb added to the repository reaches all of them at once.
public protocol VHDRepositoryDriver: Driver {
    /// The SR's repository, after checking that the SR is attached and usable on this host
    /// (ENODEV otherwise). Called once per VDI verb.
    func attachedRepository(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository

    /// The dconf to start the background `sr_gc` worker with after a delete that left hidden
    /// parents (nil: no worker; run sr_gc by hand). It reaches the worker on stdin, never argv.
    var backgroundConfiguration: DeviceConfiguration? { get }
}

extension VHDRepositoryDriver {
    /// The attached repository after the recovery pass (VHDRepository+Recovery.swift) has settled
    /// what a crashed operation left (for SR verbs, which name no VDI).
    func readyRepository(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository {
        let repository = try attachedRepository(sr)
        try repository.recover()
        return repository
    }

    /// Runs a VDI verb: the attached repository, the shared claims of the VDIs it names (the
    /// dispatcher holds their host-local locks: Docs/pools.md), the recovery pass, then `body`.
    func withReadyRepository<T>(
        _ sr: CanonicalUUID, holding held: Set<CanonicalUUID>,
        _ body: (VHDRepository) throws -> T
    ) throws -> T {
        let repository = try attachedRepository(sr)
        let claims = try repository.claimVDIs(held)
        defer { claims.forEach { $0.release() } }
        try repository.recover(holding: held)
        return try body(repository)
    }

    public func vdiCreate(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try withReadyRepository(sr, holding: [vdi]) { try $0.create(vdi, size: size) }
    }

    public var backgroundConfiguration: DeviceConfiguration? { nil }

    /// Hidden parents left by the delete are coalesced by `sr_gc`, started here as a detached
    /// worker when the driver keeps its dconf (`backgroundConfiguration`) and the host allows it.
    public func vdiDelete(sr: CanonicalUUID, vdi: CanonicalUUID) throws {
        let (repository, collect) = try withReadyRepository(sr, holding: [vdi]) { ($0, try $0.delete(vdi)) }
        if collect, let configuration = backgroundConfiguration, BackgroundCollector.enabled(repository.host) {
            BackgroundCollector(deviceConfiguration: configuration).start(sr: sr, host: repository.host)
        }
    }

    public func vdiAttach(sr: CanonicalUUID, vdi: CanonicalUUID) throws -> AttachResult {
        try withReadyRepository(sr, holding: [vdi]) { try $0.attach(vdi) }
    }

    public func vdiDetach(sr: CanonicalUUID, vdi: CanonicalUUID) throws {
        try withReadyRepository(sr, holding: [vdi]) { try $0.detach(vdi) }
    }

    public func vdiResize(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try withReadyRepository(sr, holding: [vdi]) { try $0.resize(vdi, size: size) }
    }

    public func vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws {
        try withReadyRepository(sr, holding: [vdi]) { try $0.lock(vdi, force: force, user: user) }
    }

    public func vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws {
        try withReadyRepository(sr, holding: [vdi]) { try $0.unlock(vdi, user: user) }
    }

    public func vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try withReadyRepository(sr, holding: [source, destination]) { try $0.clone(source, as: destination) }
    }

    public func vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try withReadyRepository(sr, holding: [source, destination]) { try $0.snapshot(source, as: destination) }
    }

    public func srCheck(sr: CanonicalUUID) throws -> SRCheckReport {
        try readyRepository(sr).check()
    }

    public func srGC(sr: CanonicalUUID) throws {
        try readyRepository(sr).collectGarbage()
    }
}

/// The SR verbs that EXTSR, NFSSR and any other driver whose SR root is a mount share (the
/// mount itself is `MountedSR`).
extension VHDRepositoryDriver {
    /// sr_scan of a mounted SR: everything as FileSR (`VHDRepository.scan`), with physical size
    /// and utilisation from statvfs(3) of the mount.
    public func scanMountedSR(_ sr: CanonicalUUID) throws(StorageError) -> SRScanReport {
        let repository = try readyRepository(sr)
        let usage = try repository.fileSystemUsage()
        return try repository.scan(physicalSize: usage.size, physicalUtilisation: usage.used)
    }
}
