import SMCore

/// An SR kept as one LVM volume group, `VG_XenStorage-<SR-UUID>`, over block devices, with one
/// logical volume `LV-<VDI-UUID>` per VDI: raw and thick, or (a group tagged at sr_create, dconf
/// `vdi_type=vhd`) a VHD on a thin volume with snapshots and clones (`LVMRepository+VHD.swift`).
/// LVMSR composes it over the dconf's devices; LVMoISCSISR composes it over iSCSI LUNs.
///
/// liblvm2cmd is opened on first use, so verbs that need no LVM (content type, ENOSYS verbs)
/// never load LVM's state. Host-local attach records (`AttachState`) say which SR and VDIs this
/// host attached; LVM itself says what exists, how big it is and whether it is open.
///
/// With sanlock locking (LVMoISCSISR, `VolumeGroupLocking`) the group is a shared volume group
/// of several hosts: sr_create makes it shared, sr_attach starts its lock space on this host and
/// sr_detach stops it, LVM takes the group's lock through lvmlockd for every command, and a VDI
/// is activated exclusively, so that it is active on one host at a time (Docs/LVMoISCSISR.md).
///
/// Crash safety: every step is one LVM metadata commit, which LVM makes atomic. The verbs of more
/// than one commit are `sr_create` when it has to undo a group that came out smaller than Size,
/// and `sr_delete` (remove the group, then the physical-volume labels); the state a crash
/// between them leaves (physical volumes in no volume group on this SR's devices) is what
/// `sr_delete` finishes, so running `sr_delete` again is the recovery.
public final class LVMRepository {
    /// What `vdi_attach` and `sr_content_type` report: blktap's asynchronous-I/O driver.
    public static let contentType = "aio"

    /// The block devices the group lives on, as the dconf names them.
    public let devices: [String]
    public let host: HostEnvironment
    public let locking: VolumeGroupLocking
    /// The VDI type sr_create records (dconf `vdi_type`); every other verb follows the group's tag.
    public let vdiType: LVMVDIType
    /// This host's view of the other hosts of a shared group (sanlock's), nil for a local group:
    /// it decides whose intent records may be settled here (`RecordOwnership`).
    var poolView: PoolView?
    private var openHandle: LVMHandle?

    public init(devices: [String], host: HostEnvironment, locking: VolumeGroupLocking = .local, vdiType: LVMVDIType = .raw) {
        self.devices = devices
        self.host = host
        self.locking = locking
        self.vdiType = vdiType
        if case .sanlock(let hostID) = locking { poolView = .sanlock(hostID: hostID) }
    }

    public static func volumeGroupName(for sr: CanonicalUUID) -> String { "VG_XenStorage-\(sr)" }
    public static func logicalVolumeName(for vdi: CanonicalUUID) -> String { "LV-\(vdi)" }

    /// The VDI a logical volume holds; nil for a volume that is not a VDI's.
    public static func vdi(fromLogicalVolume name: String) -> CanonicalUUID? {
        guard name.hasPrefix("LV-") else { return nil }
        return CanonicalUUID(canonical: String(name.dropFirst(3)))
    }

    /// The liblvm2cmd handle, opened on first use.
    func lvm() throws(StorageError) -> LVMHandle {
        if let openHandle { return openHandle }
        let handle = try LVMHandle(host: host, locking: locking)
        openHandle = handle
        return handle
    }

    func volumeGroup(_ sr: CanonicalUUID) throws(StorageError) -> VolumeGroup {
        VolumeGroup(name: Self.volumeGroupName(for: sr), lvm: try lvm())
    }

    func attachState(_ sr: CanonicalUUID) -> AttachState { AttachState(host: host, sr: sr) }

    // MARK: SR verbs

