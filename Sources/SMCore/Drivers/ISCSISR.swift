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

    /// The LUNs are provisioned on the array: nothing is created, deleted or resized here.
    public static let unsupportedVerbs: UnsupportedVerbTable = {
        let provisioned = "not supported: the SR's VDIs are the target's LUNs, provisioned on the storage array"
        let noLocks = UnsupportedReason("not supported: ISCSISR keeps no persistent VDI locks")
        let raw = UnsupportedReason(
            "not supported: the LUNs are raw block devices, without VHD metadata or chains "
                + "to check or coalesce")
        return [
            .srCreate: UnsupportedReason(
                provisioned + "; there is nothing to create: sr_attach an SR UUID of your choice "
                    + "to use the target's LUNs"),
            .srDelete: UnsupportedReason(provisioned + "; there is nothing to delete: sr_detach logs out"),
            .srCheck: raw, .srGC: raw,
            .vdiCreate: UnsupportedReason(provisioned), .vdiDelete: UnsupportedReason(provisioned),
            .vdiClone: UnsupportedReason(provisioned), .vdiSnapshot: UnsupportedReason(provisioned),
            .vdiResize: UnsupportedReason(provisioned),
            .vdiLock: noLocks, .vdiUnlock: noLocks,
            .vdiImport: UnsupportedReason(provisioned + "; import into another SR, or write the LUN's device after vdi_attach"),
            .vdiExport: UnsupportedReason("not supported yet: read the LUN's device after vdi_attach (it is raw)")
        ]
    }()

    // MARK: SR verbs

    /// Idempotent: logs in (an existing session is reused, `ISCSISession.open(for:then:)` as the
    /// iSCSI-backed drivers) and records the attach.
    public func srAttach(sr: CanonicalUUID) throws {
        try session.open(for: sr) { portal in
            try state(sr).markSRAttached(details: "target=\(session.target.iqn)\nportal=\(portal.text)\n")
        }
    }

    /// Idempotent; EBUSY while a VDI is attached here or a LUN is in use. Logs out unless another
    /// SR on this host uses the same session.
    public func srDetach(sr: CanonicalUUID) throws {
        let state = state(sr)
        try state.requireNoAttachedVDI()
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

    // vdi_create, vdi_delete, vdi_resize, vdi_clone, vdi_snapshot, vdi_lock, vdi_unlock:
    // ENOSYS from `unsupportedVerbs`.

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
                luns.append(
                    LUN(
                        number: number, path: path, scsiIdentifier: identifier,
                        vdi: Self.vdiUUID(scsiIdentifier: identifier), size: size))
            } catch {
                OperationLog.note(host: host, "\(Self.name) SR \(sr): LUN \(number) (\(path)) skipped: \(error.message)")
            }
        }
        return luns
    }

    func state(_ sr: CanonicalUUID) -> AttachState { AttachState(host: host, sr: sr) }
}
