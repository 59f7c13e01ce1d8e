/// EXTSR: a file-based SR on a whole block device. The SR is an ext4 filesystem made on the
/// device with the SR's UUID as the filesystem UUID; while attached it is mounted at
/// `<mount_dir>/<SR-UUID>` and the root of that filesystem is the SR root of a `VHDRepository`,
/// which does every VDI verb.
///
/// Crash safety lives on the device itself (Docs/EXTSR.md): mkfs.ext4 writes the primary
/// superblock last, so the SR exists exactly when the device probes as ext4 with its UUID;
/// sr_delete relabels the filesystem `sm-deleting` (its intent record) before wiping, and the
/// wipe clears the first mebibyte last, so an interrupted delete is finished by running it again.
public struct EXTSR: VHDRepositoryDriver {
    public static let name = "EXTSR"
    public static let requiredKeys = ["device"]
    public static let optionalKeys = ["force", "multihost"]
    public static let overview = """
        EXTSR makes an ext4 filesystem on a whole disk or partition and keeps each VDI as a dynamic
        VHD file <mount_dir>/<SR-UUID>/<VDI-UUID>.vhd in it while the SR is attached.
        dconf: <dconf><device>/dev/sdb</device></dconf>. sr_create refuses a device that holds a
        filesystem, a partition table, a RAID or LVM label unless the dconf has <force>true</force>.
        <multihost>true</multihost>, for a device that several hosts see, adds ext4's multi-mount
        protection: another host's sr_attach is then refused (EBUSY naming this host).
        """

    /// The label sr_delete writes before it wipes: the delete's intent record, in the SR itself.
    static let deletingLabel = "sm-deleting"

    /// The filesystem label of an SR: `SR-` and the first eight hex digits of its UUID (labels
    /// hold 16 bytes; the whole UUID is the filesystem UUID, which is what identifies the SR).
    static func label(for sr: CanonicalUUID) -> String { "SR-" + String(sr.string.prefix(8)) }

