/// EXToISCSISR: an iSCSI session plus EXTSR on one of the target's LUNs (dconf `LUNid`). Every
/// SR and VDI verb is EXTSR's, run on the LUN's /dev/disk/by-path device; logging in and out
/// around them is `ISCSIBacked`'s. See Docs/ISCSI.md. Every host that sees the LUN could mount it, so the
/// filesystem has ext4's multi-mount protection (Docs/EXTSR.md): a second host's sr_attach is
/// refused by the filesystem itself (EBUSY naming the host that has it).
public struct EXToISCSISR: VHDRepositoryDriver, ISCSIBacked {
    public static let name = "EXToISCSISR"
    public static let requiredKeys = ISCSITarget.requiredKeys + ["LUNid"]
    public static let optionalKeys = ISCSITarget.optionalKeys + ["force"]
    public static let overview = """
        EXToISCSISR logs in to an iSCSI target and keeps an EXT SR (ext4, VHD files, see EXTSR) on the \
        LUN the dconf's LUNid names. sr_attach logs in and mounts; sr_detach unmounts and logs out; \
        sr_create and sr_delete log in for the duration of the call.
        """

    public let session: ISCSISession
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

    /// EXTSR over the LUN's device (waiting for it after a login) or its link.
    public func inner(at portal: ISCSIPortal, waitingForDevices: Bool) throws(StorageError) -> EXTSR {
        let path = waitingForDevices ? try session.waitForLUNs([lun], portal: portal)[0] : session.lunPath(lun, portal: portal)
        return try EXTSR(devicePath: path, force: force, multiMountProtection: true, host: host)
    }

    /// Size is checked before the login (EINVAL, nothing touched).
    public func srCreate(sr: CanonicalUUID, size: UInt64) throws {
        try EXTSR.checkCreateSize(size)
        try borrowingSession(sr) { try $0.srCreate(sr: sr, size: size) }
    }

    public func srScan(sr: CanonicalUUID) throws -> SRScanReport { try attachedInner(sr).srScan(sr: sr) }

    public func srContentType(sr: CanonicalUUID) throws -> String { VHDRepository.contentType }

    public func attachedRepository(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository {
        try attachedInner(sr).attachedRepository(sr)
    }

    /// EXTSR for the verbs that work on the mounted SR and never open the device: the path is the
    /// LUN's link at the portal this host logged in to (ENODEV when the SR is not attached here).
    public func attachedInner(_ sr: CanonicalUUID) throws(StorageError) -> EXTSR {
        guard let portal = session.attachedPortal(for: sr) else {
            guard !AttachState(host: host, sr: sr).isSRAttached else { throw .srSessionRecordMissing(sr.string) }
            throw .srNotAttached(sr.string)
        }
        return try inner(at: portal, waitingForDevices: false)
    }
}
