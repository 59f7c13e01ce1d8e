import SMCore

/// An LVM repository answers the SR and VDI verbs a `RepositoryDriver` forwards.
extension LVMRepository: SRRepository {}

/// A driver whose SR is an `LVMRepository` (LVMSR over the dconf's devices, LVMoISCSISR over
/// iSCSI LUNs), as `VHDRepositoryDriver` is for VHD SRs: every verb the repository has is
/// forwarded once (`RepositoryDriver`), and the verbs an LVM SR does not offer answer ENOSYS
/// with the same reasons in every LVM driver (`unsupportedVerbs`).
public protocol LVMRepositoryDriver: RepositoryDriver where Repository == LVMRepository {}

extension LVMRepositoryDriver {
    /// Raw, thick logical volumes: no copy-on-write, no VHD metadata, no persistent locks.
    public static var unsupportedVerbs: [Verb: UnsupportedReason] { LVMUnsupported.table }
}

/// The reasons of `LVMRepositoryDriver.unsupportedVerbs`.
enum LVMUnsupported {
    static let noCopyOnWrite = UnsupportedReason("not supported: LVM SRs keep raw, thick logical volumes without copy-on-write")
    static let noLocks = UnsupportedReason("not supported: LVM SRs keep no persistent VDI locks")
    static let noChains = UnsupportedReason("not supported: thick logical volumes have no chains to coalesce")
    static let noMetadata = UnsupportedReason(
        "not supported: raw logical volumes carry no VHD metadata or chains to check "
            + "(LVM checks its own: vgck)")

    static let table: [Verb: UnsupportedReason] = [
        .vdiClone: noCopyOnWrite, .vdiSnapshot: noCopyOnWrite,
        .vdiLock: noLocks, .vdiUnlock: noLocks,
        .srGC: noChains, .srCheck: noMetadata
    ]
}