    let devicePath: String
    let force: Bool
    /// Make the filesystem with ext4's multi-mount protection, and turn it on at sr_attach in an
    /// SR made without it: for devices that several hosts see (EXToISCSISR). Docs/EXTSR.md.
    let multiMountProtection: Bool
    let host: HostEnvironment
    /// The dconf this driver was started with, for the background sr_gc worker.
    public private(set) var backgroundConfiguration: DeviceConfiguration?

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        try self.init(
            devicePath: configuration.required("device"), force: configuration.flag("force"),
            multiMountProtection: configuration.flag("multihost"), host: host)
        backgroundConfiguration = configuration
    }

    /// For drivers that find the device themselves (an iSCSI LUN's path, say).
    public init(
        devicePath: String, force: Bool = false, multiMountProtection: Bool = false,
        host: HostEnvironment
    ) throws(StorageError) {
        guard devicePath.hasPrefix("/") else {
            throw .invalid("dconf device '\(ArgumentParsing.printable(devicePath))' must be an absolute path such as /dev/sdb")
        }
        self.devicePath = devicePath
        self.force = force
        self.multiMountProtection = multiMountProtection
        self.host = host
    }

    /// The SR's mount; sr_delete mounts it read-only aside (`.<SR-UUID>.inspect`) to count its VDIs.
    func mounted(_ sr: CanonicalUUID) -> MountedSR {
        MountedSR(sr: sr, host: host, fileSystem: .init(name: Ext4.type, types: [Ext4.type]), asidePurpose: "inspect")
    }

    // MARK: SR verbs

    /// Not idempotent. Order: checks (nothing written), wipe when forced, mkfs.ext4, probe again.
    public func srCreate(sr: CanonicalUUID, size: UInt64) throws {
        try Self.checkCreateSize(size)
        let device = try BlockDevice(path: devicePath)
        let lock = try lockDevice(device)
        defer { lock.release() }
        let capacity = try device.size
        guard size <= capacity else {
            throw StorageError.noSpace("Size \(size) is larger than device \(device.path) (\(capacity) bytes)")
        }
        guard capacity >= Ext4.minimumSize else {
            throw StorageError.noSpace("device \(device.path) holds \(capacity) bytes; an EXT SR needs at least \(Ext4.minimumSize)")
        }
        try requireUnmounted(device)
        switch try contents(of: device, sr: sr) {
        case .blank:
            break
        case .thisSR:
            throw StorageError.srExists(sr.string, on: "device \(device.path)")
        case .thisSRBeingDeleted:
            throw StorageError.srHalfDeletedOnDevice(sr.string, device: device.path)
        case .other(let signatures):
            guard force else { throw StorageError.deviceHolds(device.path, contents: Self.describe(signatures)) }
            Diagnostics.debug("force=true: wiping \(device.path), which held \(Self.describe(signatures))")
            try device.wipe()
        }
        try Ext4.make(
            on: device, uuid: sr, label: Self.label(for: sr), size: size == 0 || size == capacity ? nil : size,
            multiMountProtection: multiMountProtection, holding: lock)
        guard case .thisSR = try contents(of: device, sr: sr) else {
            throw StorageError.io("mkfs.ext4 finished but device \(device.path) does not probe as SR \(sr)")
        }
    }

    /// EINVAL for an sr_create Size that is neither 0 (the whole device) nor at least
    /// `Ext4.minimumSize`; checked before anything is touched (also by EXToISCSISR, before it logs in).
    static func checkCreateSize(_ size: UInt64) throws(StorageError) {
        if size != 0 && size < Ext4.minimumSize {
            throw .invalid("Size \(size) is below the smallest EXT SR (\(Ext4.minimumSize) bytes); 0 means the whole device")
        }
    }

    /// Idempotent. Checks the device holds this SR before anything is mounted; e2fsck -p, MMP
    /// turned on when `multiMountProtection` and missing, mount, then the attach record (a
    /// failure to record unmounts again). A filesystem with MMP that another host has open is
    /// refused by e2fsck or the mount itself: EBUSY naming the holder from the MMP block,
    /// nothing mounted.
    public func srAttach(sr: CanonicalUUID) throws {
        let device = try BlockDevice(path: devicePath)
        let lock = try lockDevice(device)
        defer { lock.release() }
        let mounted = mounted(sr)
        let isThisDevice: (MountEntry) -> Bool = { $0.device == device.number }
        try mounted.attach(
            expected: "device \(device.path)", isExpected: isThisDevice,
            record: "device=\(device.path)\nmount=\(mounted.mountPoint)\n"
        ) { () throws(StorageError) in
            try requireThisSR(on: device, sr: sr)
            if let elsewhere = try MountTable.current().entries(on: device.number).first {
                throw .deviceMounted(device.path, at: [elsewhere.mountPoint])
            }
            do throws(StorageError) {
                try Ext4.check(device, holding: lock)
                if multiMountProtection, try Ext4.multiMountBlock(device) == nil {
                    Diagnostics.debug("turning on multi-mount protection in SR \(sr) on \(device.path)")
                    try Ext4.enableMultiMountProtection(on: device, holding: lock)
                }
                try Mount.mount(device.path, at: mounted.mountPoint, type: Ext4.type)
            } catch {
                throw Self.explainRefusal(error, device: device, sr: sr)
            }
        }
    }

    /// Idempotent; EBUSY while a VDI is attached or a process has files open in the SR. Does not
    /// need the device (it may already be gone).
    public func srDetach(sr: CanonicalUUID) throws {
        try mounted(sr).detach()
    }

    /// Idempotent: a blank device succeeds. EBUSY while attached (mounted) or holding VDIs;
    /// ENODEV when the device holds something that is not this SR (nothing is wiped then).
    public func srDelete(sr: CanonicalUUID) throws {
        let device = try BlockDevice(path: devicePath)
        let lock = try lockDevice(device)
        defer { lock.release() }
        let mounted = mounted(sr)
        if let mount = try mounted.currentMount(), mount.device == device.number {
            throw StorageError.srAttached(sr.string, how: "mounted at \(mount.mountPoint)")
        }
        try mounted.attachState.requireNoAttachedVDI()
        switch try contents(of: device, sr: sr) {
        case .blank:
            break
        case .other(let signatures):
            throw StorageError.deviceNotThisSR(
                device.path, holds: Self.describe(signatures), sr: sr.string,
                outcome: "nothing was wiped")
        case .thisSR:
            try mounted.releaseAsideMount()
            try requireUnmounted(device)
            // A read-only mount skips MMP (and would replay a live host's journal): ask first.
            if let holder = try Ext4.liveHolder(device) {
                throw Self.inUseElsewhere(device: device, sr: sr, holder: holder, outcome: "nothing was wiped")
            }
            let count = try countVDIs(on: device, sr: sr)
            guard count == 0 else { throw StorageError.srNotEmpty(sr.string, count: count) }
            try Ext4.setLabel(Self.deletingLabel, on: device, holding: lock)
            try device.wipe()
        case .thisSRBeingDeleted:
            try mounted.releaseAsideMount()
            try requireUnmounted(device)
            try device.wipe()
        }
        try mounted.attachState.forgetSR()
    }

    /// Everything as FileSR (`VHDRepository.scan`); physical size and utilisation are the
    /// mounted filesystem's.
    public func srScan(sr: CanonicalUUID) throws -> SRScanReport {
        try scanMountedSR(sr)
    }

    /// `vhd`, for a device that holds this SR (attached or not).
    public func srContentType(sr: CanonicalUUID) throws -> String {
        try requireThisSR(on: BlockDevice(path: devicePath), sr: sr)
        return VHDRepository.contentType
    }

    /// ENODEV unless the SR is recorded as attached here and an ext4 filesystem is mounted on its
    /// mount point (so a VDI is never written into the bare directory underneath).
    public func attachedRepository(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository {
        try mounted(sr).attachedRepository().repository
    }

    // MARK: Pieces

    /// What a device holds, as far as one SR is concerned.
    enum Contents {
        case blank
        case thisSR
        case thisSRBeingDeleted
        case other([Signature])
    }

    func contents(of device: BlockDevice, sr: CanonicalUUID) throws(StorageError) -> Contents {
        let signatures = try device.probeSignatures()
        if signatures.isEmpty { return .blank }
        let ours = signatures.first { $0.type == Ext4.type && $0.uuid.flatMap { CanonicalUUID($0) } == sr }
        guard let ours else { return .other(signatures) }
        return ours.label == Self.deletingLabel ? .thisSRBeingDeleted : .thisSR
    }

    /// ENODEV naming what the device holds instead of this SR.
    func requireThisSR(on device: BlockDevice, sr: CanonicalUUID) throws(StorageError) {
        switch try contents(of: device, sr: sr) {
        case .thisSR:
            return
        case .blank:
            throw .deviceNotThisSR(device.path, holds: "no filesystem", sr: sr.string)
        case .other(let signatures):
            throw .deviceNotThisSR(device.path, holds: Self.describe(signatures), sr: sr.string)
        case .thisSRBeingDeleted:
            throw .srHalfDeleted(sr.string, device: device.path)
        }
    }

    /// EBUSY while the device is mounted anywhere on this host.
    func requireUnmounted(_ device: BlockDevice) throws(StorageError) {
        let mounts = try MountTable.current().entries(on: device.number)
        guard mounts.isEmpty else { throw .deviceMounted(device.path, at: mounts.map(\.mountPoint)) }
    }

    /// Mounts the SR read-only aside, counts its VHD files (hidden ones too), unmounts.
    /// A failure to unmount fails the call: the device is wiped next.
    func countVDIs(on device: BlockDevice, sr: CanonicalUUID) throws -> Int {
        try mounted(sr).withAsideMount(device.path, type: Ext4.type, options: ["ro"], unmountFailure: .fails) { inspection in
            try VHDRepository(sr: sr, root: inspection, host: host).allVDIFiles().count
        }
    }

    /// Serialises create, attach and delete per device, whatever SR UUID each names.
    func lockDevice(_ device: BlockDevice) throws(StorageError) -> HostLock {
        try HostLock.acquire(
            "\(host.lockDirectory)/block-devices/\(device.number)", mode: .exclusive,
            timeout: host.lockTimeout)
    }

    /// A failed e2fsck or mount of a filesystem whose MMP block shows a holder is that holder's
    /// refusal: EBUSY naming it. One whose own message is an MMP refusal (e2fsck's "MMP: device
    /// currently active") is EBUSY too when the block cannot be read, with why not. Anything
    /// else stays as it was.
    static func explainRefusal(_ error: StorageError, device: BlockDevice, sr: CanonicalUUID) -> StorageError {
        guard error.code == .ioError else { return error }
        let unreadable: String
        do throws(StorageError) {
            if let block = try Ext4.multiMountBlock(device), !block.isClean {
                return inUseElsewhere(device: device, sr: sr, holder: block, outcome: "nothing was mounted here")
            }
            unreadable = "its MMP block shows no holder now"
        } catch {
            unreadable = "its MMP block could not be read (\(error.message))"
        }
        guard let refusal = Ext4.multiMountRefusal(in: error.message) else { return error }
        return .srRefusedByMultiMountProtection(
            sr.string, device: device.path, refusal: refusal, detail: unreadable, outcome: "nothing was mounted here")
    }

    static func inUseElsewhere(
        device: BlockDevice, sr: CanonicalUUID, holder: Ext4.MultiMountBlock,
        outcome: String
    ) -> StorageError {
        .srInUseByAnotherHost(
            sr.string, device: device.path, holder: holder.holderDescription,
            secondsAgo: max(0, Int(Syscall.now()) - holder.time), outcome: outcome)
    }

    static func describe(_ signatures: [Signature]) -> String {
        signatures.map(\.description).joinedText(separator: " and ")
    }
}
