import SMCore

#if canImport(Glibc)
    import Glibc
#endif
/// A volume group, by name, over liblvm2cmd: what LVM reports about it and the commands that
/// change it. Every mutating command runs with `-qq`, so that a prompt is answered "no" and the
/// command fails instead of waiting on standard input.
public struct VolumeGroup {
    public let name: String
    let lvm: LVMHandle

    public init(name: String, lvm: LVMHandle) {
        self.name = name
        self.lvm = lvm
    }

    /// What `vgs` says about a volume group. Sizes in bytes.
    public struct Report: Sendable, Equatable {
        public var size: UInt64
        public var free: UInt64
        public var extentSize: UInt64
        public var extentCount: UInt64
        public var freeExtentCount: UInt64
        public var physicalVolumeCount: UInt64
        public var missingPhysicalVolumeCount: UInt64
        public var logicalVolumeCount: UInt64
        /// `vg_tags`: the SR's VDI type and its intent records (`VDITags`, `LVMJournal`).
        public var tags: [String]

        /// Bytes allocated to logical volumes.
        public var allocated: UInt64 { size - min(size, free) }

        static let fields =
            "vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,vg_missing_pv_count,lv_count,vg_tags"

        init(_ row: LVMReport.Row) throws(StorageError) {
            size = try row.number("vg_size")
            free = try row.number("vg_free")
            extentSize = try row.number("vg_extent_size")
            extentCount = try row.number("vg_extent_count")
            freeExtentCount = try row.number("vg_free_count")
            physicalVolumeCount = try row.number("pv_count")
            missingPhysicalVolumeCount = try row.number("vg_missing_pv_count")
            logicalVolumeCount = try row.number("lv_count")
            tags = (row.fields["vg_tags"] ?? "").split(separator: ",").map(String.init)
            guard extentSize > 0 else { throw .io("vgs reported an extent size of 0") }
        }

        /// Extents needed to hold `bytes` (rounded up; LVM allocates whole extents).
        public func extents(for bytes: UInt64) -> UInt64 {
            bytes / extentSize + (bytes % extentSize == 0 ? 0 : 1)
        }
    }

    /// The group's report; EIO (LVM's "not found" among other failures) when LVM cannot give it.
    public func report() throws(StorageError) -> Report {
        let report = try lvm.report(LVMCommand("vgs", ["-qq", "-o", Report.fields, name]))
        guard let row = report.rows("vg").first(where: { $0.fields["vg_name"] == name }) else {
            throw .io("vgs did not report volume group \(name)")
        }
        return try Report(row)
    }

    /// The group's report, or nil when no volume group of this name exists. A selection rather
    /// than a name argument, so that "not found" is an empty report and not an error to parse;
    /// it reads every group's metadata, so it serves to explain failures and to check for
    /// existence where that is the question.
    public func reportIfPresent() throws(StorageError) -> Report? {
        let report = try lvm.report(LVMCommand("vgs", ["-qq", "-o", Report.fields, "-S", "vg_name=\(name)"]))
        let rows = report.rows("vg").filter { $0.fields["vg_name"] == name }
        guard let row = rows.first else { return nil }
        return try Report(row)
    }

    /// The group and all its logical volumes: one `lvs` that also reports the group's fields,
    /// and a `vgs` only when the group has no volume.
    public func contents() throws(StorageError) -> (group: Report, volumes: [LogicalVolume.Report]) {
        let report = try lvm.report(LVMCommand("lvs", ["-qq", "-o", "\(LogicalVolume.Report.fields),\(Report.fields)", name]))
        let rows = report.rows("lv")
        guard let first = rows.first else { return (try self.report(), []) }
        return (try Report(first), try rows.map { row throws(StorageError) in try LogicalVolume.Report(row) })
    }

    /// Makes `devices` physical volumes and the group over them, in one LVM command (one
    /// metadata commit). Fails, without prompting, if a device carries any signature. With
    /// sanlock locking the group is shared (`--locktype sanlock`): LVM also makes its `lvmlock`
    /// volume and starts the group's lock space on this host.
    public static func create(name: String, devices: [String], tags: [String] = [], lvm: LVMHandle) throws(StorageError) -> VolumeGroup {
        let lockType = lvm.locking.isShared ? ["--locktype", "sanlock"] : []
        let tagging = tags.flatMap { ["--addtag", $0] }
        try lvm.run(LVMCommand("vgcreate", ["-qq"] + lockType + tagging + [name] + devices))
        return VolumeGroup(name: name, lvm: lvm)
    }

