import SMCore

/// LVMoISCSISR: an iSCSI session plus LVMSR over the LUNs the dconf's `LUNid` names (one or
/// more, comma-separated), as a shared volume group of the pool's hosts: LVM's own cluster
/// locking through lvmlockd and sanlock (`VolumeGroupLocking.sanlock`, with this host's
/// `sanlock_host_id`). Every SR and VDI verb is LVMSR's, on the LUNs' /dev/disk/by-path devices
/// (`LVMRepositoryDriver`); logging in and out around them is `ISCSIBacked`'s. See Docs/LVMoISCSISR.md and Docs/ISCSI.md.
public struct LVMoISCSISR: LVMRepositoryDriver, ISCSIBacked {
    public static let name = "LVMoISCSISR"
    public static let requiredKeys = ISCSITarget.requiredKeys + ["LUNid"]
    public static let optionalKeys = ISCSITarget.optionalKeys
    public static let overview = """
        LVMoISCSISR logs in to an iSCSI target and keeps an LVM SR (see LVMSR: the volume group \
        VG_XenStorage-<SR-UUID>, one logical volume per VDI, type aio) over the LUNs the dconf's LUNid \
        names (comma-separated). The volume group is shared by the pool's hosts through lvmlockd and \
        sanlock (both must run; host setting sanlock_host_id, 1 to 2000, names this host): sr_attach \
        logs in and starts the group's lock space; vdi_attach activates exclusively (EBUSY while \
        another host has the VDI attached); sr_detach deactivates, stops the lock space and logs out; \
        sr_create and sr_delete log in for the duration of the call. No clone, snapshot or locks (ENOSYS).
        """

    public let session: ISCSISession
    let luns: [Int]
    let host: HostEnvironment
    /// dconf `vdi_type` (Docs/LVMSR.md): what sr_create records in the group.
    let vdiType: LVMVDIType

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        session = ISCSISession(target: try ISCSITarget(configuration: configuration), host: host)
        luns = try ISCSITarget.lunNumbers(configuration.required("LUNid"), single: false)
        vdiType = try LVMVDIType(configuration: configuration[LVMVDIType.configurationKey])
        self.host = host
    }

    /// The group's locking: sanlock with this host's `sanlock_host_id`; EINVAL (before anything
    /// is run or written) when the setting is missing or out of range.
    var locking: VolumeGroupLocking {
        get throws(StorageError) { try VolumeGroupLocking.sanlock(host: host) }
    }

    /// Checked before any login: the locking setting (EINVAL when missing or out of range).
    public func checkBeforeLogin() throws(StorageError) { _ = try locking }

    /// LVMSR over the LUNs' devices (waiting for them after a login) or their links.
    public func inner(at portal: ISCSIPortal, waitingForDevices: Bool) throws(StorageError) -> LVMSR {
        let locking = try locking
        let devices = waitingForDevices ? try session.waitForLUNs(luns, portal: portal) : luns.map { session.lunPath($0, portal: portal) }
        return LVMSR(repository: LVMRepository(devices: devices, host: host, locking: locking, vdiType: vdiType))
    }

    /// For the verbs that name the volume group, not the devices (scan, VDI verbs): the LUNs'
    /// links at the portal this host logged in to, or at `target` when there is none.
    public func repository(for sr: CanonicalUUID) throws(StorageError) -> LVMRepository {
        try attachedInner(sr).repository
    }

    /// sr_create makes the group shared (`vgcreate --locktype sanlock`) and sr_delete starts the
    /// lock space (vgremove needs it; EBUSY while another host has the SR attached), each with
    /// the target logged in for the call (`ISCSIBacked`). udev activates the volume groups it
    /// finds on new LUNs, which would hold them open and stop the logout; so unless the SR is
    /// attached on this host its volumes are deactivated again (LVMSR's sr_detach, which also
    /// stops the lock space) before the logout.
    public func releaseBeforeLogout(_ inner: LVMSR, sr: CanonicalUUID) {
        guard !AttachState(host: host, sr: sr).isSRAttached else { return }
        do {
            try inner.srDetach(sr: sr)
        } catch {
            Diagnostics.debug("deactivating SR \(sr) before logout: \(error)")
        }
    }

    // sr_attach (login, then LVMSR's attach, which starts the group's lock space on this host:
    // ~20 s with sanlock's defaults; a failed attach logs out again) and sr_detach (LVMSR's
    // detach: EBUSY with a VDI attached or a volume open; deactivates the group and stops its
    // lock space on this host; then logout): `ISCSIBacked`.
}
