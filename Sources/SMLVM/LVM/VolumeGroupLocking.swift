import SMCore

/// How the volume group of an LVM SR is protected from other hosts.
///
/// - `local`: an ordinary volume group (LVMSR): one host uses it; LVM's file locks under
///   `/run/lock/lvm` serialise this host's commands.
/// - `sanlock`: a shared volume group (LVMoISCSISR), LVM's own cluster locking: `vgcreate
///   --locktype sanlock`, liblvm2cmd with `use_lvmlockd = 1`, so that every command takes
///   lvmlockd's VG lock (shared to read, exclusive to change the metadata) and every activation
///   its LV lock, held on the group's own `lvmlock` volume by the sanlock daemon as a lease under
///   this host's sanlock host id. The host must run `sanlock` and `lvmlockd` (Docs/LVMoISCSISR.md).
public enum VolumeGroupLocking: Sendable, Equatable {
    case local
    case sanlock(hostID: Int)

    /// sanlock's host ids (lvmlockd(8): "a unique host_id in the range 1-2000").
    public static let hostIDRange = 1...2000

    /// The host setting that names this host's sanlock host id.
    public static let hostIDSetting = "sanlock_host_id"

    /// Sanlock locking with the host's `sanlock_host_id` (`SM_SANLOCK_HOST_ID`); EINVAL, naming
    /// the setting, when it is missing or not a whole number from 1 to 2000.
    public static func sanlock(host: HostEnvironment) throws(StorageError) -> VolumeGroupLocking {
        guard let value = host.settings[hostIDSetting] else {
            throw .invalid(
                "host setting \(hostIDSetting) (SM_SANLOCK_HOST_ID) is not set; shared volume groups need this "
                    + "host's sanlock host id, 1 to 2000, unique in the pool (Docs/LVMoISCSISR.md)")
        }
        guard let number = ArgumentParsing.boundedDecimal(value, in: hostIDRange) else {
            throw .invalid("host setting \(hostIDSetting) must be a whole number from 1 to 2000, got '\(ArgumentParsing.printable(value))'")
        }
        return .sanlock(hostID: number)
    }

    public var isShared: Bool { self != .local }
}