    /// `sr_create`: refuses (EEXIST, naming the device and what is on it) any device that
    /// carries a signature, then makes the group over all devices in one LVM command. Size 0
    /// takes what the devices hold; a larger Size than the group can hold is ENOSPC and leaves
    /// the devices as they were.
    public func create(sr: CanonicalUUID, size: UInt64) throws(StorageError) {
        let blockDevices = try distinctBlockDevices()
        let group = try volumeGroup(sr)
        if try group.reportIfPresent() != nil { throw .srExists(sr.string) }
        for device in blockDevices {
            try refuseSignatures(on: device)
        }
        var capacity: UInt64 = 0
        for device in blockDevices { capacity += try device.size }
        guard size <= capacity else {
            throw .noSpace("Size \(size) is more than the \(capacity) bytes of \(devices.joinedText(separator: ", "))")
        }
        do {
            let tags = vdiType == .vhd ? [LVMVDIType.groupTag] : []
            _ = try VolumeGroup.create(name: group.name, devices: devices, tags: tags, lvm: try lvm())
        } catch {
            if case .some(.some) = try? group.reportIfPresent() { throw .srExists(sr.string) }
            throw error
        }
        guard size > 0 else { return }
        let report = try group.report()
        guard report.size < size else { return }
        try group.remove(physicalVolumes: try group.physicalVolumes())
        throw .noSpace("a volume group over \(devices.joinedText(separator: ", ")) holds \(report.size) bytes, less than Size \(size)")
    }

    /// `sr_delete`: idempotent. EBUSY while the group holds any logical volume; otherwise removes
    /// the group and the physical-volume labels, and forgets this host's attach records. With no
    /// group, clears physical-volume labels in no volume group on the SR's devices (what an
    /// interrupted `sr_create` or `sr_delete` leaves). A shared group's lock space is started
    /// first (vgremove needs it); EBUSY while another host has it started.
    public func delete(sr: CanonicalUUID) throws(StorageError) {
        for path in devices { _ = try BlockDevice(path: path) }
        let group = try volumeGroup(sr)
        if var report = try group.reportIfPresent() {
            try group.startLockspace()
            if report.logicalVolumeCount == 1, try group.logicalVolume(named: Self.poolCollectorName) != nil {
                // Only the pool's collector lock is left (sr_gc of a shared VHD SR made it).
                try group.logicalVolume(Self.poolCollectorName).remove()
                report = try group.report()
            }
            guard report.logicalVolumeCount == 0 else {
                throw .srNotEmpty(sr.string, count: Int(report.logicalVolumeCount))
            }
            try group.remove(physicalVolumes: try group.physicalVolumes())
        } else {
            let cleared = try PhysicalVolume.removeOrphans(devices, lvm: try lvm())
            if !cleared.isEmpty { Diagnostics.debug("cleared orphan physical volumes \(cleared)") }
        }
        try attachState(sr).forgetSR()
    }

    /// `sr_attach`: idempotent. The group must exist with all its physical volumes; starts a
    /// shared group's lock space on this host (ENOLCK when it cannot); records the attach.
    /// Logical volumes are activated one by one by `vdi_attach` (see Docs/LVMSR.md).
    public func attach(sr: CanonicalUUID) throws(StorageError) {
        for path in devices { _ = try BlockDevice(path: path) }
        let group = try volumeGroup(sr)
        let report: VolumeGroup.Report
        do {
            report = try group.report()
        } catch {
            throw explain(error, sr: sr, group: group)
        }
        guard report.missingPhysicalVolumeCount == 0 else {
            throw .volumeGroupIncomplete(
                group.name, missing: report.missingPhysicalVolumeCount,
                of: report.physicalVolumeCount)
        }
        try group.startLockspace()
        try attachState(sr).markSRAttached(details: group.name)
    }

    /// `sr_detach`: idempotent. EBUSY while a VDI is attached on this host or a logical volume of
    /// the group is open; otherwise deactivates every logical volume of the group (including
    /// ones activated outside SM), stops a shared group's lock space on this host and drops the
    /// attach record.
    public func detach(sr: CanonicalUUID) throws(StorageError) {
        let state = attachState(sr)
        try state.requireNoAttachedVDI()
        let group = try volumeGroup(sr)
        let volumes: [LogicalVolume.Report]
        do {
            volumes = try group.contents().volumes
        } catch {
            guard case .some(.none) = try? group.reportIfPresent() else { throw error }
            try state.clearSRAttached()
            return
        }
        if let open = volumes.first(where: { $0.isOpen == true }) {
            throw .logicalVolumeOpen("\(group.name)/\(open.name)")
        }
        if volumes.contains(where: { $0.activation != .inactive }) {
            try group.deactivate()
        }
        try group.stopLockspace()
        try state.clearSRAttached()
    }

