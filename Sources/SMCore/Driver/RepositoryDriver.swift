/// A substrate that answers the SR and VDI verbs itself, for any SR it holds (`LVMRepository`,
/// `RBDRepository`): the verbs of a `RepositoryDriver`, named as the repository names them.
public protocol SRRepository {
    /// What `sr_content_type` answers.
    static var contentType: String { get }

    func create(sr: CanonicalUUID, size: UInt64) throws
    func delete(sr: CanonicalUUID) throws
    func attach(sr: CanonicalUUID) throws
    func detach(sr: CanonicalUUID) throws
    func scan(sr: CanonicalUUID) throws -> SRScanReport
    func createVDI(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws
    func deleteVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws
    func attachVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws -> AttachResult
    func detachVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws
    func resizeVDI(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws
}

/// A driver whose verbs are an `SRRepository`'s (LVMSR and LVMoISCSISR through
/// `LVMRepositoryDriver`, RBDSR): it says which repository answers an SR, and the forwarding of
/// every verb the repository has is written here once. What a repository lacks (clone,
/// snapshot, locks, sr_gc) the driver implements or declares in `unsupportedVerbs`.
/// An iSCSI-backed one (LVMoISCSISR) gets its SR lifecycle from `ISCSIBacked` instead.
public protocol RepositoryDriver: Driver {
    associatedtype Repository: SRRepository

    /// The repository that answers `sr`'s verbs on this host.
    func repository(for sr: CanonicalUUID) throws(StorageError) -> Repository
}

extension RepositoryDriver {
    public func srCreate(sr: CanonicalUUID, size: UInt64) throws { try repository(for: sr).create(sr: sr, size: size) }
    public func srDelete(sr: CanonicalUUID) throws { try repository(for: sr).delete(sr: sr) }
    public func srAttach(sr: CanonicalUUID) throws { try repository(for: sr).attach(sr: sr) }
    public func srDetach(sr: CanonicalUUID) throws { try repository(for: sr).detach(sr: sr) }
    public func srScan(sr: CanonicalUUID) throws -> SRScanReport { try repository(for: sr).scan(sr: sr) }
    public func srContentType(sr: CanonicalUUID) throws -> String { Repository.contentType }

    public func vdiCreate(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try repository(for: sr).createVDI(sr: sr, vdi: vdi, size: size)
    }
    public func vdiDelete(sr: CanonicalUUID, vdi: CanonicalUUID) throws { try repository(for: sr).deleteVDI(sr: sr, vdi: vdi) }
    public func vdiAttach(sr: CanonicalUUID, vdi: CanonicalUUID) throws -> AttachResult {
        try repository(for: sr).attachVDI(sr: sr, vdi: vdi)
    }
    public func vdiDetach(sr: CanonicalUUID, vdi: CanonicalUUID) throws { try repository(for: sr).detachVDI(sr: sr, vdi: vdi) }
    public func vdiResize(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try repository(for: sr).resizeVDI(sr: sr, vdi: vdi, size: size)
    }
}
