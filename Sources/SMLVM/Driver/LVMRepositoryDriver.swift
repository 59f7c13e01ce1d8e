import SMCore

/// An LVM repository answers the SR and VDI verbs a `RepositoryDriver` forwards.
extension LVMRepository: SRRepository {}

/// A driver whose SR is an `LVMRepository` (LVMSR over the dconf's devices, LVMoISCSISR over
/// iSCSI LUNs), as `VHDRepositoryDriver` is for VHD SRs: every verb the repository has is
/// forwarded once (`RepositoryDriver`), and the verbs an LVM SR does not offer answer ENOSYS
/// with the same reasons in every LVM driver (`unsupportedVerbs`).
public protocol LVMRepositoryDriver: RepositoryDriver where Repository == LVMRepository {}

extension LVMRepositoryDriver {
    /// No persistent locks.
    public static var unsupportedVerbs: UnsupportedVerbTable { LVMUnsupported.table }

    /// Copy-on-write of a VHD VDI (an SR made with dconf `vdi_type=vhd`); ENOSYS for a raw one.
    public func vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try repository(for: sr).snapshotVDI(sr: sr, source: source, destination: destination)
    }

    public func vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try repository(for: sr).cloneVDI(sr: sr, source: source, destination: destination)
    }

    /// Checks the VHD chains of a VHD SR (a raw SR has none: clean); problems are reported.
    public func srCheck(sr: CanonicalUUID) throws -> SRCheckReport { try repository(for: sr).check(sr: sr) }

    /// Coalesces and reclaims a VHD SR's hidden VDIs; a raw SR has nothing to collect (success).
    public func srGC(sr: CanonicalUUID) throws { try repository(for: sr).collectGarbage(sr: sr) }
}

/// The reasons of `LVMRepositoryDriver.unsupportedVerbs`.
enum LVMUnsupported {
    static let noLocks = UnsupportedReason("not supported: LVM SRs keep no persistent VDI locks")

    static let table: UnsupportedVerbTable = [.vdiLock: noLocks, .vdiUnlock: noLocks]
}
