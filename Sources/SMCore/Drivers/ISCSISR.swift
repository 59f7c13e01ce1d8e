/// ISCSISR: the SR is every LUN an iSCSI target offers this host; each LUN is a VDI whose UUID
/// is derived one-way from the LUN's SCSI identifier, so every host names the same LUN the same
/// way. LUNs are provisioned on the array: VDIs are never created, deleted or resized here.
/// The session is `ISCSISession`; see Docs/ISCSI.md.
public struct ISCSISR: Driver {
    public static let name = "ISCSISR"
    public static let requiredKeys = ISCSITarget.requiredKeys
    public static let optionalKeys = ISCSITarget.optionalKeys
    public static let overview = """
        ISCSISR presents every LUN of an iSCSI target as a VDI (type aio, not visible by default), \
        named by a UUID derived from the LUN's SCSI id. sr_attach logs in, sr_detach logs out. \
        dconf: <dconf><target>10.0.0.5</target><targetIQN>iqn.2007-10.com.example:disks</targetIQN></dconf>; \
        CHAP with chapuser and chappassword (the password never reaches a command line or a log).
        """

    /// The namespace of LUN-derived VDI UUIDs (a fixed, random UUID; changing it renames every VDI).
    public static let lunNamespace = CanonicalUUID("5b0e6f1c-8d2a-4e73-9a41-c7f3d2b8e096")!

    /// What `vdi_attach` and `sr_content_type` report.
    public static let contentType = "aio"

    let session: ISCSISession
    let host: HostEnvironment

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        session = ISCSISession(target: try ISCSITarget(configuration: configuration), host: host)
        self.host = host
    }

    /// The VDI UUID of a LUN: the name-based (version 5) UUID of its SCSI id in `lunNamespace`.
    public static func vdiUUID(scsiIdentifier: String) -> CanonicalUUID {
        .nameBased(namespace: lunNamespace, name: scsiIdentifier)
    }

    // MARK: SR verbs

    public func srCreate(sr: CanonicalUUID, size: UInt64) throws {
        throw StorageError.notImplemented(Verb.srCreate.rawValue, driver: Self.name, reason: Self.provisionedOnArray
            + "; there is nothing to create: sr_attach an SR UUID of your choice to use the target's LUNs")
    }

    public func srDelete(sr: CanonicalUUID) throws {
        throw StorageError.notImplemented(Verb.srDelete.rawValue, driver: Self.name, reason: Self.provisionedOnArray
            + "; there is nothing to delete: sr_detach logs out")
    }

    /// Idempotent: logs in (an existing session is reused) and records the attach.
    public func srAttach(sr: CanonicalUUID) throws {
        let portal = try session.open(for: sr)
        do throws(StorageError) {
            try state(sr).markSRAttached(details: "target=\(session.target.iqn)\nportal=\(portal.text)\n")
        } catch {
            try? session.close(for: sr)
            throw error
        }
    }

    /// Idempotent; EBUSY while a VDI is attached here or a LUN is in use. Logs out unless another
    /// SR on this host uses the same session.
    public func srDetach(sr: CanonicalUUID) throws {
        let state = state(sr)
        if let attached = state.attachedVDIs().first { throw StorageError.srHasAttachedVDI(sr.string, vdi: attached.string) }
        try session.close(for: sr)
        try state.clearSRAttached()
    }

    /// Every LUN with a block device, its size, not visible by default. A LUN whose SCSI id
    /// cannot be read is logged and left out.
    public func srScan(sr: CanonicalUUID) throws -> SRScanReport {
        let luns = try attachedLUNs(sr)
        var vdis: [VDIReport] = []
        for lun in luns {
            var entry = VDIReport(uuid: lun.vdi, size: lun.size, utilisation: lun.size)
            entry.label = "LUN \(lun.number)"
            entry.description = "SCSI id \(lun.scsiIdentifier)"
            vdis.append(entry)
        }
        vdis.sort { $0.uuid < $1.uuid }
        let total = vdis.reduce(0) { $0 + $1.size }
        var report = SRScanReport(uuid: sr, physicalUtilisation: total, virtualAllocation: total, physicalSize: total, vdis: vdis)
        report.defaultVDIVisibility = false
        report.label = session.target.iqn
        return report
    }

    public func srContentType(sr: CanonicalUUID) throws -> String { Self.contentType }

    // MARK: VDI verbs

    /// Idempotent: the LUN's by-path device, type aio.
    public func vdiAttach(sr: CanonicalUUID, vdi: CanonicalUUID) throws -> AttachResult {
        guard let lun = try attachedLUNs(sr).first(where: { $0.vdi == vdi }) else {
            throw StorageError.noSuchVDI(vdi.string, sr: sr.string)
        }
        try state(sr).markVDIAttached(vdi, path: lun.path)
        return AttachResult(path: lun.path, type: Self.contentType)
    }

    /// Idempotent.
    public func vdiDetach(sr: CanonicalUUID, vdi: CanonicalUUID) throws {
        let state = state(sr)
        guard state.isSRAttached else { throw StorageError.srNotAttached(sr.string) }
        try state.clearVDIAttached(vdi)
    }

    public func vdiCreate(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws { throw provisioned(.vdiCreate) }
    public func vdiDelete(sr: CanonicalUUID, vdi: CanonicalUUID) throws { throw provisioned(.vdiDelete) }
    public func vdiResize(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws { throw provisioned(.vdiResize) }
    public func vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws { throw provisioned(.vdiClone) }
    public func vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        throw provisioned(.vdiSnapshot)
    }
    public func vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws {
        throw StorageError.notImplemented(Verb.vdiLock.rawValue, driver: Self.name, reason: Self.noLocks)
    }
    public func vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws {
        throw StorageError.notImplemented(Verb.vdiUnlock.rawValue, driver: Self.name, reason: Self.noLocks)
    }

    // MARK: Pieces

    struct LUN {
        var number: Int
        var path: String
        var scsiIdentifier: String
        var vdi: CanonicalUUID
        var size: UInt64
    }

    /// The target's LUNs on this host; ENODEV unless the SR is attached here.
    func attachedLUNs(_ sr: CanonicalUUID) throws(StorageError) -> [LUN] {
        guard state(sr).isSRAttached, let portal = session.attachedPortal(for: sr) else { throw .srNotAttached(sr.string) }
        var luns: [LUN] = []
        for (number, path) in session.lunDevices(portal).sorted(by: { $0.key < $1.key }) {
            do throws(StorageError) {
                let identifier = try ISCSISession.scsiIdentifier(of: path)
                let size = try BlockDevice(path: path).size
                luns.append(LUN(number: number, path: path, scsiIdentifier: identifier,
                                vdi: Self.vdiUUID(scsiIdentifier: identifier), size: size))
            } catch {
                OperationLog.note(host: host, "\(Self.name) SR \(sr): LUN \(number) (\(path)) skipped: \(error.message)")
            }
        }
        return luns
    }

    func state(_ sr: CanonicalUUID) -> AttachState { AttachState(host: host, sr: sr) }

    func provisioned(_ verb: Verb) -> StorageError {
        .notImplemented(verb.rawValue, driver: Self.name, reason: Self.provisionedOnArray)
    }

    static let provisionedOnArray = "not supported: the SR's VDIs are the target's LUNs, provisioned on the storage array"
    static let noLocks = "not supported: ISCSISR keeps no persistent VDI locks"
}