    /// Removes the group (it must hold no logical volume), then the physical-volume labels of
    /// `physicalVolumes`. Two commits: a crash between them leaves orphan physical volumes,
    /// which `PhysicalVolume.removeOrphans` clears. A shared group's lock space must be started
    /// here and stopped on every other host: otherwise EBUSY, nothing changed. Both sanlock
    /// (`SanlockLockspace`: no other host that may hold a lease) and LVM (vgremove) are asked.
    public func remove(physicalVolumes: [String]) throws(StorageError) {
        if case .sanlock(let hostID) = lvm.locking {
            try SanlockLockspace(volumeGroup: name).requireNoOtherHosts(hostID: hostID)
        }
        let outcome = try lvm.attempt(LVMCommand("vgremove", ["-qq", name]))
        if !outcome.succeeded {
            if outcome.errors.contains(where: { $0.contains(Self.lockspaceInUseElsewhere) }) {
                throw .volumeGroupInUseElsewhere(name)
            }
            throw .lvmFailed(LVMCommand("vgremove", ["-qq", name]), outcome)
        }
        if !physicalVolumes.isEmpty {
            try lvm.run(LVMCommand("pvremove", ["-qq"] + PhysicalVolume.withoutGlobalLock(lvm) + physicalVolumes))
        }
    }

    /// lvmlockd's words (lib/locking/lvmlockd.c) when vgremove finds other hosts in the lock space.
    static let lockspaceInUseElsewhere = "not stopped on other hosts"

    /// Starts the shared group's lock space on this host (`vgchange --lockstart`, which waits
    /// until sanlock has joined it: about 2 × sanlock's I/O timeout plus its delta-lease wait,
    /// ~20 s with the defaults). Idempotent. ENOLCK, with LVM's words, when lvmlockd or sanlock
    /// is not running or the lease cannot be acquired. Nothing to do for a local group.
    ///
    /// Tried up to `lockstartAttempts` times, `lockstartPause` apart: lvmlockd gives the
    /// `lvmlock` device one second to appear after LVM activated it ("FIXME: device is not always
    /// ready for us here", lvmlockd-sanlock.c) and otherwise fails the start with "invalid
    /// parameters for sanlock"; the VM lane saw that on a loaded machine.
    public func startLockspace() throws(StorageError) {
        guard lvm.locking.isShared else { return }
        let command = LVMCommand("vgchange", ["-qq", "--lockstart", name])
        var outcome = try lvm.attempt(command)
        for _ in 1..<Self.lockstartAttempts where !outcome.succeeded {
            Diagnostics.debug("lockstart of \(name) failed (\(outcome.reason)); trying again")
            Syscall.sleep(seconds: Double(Self.lockstartPause))
            outcome = try lvm.attempt(command)
        }
        guard outcome.succeeded else {
            throw .lockspaceNotStarted(name, reason: outcome.reason)
        }
    }

    static let lockstartAttempts = 3
    static let lockstartPause: UInt32 = 2

    /// Stops the shared group's lock space on this host (`vgchange --lockstop`); LVM refuses while
    /// a logical volume of the group is active here. Idempotent: a lock space that is not
    /// started (lvmlockd answers ENOLS, which LVM prints as "stop failed: -210") is success.
    /// Nothing to do for a local group.
    public func stopLockspace() throws(StorageError) {
        guard lvm.locking.isShared else { return }
        let command = LVMCommand("vgchange", ["-qq", "--lockstop", name])
        let outcome = try lvm.attempt(command)
        guard !outcome.succeeded else { return }
        if outcome.errors.contains(where: { $0.hasSuffix(Self.noLockspace) }) {
            Diagnostics.debug("lock space of \(name) was not started on this host")
            return
        }
        throw .lvmFailed(command, outcome)
    }

    /// How LVM prints lvmlockd's ENOLS (210, lvmlockd-client.h: no such lock space) when asked
    /// to stop one (lib/locking/lvmlockd.c, `lockd_stop_vg`: "VG %s stop failed: %d").
    static let noLockspace = "stop failed: -210"

    /// The group's physical volumes, by the device names LVM uses.
    public func physicalVolumes() throws(StorageError) -> [String] {
        let report = try lvm.report(LVMCommand("pvs", ["-qq", "-o", "pv_name,vg_name", "-S", "vg_name=\(name)"]))
        return try report.rows("pv").map { row throws(StorageError) in try row.text("pv_name") }
    }

