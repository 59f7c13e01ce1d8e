import SMCore

/// An LVM repository answers the SR and VDI verbs a `RepositoryDriver` forwards.
extension LVMRepository: SRRepository {}

/// A driver whose SR is an `LVMRepository` (LVMSR over the dconf's devices, LVMoISCSISR over
/// iSCSI LUNs), as `VHDRepositoryDriver` is for VHD SRs: every verb the repository has is
/// forwarded once (`RepositoryDriver`), and the verbs an LVM SR does not offer answer ENOSYS
/// with the same reasons in every LVM driver (`unsupportedVerbs`).
public protocol LVMRepositoryDriver: RepositoryDriver where Repository == LVMRepository {}

extension LVMRepositoryDriver {
    /// No persistent locks; no coalescing or checking of VHD chains yet.
    public static var unsupportedVerbs: [Verb: UnsupportedReason] { LVMUnsupported.table }

    /// Copy-on-write of a VHD VDI (an SR made with dconf `vdi_type=vhd`); ENOSYS for a raw one.
    public func vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try repository(for: sr).snapshotVDI(sr: sr, source: source, destination: destination)
    }

    public func vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try repository(for: sr).cloneVDI(sr: sr, source: source, destination: destination)
    }
}

/// The reasons of `LVMRepositoryDriver.unsupportedVerbs`.
enum LVMUnsupported {
    static let noLocks = UnsupportedReason("not supported: LVM SRs keep no persistent VDI locks")
    static let noChains = UnsupportedReason(
        "not implemented yet: coalescing VHD chains on logical volumes (deleted parents stay hidden until then)")
    static let noMetadata = UnsupportedReason(
        "not implemented yet: checking VHD chains on logical volumes (LVM checks its own metadata: vgck)")

    static let table: [Verb: UnsupportedReason] = [
        .vdiLock: noLocks, .vdiUnlock: noLocks,
        .srGC: noChains, .srCheck: noMetadata
    ]
}