    /// `sr_scan`: the group's size and allocation, and one VDI per `LV-<UUID>` volume (other
    /// volumes in the group count in the allocation but are not listed).
    public func scan(sr: CanonicalUUID) throws(StorageError) -> SRScanReport {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        var contents: (group: VolumeGroup.Report, volumes: [LogicalVolume.Report])
        do {
            contents = try group.contents()
        } catch {
            throw explain(error, sr: sr, group: group)
        }
        if contents.group.tags.contains(where: { $0.hasPrefix(LVMIntent.prefix) }),
            try recover(sr: sr, group: group, tags: contents.group.tags, holding: [])
        {
            contents = try group.contents()
        }
        let tagged = try VDIVolumes(contents.volumes)
        var vdis: [VDIReport] = []
        for volume in contents.volumes {
            guard let vdi = Self.vdi(fromLogicalVolume: volume.name) else {
                Diagnostics.debug("sr_scan: logical volume \(volume.name) is not a VDI; not listed")
                continue
            }
            if let vhd = tagged.byVDI[vdi], vhd.tags.isVHD {
                if !vhd.tags.hidden { vdis.append(Self.scanEntry(vhd, in: tagged)) }
                continue
            }
            var entry = VDIReport(uuid: vdi, size: volume.size, utilisation: volume.size)
            entry.readOnly = volume.isReadOnly
            vdis.append(entry)
        }
        vdis.sort { $0.uuid < $1.uuid }
        return SRScanReport(
            uuid: sr, physicalUtilisation: contents.group.allocated,
            virtualAllocation: vdis.reduce(0) { $0 + $1.size }, physicalSize: contents.group.size, vdis: vdis)
    }

    /// What a failed LVM command on the SR's group means: ENODEV when the group does not exist,
    /// otherwise the failure itself.
    func explain(_ error: StorageError, sr: CanonicalUUID, group: VolumeGroup) -> StorageError {
        guard case .some(.none) = try? group.reportIfPresent() else { return error }
        return .noSuchSR(sr.string)
    }

    func requireAttached(_ sr: CanonicalUUID) throws(StorageError) {
        guard attachState(sr).isSRAttached else { throw .srNotAttached(sr.string) }
    }

    /// The dconf's devices as block devices (ENODEV for a missing one), each named once.
    private func distinctBlockDevices() throws(StorageError) -> [BlockDevice] {
        var seen: [DeviceNumber: String] = [:]
        var result: [BlockDevice] = []
        for path in devices {
            let device = try BlockDevice(path: path)
            if let other = seen[device.number] {
                throw .invalid("dconf device lists \(other) and \(path), which are the same device")
            }
            seen[device.number] = path
            result.append(device)
        }
        return result
    }

    /// EEXIST when libblkid finds anything on `device`; an LVM label is named with its group.
    private func refuseSignatures(on device: BlockDevice) throws(StorageError) {
        let signatures = try device.probeSignatures()
        guard let first = signatures.first else { return }
        if signatures.contains(where: { $0.type == "LVM2_member" }) {
            let owner = try PhysicalVolume.volumeGroups(of: [device.path], lvm: try lvm()).values.first
            let membership =
                switch owner {
                case .none: "it is an LVM physical volume"
                case .some(""): "it is an LVM physical volume in no volume group"
                case .some(let group): "it is an LVM physical volume of volume group \(group)"
                }
            throw .deviceNotBlank(device.path, found: membership)
        }
        let more = signatures.count > 1 ? " and \(signatures.count - 1) more signature(s)" : ""
        throw .deviceNotBlank(device.path, found: "libblkid finds \(first)\(more)")
    }
}
