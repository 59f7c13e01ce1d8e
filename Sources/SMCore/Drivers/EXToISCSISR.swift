/// EXToISCSISR: an iSCSI session plus EXTSR on one of the target's LUNs (dconf `LUNid`). Every
/// SR and VDI verb is EXTSR's, run on the LUN's /dev/disk/by-path device; this type only logs in
/// and out around them. See Docs/ISCSI.md. Every host that sees the LUN could mount it, so the
/// filesystem has ext4's multi-mount protection (Docs/EXTSR.md): a second host's sr_attach is
/// refused by the filesystem itself (EBUSY naming the host that has it).
public struct EXToISCSISR: VHDRepositoryDriver {
    public static let name = "EXToISCSISR"
    public static let requiredKeys = ISCSITarget.requiredKeys + ["LUNid"]
    public static let optionalKeys = ISCSITarget.optionalKeys + ["force"]
    public static let overview = """
        EXToISCSISR logs in to an iSCSI target and keeps an EXT SR (ext4, VHD files, see EXTSR) on the \
        LUN the dconf's LUNid names. sr_attach logs in and mounts; sr_detach unmounts and logs out; \
        sr_create and sr_delete log in for the duration of the call.
        """

    let session: ISCSISession
    let lun: Int
    let force: Bool
    let host: HostEnvironment
    /// The dconf this driver was started with, for the background sr_gc worker (on its stdin:
    /// the CHAP secret never reaches an argv).
    public let backgroundConfiguration: DeviceConfiguration?

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        backgroundConfiguration = configuration
        session = ISCSISession(target: try ISCSITarget(configuration: configuration), host: host)
        lun = try ISCSITarget.lunNumbers(configuration.required("LUNid"), single: true)[0]
        force = try configuration.flag("force")
        self.host = host
    }

    /// EXTSR over the LUN's device, once the session is up.
    func ext(_ portal: ISCSIPortal) throws(StorageError) -> EXTSR {
        try EXTSR(devicePath: session.waitForLUNs([lun], portal: portal)[0], force: force, multiMountProtection: true, host: host)
    }

    public func srCreate(sr: CanonicalUUID, size: UInt64) throws {
        try EXTSR.checkCreateSize(size)
        try session.withSession(for: sr) { portal in try ext(portal).srCreate(sr: sr, size: size) }
    }

    public func srDelete(sr: CanonicalUUID) throws {
        try session.withSession(for: sr) { portal in try ext(portal).srDelete(sr: sr) }
    }

    /// Idempotent: login, then EXTSR's attach; a failed attach logs out again.
    public func srAttach(sr: CanonicalUUID) throws {
        let portal = try session.open(for: sr)
        do {
            try ext(portal).srAttach(sr: sr)
        } catch {
            try? session.close(for: sr)
            throw error
        }
    }

    /// Idempotent: EXTSR's detach (EBUSY with a VDI attached), then logout.
    /// EXTSR's detach does not open the device, so it runs even when the session is gone.
    public func srDetach(sr: CanonicalUUID) throws {
        let portal = session.attachedPortal(for: sr)
            ?? ISCSIPortal(address: session.target.address, port: session.target.port, groupTag: "1")
        try EXTSR(devicePath: session.lunPath(lun, portal: portal), force: force, multiMountProtection: true, host: host).srDetach(sr: sr)
        try session.close(for: sr)
    }

    public func srScan(sr: CanonicalUUID) throws -> SRScanReport { try mountedEXT(sr).srScan(sr: sr) }

    public func srContentType(sr: CanonicalUUID) throws -> String { VHDRepository.contentType }

    public func attachedRepository(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository {
        try mountedEXT(sr).attachedRepository(sr)
    }

    /// EXTSR for the verbs that work on the mounted SR and never open the device: the path is the
    /// LUN's link at the portal this host logged in to (ENODEV when the SR is not attached here).
    func mountedEXT(_ sr: CanonicalUUID) throws(StorageError) -> EXTSR {
        guard let portal = session.attachedPortal(for: sr) else {
            guard !AttachState(host: host, sr: sr).isSRAttached else {
                throw StorageError(code: .noSuchDevice, message: "SR \(sr) is attached but has no iSCSI session record; run sr_attach again")
            }
            throw .srNotAttached(sr.string)
        }
        return try EXTSR(devicePath: session.lunPath(lun, portal: portal), force: force, multiMountProtection: true, host: host)
    }
}
