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

        /// Bytes allocated to logical volumes.
        public var allocated: UInt64 { size - min(size, free) }

        static let fields = "vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,vg_missing_pv_count,lv_count"

        init(_ row: LVMReport.Row) throws(StorageError) {
            size = try row.number("vg_size")
            free = try row.number("vg_free")
            extentSize = try row.number("vg_extent_size")
            extentCount = try row.number("vg_extent_count")
            freeExtentCount = try row.number("vg_free_count")
            physicalVolumeCount = try row.number("pv_count")
            missingPhysicalVolumeCount = try row.number("vg_missing_pv_count")
            logicalVolumeCount = try row.number("lv_count")
            guard extentSize > 0 else { throw .io("vgs reported an extent size of 0") }
        }

        /// Extents needed to hold `bytes` (rounded up; LVM allocates whole extents).
        public func extents(for bytes: UInt64) -> UInt64 {
            bytes / extentSize + (bytes % extentSize == 0 ? 0 : 1)
        }
    }

    /// The group's report, or nil when no volume group of this name exists. A selection rather
    /// than a name argument, so that "not found" is an empty report and not an error to parse.
    public func report() throws(StorageError) -> Report? {
        let report = try lvm.report(LVMCommand("vgs", ["-qq", "-o", Report.fields, "-S", "vg_name=\(name)"]))
        let rows = report.rows("vg").filter { $0.fields["vg_name"] == name }
        guard let row = rows.first else { return nil }
        return try Report(row)
    }

    /// Makes `devices` physical volumes and the group over them, in one LVM command (one
    /// metadata commit). Fails, without prompting, if a device carries any signature.
    public static func create(name: String, devices: [String], lvm: LVMHandle) throws(StorageError) -> VolumeGroup {
        try lvm.run(LVMCommand("vgcreate", ["-qq", name] + devices))
        return VolumeGroup(name: name, lvm: lvm)
    }

    /// Removes the group (it must hold no logical volume), then the physical-volume labels of
    /// `physicalVolumes`. Two commits: a crash between them leaves orphan physical volumes,
    /// which `PhysicalVolume.removeOrphans` clears.
    public func remove(physicalVolumes: [String]) throws(StorageError) {
        try lvm.run(LVMCommand("vgremove", ["-qq", name]))
        if !physicalVolumes.isEmpty {
            try lvm.run(LVMCommand("pvremove", ["-qq"] + physicalVolumes))
        }
    }

    /// The group's physical volumes, by the device names LVM uses.
    public func physicalVolumes() throws(StorageError) -> [String] {
        let report = try lvm.report(LVMCommand("pvs", ["-qq", "-o", "pv_name,vg_name", "-S", "vg_name=\(name)"]))
        return try report.rows("pv").map { row throws(StorageError) in try row.text("pv_name") }
    }

    /// Every logical volume in the group.
    public func logicalVolumes() throws(StorageError) -> [LogicalVolume.Report] {
        let report = try lvm.report(LVMCommand("lvs", ["-qq", "-o", LogicalVolume.Report.fields, name]))
        return try report.rows("lv").map { row throws(StorageError) in try LogicalVolume.Report(row) }
    }

    /// The logical volume `logicalVolume`, or nil when the group has none of that name.
    public func logicalVolume(named logicalVolume: String) throws(StorageError) -> LogicalVolume.Report? {
        let report = try lvm.report(LVMCommand("lvs", ["-qq", "-o", LogicalVolume.Report.fields,
                                                       "-S", "lv_name=\(logicalVolume)", name]))
        return try report.rows("lv").filter { $0.fields["lv_name"] == logicalVolume }.first
            .map { row throws(StorageError) in try LogicalVolume.Report(row) }
    }

    /// A logical volume of this group, by name (whether or not it exists).
    public func logicalVolume(_ logicalVolume: String) -> LogicalVolume {
        LogicalVolume(volumeGroup: name, name: logicalVolume, lvm: lvm)
    }

    /// Creates a linear logical volume of `extents` extents. LVM's defaults apply: it is
    /// activated to zero its first 4 KiB and wipe stale signatures (when activation is
    /// available), and left active; callers deactivate it if they want it inactive. `--yes`
    /// answers LVM's "signature detected, wipe it?" for the new volume: what a previous VDI left
    /// in these extents must not show through.
    public func createLogicalVolume(named logicalVolume: String, extents: UInt64) throws(StorageError) -> LogicalVolume {
        try lvm.run(LVMCommand("lvcreate", ["-qq", "--yes", "--name", logicalVolume, "--extents", String(extents), name]))
        return self.logicalVolume(logicalVolume)
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
        let command = LVMCommand("pvs", ["-qq", "-o", "pv_name,vg_name", "--reportformat", "json", "--units", "b",
                                         "--nosuffix"] + devices)
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
            try lvm.run(LVMCommand("pvremove", ["-qq"] + orphans))
        }
        return orphans
    }
}
