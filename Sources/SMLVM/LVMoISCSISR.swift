import SMCore
/// LVMoISCSISR: an iSCSI session plus LVMSR over the LUNs the dconf's `LUNid` names (one or
/// more, comma-separated), as a shared volume group of the pool's hosts: LVM's own cluster
/// locking through lvmlockd and sanlock (`VolumeGroupLocking.sanlock`, with this host's
/// `sanlock_host_id`). Every SR and VDI verb is LVMSR's, on the LUNs' /dev/disk/by-path devices;
/// this type logs in and out around them. See Docs/LVMoISCSISR.md and Docs/ISCSI.md.
public struct LVMoISCSISR: Driver {
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

    let session: ISCSISession
    let luns: [Int]
    let host: HostEnvironment

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        session = ISCSISession(target: try ISCSITarget(configuration: configuration), host: host)
        luns = try ISCSITarget.lunNumbers(configuration.required("LUNid"), single: false)
        self.host = host
    }

    /// The group's locking: sanlock with this host's `sanlock_host_id`; EINVAL (before anything
    /// is run or written) when the setting is missing or out of range.
    var locking: VolumeGroupLocking {
        get throws(StorageError) { try VolumeGroupLocking.sanlock(host: host) }
    }

    /// LVMSR over the LUNs' devices, waiting for them to appear after login.
    func lvm(_ portal: ISCSIPortal, locking: VolumeGroupLocking) throws(StorageError) -> LVMSR {
        LVMSR(repository: LVMRepository(devices: try session.waitForLUNs(luns, portal: portal), host: host, locking: locking))
    }

    /// LVMSR for verbs that name the volume group, not the devices (detach, scan, VDI verbs): the
    /// LUNs' links at the portal this host logged in to, or at `target` when there is none.
    func attachedLVM(_ sr: CanonicalUUID) throws(StorageError) -> LVMSR {
        let locking = try locking
        let portal = session.attachedPortal(for: sr)
            ?? ISCSIPortal(address: session.target.address, port: session.target.port, groupTag: "1")
        return LVMSR(repository: LVMRepository(devices: luns.map { session.lunPath($0, portal: portal) }, host: host,
                                               locking: locking))
    }

    /// sr_create makes the group shared (`vgcreate --locktype sanlock`); LVM starts its lock
    /// space here, and it is stopped again before logout.
    public func srCreate(sr: CanonicalUUID, size: UInt64) throws {
        try borrowingSession(sr) { lvm in try lvm.srCreate(sr: sr, size: size) }
    }

    /// sr_delete starts the lock space (vgremove needs it) and removes the group: EBUSY while
    /// another host has the SR attached (LVM: its lock space is started there).
    public func srDelete(sr: CanonicalUUID) throws {
        try borrowingSession(sr) { lvm in try lvm.srDelete(sr: sr) }
    }

    /// Runs an LVMSR verb with the target logged in for the call. udev activates the volume
    /// groups it finds on new LUNs, which would hold them open and stop the logout; so unless the
    /// SR is attached on this host its volumes are deactivated again (LVMSR's sr_detach) first.
    func borrowingSession(_ sr: CanonicalUUID, _ body: (LVMSR) throws -> Void) throws {
        let locking = try locking
        try session.withSession(for: sr) { portal in
            let lvm = try lvm(portal, locking: locking)
            let result = Result { try body(lvm) }
            if !AttachState(host: host, sr: sr).isSRAttached {
                do {
                    try lvm.srDetach(sr: sr)
                } catch {
                    Diagnostics.debug("deactivating SR \(sr) before logout: \(error)")
                }
            }
            try result.get()
        }
    }

    /// Idempotent: login, then LVMSR's attach (which starts the group's lock space on this host:
    /// ~20 s with sanlock's defaults); a failed attach logs out again.
    public func srAttach(sr: CanonicalUUID) throws {
        let locking = try locking
        let portal = try session.open(for: sr)
        do {
            try lvm(portal, locking: locking).srAttach(sr: sr)
        } catch {
            try? session.close(for: sr)
            throw error
        }
    }

    /// Idempotent: LVMSR's detach (EBUSY with a VDI attached or a volume open; deactivates the
    /// group and stops its lock space on this host), then logout.
    public func srDetach(sr: CanonicalUUID) throws {
        try attachedLVM(sr).srDetach(sr: sr)
        try session.close(for: sr)
    }

    public func srScan(sr: CanonicalUUID) throws -> SRScanReport { try attachedLVM(sr).srScan(sr: sr) }
    public func srContentType(sr: CanonicalUUID) throws -> String { LVMRepository.contentType }

    public func vdiCreate(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try attachedLVM(sr).vdiCreate(sr: sr, vdi: vdi, size: size)
    }
    public func vdiDelete(sr: CanonicalUUID, vdi: CanonicalUUID) throws { try attachedLVM(sr).vdiDelete(sr: sr, vdi: vdi) }
    public func vdiAttach(sr: CanonicalUUID, vdi: CanonicalUUID) throws -> AttachResult {
        try attachedLVM(sr).vdiAttach(sr: sr, vdi: vdi)
    }
    public func vdiDetach(sr: CanonicalUUID, vdi: CanonicalUUID) throws { try attachedLVM(sr).vdiDetach(sr: sr, vdi: vdi) }
    public func vdiResize(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws {
        try attachedLVM(sr).vdiResize(sr: sr, vdi: vdi, size: size)
    }

    public func vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        throw StorageError.notImplemented(Verb.vdiClone.rawValue, driver: Self.name, reason: LVMSR.noCopyOnWrite)
    }
    public func vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        throw StorageError.notImplemented(Verb.vdiSnapshot.rawValue, driver: Self.name, reason: LVMSR.noCopyOnWrite)
    }
    public func vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws {
        throw StorageError.notImplemented(Verb.vdiLock.rawValue, driver: Self.name, reason: LVMSR.noLocks)
    }
    public func vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws {
        throw StorageError.notImplemented(Verb.vdiUnlock.rawValue, driver: Self.name, reason: LVMSR.noLocks)
    }
}
