import SMCore

/// sr_probe for the LVM drivers (Docs/probe.md): the volume groups on the probed devices and
/// which of them are SRs (`VG_XenStorage-<SR-UUID>`), read with `pvs --readonly` (on-disk
/// metadata, no lock taken, nothing written or activated).
enum LVMProbe {
    /// The volume groups that `paths` (block devices) belong to, and each path's group ("" for a
    /// physical volume in none; absent for a device that is none).
    static func read(_ paths: [String], host: HostEnvironment) throws(StorageError) -> (
        groups: [ProbedVolumeGroup], membership: [String: String]
    ) {
        guard !paths.isEmpty else { return ([], [:]) }
        var numbers: [DeviceNumber: String] = [:]
        for path in paths { numbers[try BlockDevice(path: path).number] = path }
        let lvm = try LVMHandle(host: host)
        let report = try lvm.report(LVMCommand("pvs", ["--readonly", "-qq", "-o", "pv_name,vg_name,vg_size,vg_free"]))
        struct Row {
            var physicalVolume: String
            var group: String
            var size: UInt64
            var free: UInt64
        }
        var rows: [Row] = []
        for row in report.rows("pv") {
            let group = try row.text("vg_name")
            rows.append(
                Row(
                    physicalVolume: try row.text("pv_name"), group: group,
                    size: group.isEmpty ? 0 : try row.number("vg_size"), free: group.isEmpty ? 0 : try row.number("vg_free")))
        }
        var membership: [String: String] = [:]
        for row in rows {
            guard let number = try? BlockDevice(path: row.physicalVolume).number, let path = numbers[number] else { continue }
            membership[path] = row.group
        }
        let names = Set(membership.values.filter { !$0.isEmpty })
        let groups = names.sorted().compactMap { name -> ProbedVolumeGroup? in
            let members = rows.filter { $0.group == name }
            guard let first = members.first else { return nil }
            var group = ProbedVolumeGroup(
                name: name, size: first.size, free: first.free, physicalVolumes: members.map(\.physicalVolume).sorted())
            let suffix = name.split(separator: "-", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
            if let uuid = CanonicalUUID(suffix), LVMRepository.volumeGroupName(for: uuid) == name {
                group.sr = ProbedSR(uuid: uuid, driver: "LVMSR")
            }
            return group
        }
        return (groups, membership)
    }
}

extension LVMSR {
    /// Each device of the dconf (size, libblkid's signatures, its volume group) and the volume
    /// groups on them, `<sr>` in those that are SRs. ENODEV when a device is no block device.
    public static func probe(configuration: DeviceConfiguration, host: HostEnvironment) throws -> ProbeReport {
        let paths = try devices(try configuration.required("device"))
        var report = ProbeReport(driver: name)
        report.devices = try paths.map { path throws(StorageError) in try ProbedDevice.reading(path) }
        let (groups, membership) = try LVMProbe.read(paths, host: host)
        for index in report.devices.indices { report.devices[index].volumeGroup = membership[report.devices[index].path] }
        report.volumeGroups = groups
        return report
    }
}

extension LVMoISCSISR {
    /// ISCSISR's probe (targets; with targetIQN the LUNs), and the volume groups on the LUNs,
    /// read while the probe's session is there. `LUNid` is not needed.
    public static func probe(configuration: DeviceConfiguration, host: HostEnvironment) throws -> ProbeReport {
        try ISCSIProbe.probe(driver: name, configuration: configuration, host: host) { report throws(StorageError) in
            let (groups, membership) = try LVMProbe.read(report.luns.map(\.device.path), host: host)
            for index in report.luns.indices { report.luns[index].device.volumeGroup = membership[report.luns[index].device.path] }
            report.volumeGroups = groups
        }
    }
}
