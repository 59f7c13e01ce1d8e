import SMCore

/// RBDSR: virtual disks on Ceph RBD. The SR is an RBD namespace of a pool, each VDI an RBD
/// image or an RBD snapshot; snapshot and clone are RBD's own (O(1)); attach maps with the
/// kernel client. All cluster work is in-process through librados and librbd; see
/// `RBDRepository` and Docs/RBDSR.md.
public struct RBDSR: Driver {
    public static let name = "RBDSR"
    public static let requiredKeys = CephCredentials.requiredKeys
    public static let optionalKeys = CephCredentials.optionalKeys
    public static let overview = """
        RBDSR keeps the SR as the RBD namespace <SR-UUID> (or dconf 'namespace') of dconf 'pool' on the Ceph \
        cluster at 'monitors', as cephx 'user' with 'keyring' (a file) or 'key' (the secret: pass the dconf as \
        @FILE or @- so that it stays off the command line). VDIs are RBD images (writable) and RBD snapshots \
        (read-only); vdi_snapshot and vdi_clone are RBD snapshots and clones; vdi_attach maps with the kernel \
        client, type aio; vdi_lock is a Ceph lock on the image header. 'timeout' (seconds, default 10) bounds \
        every wait on the cluster.
        """

    let repository: RBDRepository

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        repository = RBDRepository(credentials: try CephCredentials(configuration: configuration), host: host)
    }

    public func srCreate(sr: CanonicalUUID, size: UInt64) throws { try repository.create(sr: sr, size: size) }
    public func srDelete(sr: CanonicalUUID) throws { try repository.delete(sr: sr) }
    public func srAttach(sr: CanonicalUUID) throws { try repository.attach(sr: sr) }
    public func srDetach(sr: CanonicalUUID) throws { try repository.detach(sr: sr) }
    public func srScan(sr: CanonicalUUID) throws -> SRScanReport { try repository.scan(sr: sr) }
    public func srContentType(sr: CanonicalUUID) throws -> String { RBDRepository.contentType }

    public func vdiCreate(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try repository.createVDI(sr: sr, vdi: vdi, size: size)
    }
    public func vdiDelete(sr: CanonicalUUID, vdi: CanonicalUUID) throws { try repository.deleteVDI(sr: sr, vdi: vdi) }
    public func vdiAttach(sr: CanonicalUUID, vdi: CanonicalUUID) throws -> AttachResult {
        try repository.attachVDI(sr: sr, vdi: vdi)
    }
    public func vdiDetach(sr: CanonicalUUID, vdi: CanonicalUUID) throws { try repository.detachVDI(sr: sr, vdi: vdi) }
    public func vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try repository.cloneVDI(sr: sr, source: source, destination: destination)
    }
    public func vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try repository.snapshotVDI(sr: sr, source: source, destination: destination)
    }
    public func vdiResize(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try repository.resizeVDI(sr: sr, vdi: vdi, size: size)
    }
    public func vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws {
        try repository.lockVDI(sr: sr, vdi: vdi, force: force, user: user)
    }
    public func vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws {
        try repository.unlockVDI(sr: sr, vdi: vdi, user: user)
    }
    public func srGC(sr: CanonicalUUID) throws {
        throw StorageError.notImplemented(Verb.srGC.rawValue, driver: Self.name,
                                          reason: "not needed: RBD keeps no chains to coalesce, and hidden VDIs go with their last clone")
    }
}