    /// The logical volume `logicalVolume` with the group's report, or nil when the group has no
    /// volume of that name. One `lvs`; EIO when the group does not exist.
    public func logicalVolume(named logicalVolume: String) throws(StorageError) -> (volume: LogicalVolume.Report, group: Report)? {
        let report = try lvm.report(
            LVMCommand(
                "lvs",
                [
                    "-qq", "-o", "\(LogicalVolume.Report.fields),\(Report.fields)",
                    "-S", "lv_name=\(logicalVolume)", name
                ]))
        guard let row = report.rows("lv").first(where: { $0.fields["lv_name"] == logicalVolume }) else { return nil }
        return (try LogicalVolume.Report(row), try Report(row))
    }

    /// A logical volume of this group, by name (whether or not it exists).
    public func logicalVolume(_ logicalVolume: String) -> LogicalVolume {
        LogicalVolume(volumeGroup: name, name: logicalVolume, lvm: lvm)
    }

    /// Creates a linear logical volume of at least `size` bytes (LVM rounds up to whole extents;
    /// LVM checks the name is free and the space there, under its own lock). LVM's defaults
    /// apply: where activation works, the volume is activated so that LVM zeroes its first 4 KiB
    /// and wipes stale signatures, and is left active; callers deactivate it if they want it
    /// inactive. `--yes` answers LVM's "signature detected, wipe it?" for the new volume: what a
    /// previous VDI left in these extents must not show through.
    public func createLogicalVolume(named logicalVolume: String, size: UInt64, tags: [String] = []) throws(StorageError) -> LogicalVolume {
        let sectors = size / Self.sectorSize + (size % Self.sectorSize == 0 ? 0 : 1)
        try lvm.run(
            LVMCommand(
                "lvcreate",
                [
                    "-qq", "--yes", "--name", logicalVolume,
                    "--size", "\(sectors * Self.sectorSize)b"
                ] + tags.flatMap { ["--addtag", $0] } + [name]))
        return self.logicalVolume(logicalVolume)
    }

    /// LVM takes sizes in bytes only in whole 512-byte sectors.
    static let sectorSize: UInt64 = 512

    /// Adds and removes tags of the group in one metadata commit.
    public func changeTags(adding: [String] = [], removing: [String] = []) throws(StorageError) {
        guard !adding.isEmpty || !removing.isEmpty else { return }
        let arguments = adding.flatMap { ["--addtag", $0] } + removing.flatMap { ["--deltag", $0] }
        try lvm.run(LVMCommand("vgchange", ["-qq"] + arguments + [name]))
    }

    /// Deactivates every logical volume of the group. LVM refuses (EBUSY is the caller's to
    /// decide) while one is open.
    public func deactivate() throws(StorageError) {
        try lvm.run(LVMCommand("vgchange", ["-qq", "--activate", "n", name]))
    }
}

/// Physical volumes that are not (or no longer) in a volume group.
public enum PhysicalVolume {
    /// For each of `devices` that LVM knows as a physical volume: the volume group it belongs
    /// to, "" for none. Devices without a label are simply absent from the answer.
    public static func volumeGroups(of devices: [String], lvm: LVMHandle) throws(StorageError) -> [String: String] {
        guard !devices.isEmpty else { return [:] }
        let command = LVMCommand(
            "pvs",
            [
                "-qq", "-o", "pv_name,vg_name", "--reportformat", "json", "--units", "b",
                "--nosuffix"
            ] + devices)
        // pvs fails ("Failed to find physical volume") for a device without a label but still
        // reports the others; so the report is read whatever the return code.
        let outcome = try lvm.attempt(command)
        guard !outcome.report.isEmpty else { throw .lvmFailed(command, outcome) }
        var groups: [String: String] = [:]
        for row in try LVMReport(lines: outcome.report, command: command).rows("pv") {
            groups[try row.text("pv_name")] = try row.text("vg_name")
        }
        return groups
    }

    /// Removes the labels of those `devices` that are physical volumes in no volume group.
    /// Returns the devices cleared.
    @discardableResult
    public static func removeOrphans(_ devices: [String], lvm: LVMHandle) throws(StorageError) -> [String] {
        let orphans = try volumeGroups(of: devices, lvm: lvm).filter { $0.value.isEmpty }.map(\.key).sorted()
        if !orphans.isEmpty {
            try lvm.run(LVMCommand("pvremove", ["-qq"] + withoutGlobalLock(lvm) + orphans))
        }
        return orphans
    }

    /// For pvremove of this SR's own physical volumes with lvmlockd: LVM's global lock lives in
    /// the first shared volume group made; once that group is removed there is none, and
    /// pvremove would fail for want of it. The labels are on the SR's own devices, which no other
    /// SR names, so the global lock is skipped (`--lockopt skipgl`, lvmlockd's own option).
    static func withoutGlobalLock(_ lvm: LVMHandle) -> [String] {
        lvm.locking.isShared ? ["--lockopt", "skipgl"] : []
    }
}
