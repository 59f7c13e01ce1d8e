import Foundation
import Testing

/// LVMSR through the built binary on real loop devices, with LVM's activation disabled by
/// `SM_LVM_CONFIG` (this kernel has no device-mapper; real activation is the VM lane's).
@Suite(.serialized) struct LVMSRLifecycleTests {
    /// Every verb on one PV, with `vgs`/`lvs` run independently agreeing with sr_scan after each
    /// step; the idempotent verbs repeated; sr_delete leaves the device without an LVM label.
    @Test(.timeLimit(.minutes(3))) func onePhysicalVolume() throws {
        let f = try LVMSRFixture(devices: 1)
        defer { f.tearDown() }
        try f.ok("sr_create", f.sr, "0")
        #expect(try LVMOracle.physicalVolumes(of: f.volumeGroup) == f.devices)
        try f.ok("sr_attach", f.sr)
        try f.ok("sr_attach", f.sr)
        try f.expectScanAgreesWithLVM(vdis: 0)

        let small = newUUID()
        let large = newUUID()
        try f.ok("vdi_create", f.sr, small, "1")
        try f.ok("vdi_create", f.sr, large, "10000000")
        let sizes = try f.expectScanAgreesWithLVM(vdis: 2)
        #expect(sizes[small] == LVMSRFixture.extent, "1 byte rounds up to one extent")
        #expect(sizes[large] == 3 * LVMSRFixture.extent, "10,000,000 bytes round up to three extents")

        let attach = try ResultXML(try f.ok("vdi_attach", f.sr, small).standardOutput)
        #expect(attach.value("path") == "/dev/\(f.volumeGroup)/LV-\(small)")
        #expect(attach.value("type") == "aio")
        let again = try ResultXML(try f.ok("vdi_attach", f.sr, small).standardOutput)
        #expect(again.value("path") == attach.value("path"))
        try f.ok("vdi_detach", f.sr, small)
        try f.ok("vdi_detach", f.sr, small)

        try f.ok("vdi_resize", f.sr, large, String(5 * LVMSRFixture.extent))
        try f.ok("vdi_resize", f.sr, large, String(5 * LVMSRFixture.extent))
        try f.ok("vdi_resize", f.sr, large, String(4 * LVMSRFixture.extent + 1))
        #expect(try f.expectScanAgreesWithLVM(vdis: 2)[large] == 5 * LVMSRFixture.extent)

        try f.ok("vdi_delete", f.sr, small)
        try f.ok("vdi_delete", f.sr, small)
        #expect(try f.expectScanAgreesWithLVM(vdis: 1).keys.sorted() == [large])
        try f.ok("vdi_delete", f.sr, large)
        try f.expectScanAgreesWithLVM(vdis: 0)

        try f.ok("sr_detach", f.sr)
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_delete", f.sr)
        #expect(try LVMOracle.volumeGroup(f.volumeGroup) == nil)
        #expect(try LVMOracle.signatures(f.devices[0]).isEmpty, "sr_delete removes the PV label")
        try f.ok("sr_delete", f.sr)
        #expect(!FileManager.default.fileExists(atPath: f.scratch.path("run/\(f.sr)")), "host state is forgotten")
    }

    /// A volume group over three PVs: a VDI larger than any one device spans them, sr_scan
    /// reports the group's whole size, and sr_delete clears all three labels.
    @Test(.timeLimit(.minutes(3))) func threePhysicalVolumes() throws {
        let f = try LVMSRFixture(devices: 3)
        defer { f.tearDown() }
        try f.ok("sr_create", f.sr, "0")
        #expect(try LVMOracle.physicalVolumes(of: f.volumeGroup).sorted() == f.devices.sorted())
        try f.ok("sr_attach", f.sr)
        let group = try #require(try LVMOracle.volumeGroup(f.volumeGroup))
        #expect(group["pv_count"] == "3")

        let wide = newUUID()
        try f.ok("vdi_create", f.sr, wide, String(100 << 20))
        let segments = try LVMOracle.devices(of: "\(f.volumeGroup)/LV-\(wide)")
        #expect(segments.count >= 2, "a 100 MiB VDI on 64 MiB devices spans devices: \(segments)")
        try f.expectScanAgreesWithLVM(vdis: 1)

        let rest = newUUID()
        let free = try #require(UInt64(group["vg_free"] ?? "")) - (100 << 20)
        try f.ok("vdi_create", f.sr, rest, String(free))
        try f.fails(28, "ENOSPC", "vdi_create", f.sr, newUUID(), "1")
        try f.expectScanAgreesWithLVM(vdis: 2)

        try f.ok("vdi_delete", f.sr, wide)
        try f.ok("vdi_delete", f.sr, rest)
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_delete", f.sr)
        for device in f.devices {
            #expect(try LVMOracle.signatures(device).isEmpty, "\(device) keeps no label")
        }
    }

    /// sr_content_type answers aio and lock and unlock answer ENOSYS, all without touching LVM:
    /// they work even with an LVM configuration LVM could not be given. Clone and snapshot of a
    /// raw VDI (an SR made without dconf vdi_type=vhd) are ENOSYS too, changing nothing.
    @Test(.timeLimit(.minutes(2))) func contentTypeAndUnsupportedVerbs() throws {
        let f = try LVMSRFixture(devices: 1)
        defer { f.tearDown() }
        try f.ok("sr_create", f.sr, "0")
        try f.ok("sr_attach", f.sr)
        let vdi = newUUID()
        let other = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "4194304")
        let before = try LVMOracle.logicalVolumes(of: f.volumeGroup)

        f.scratch.environment["SM_LVM_CONFIG"] = "global{ x = \"'\" }"
        let type = try ResultXML(try f.ok("sr_content_type", f.sr).standardOutput)
        #expect(type.value("type") == "aio")
        for (verb, arguments) in [("vdi_lock", [vdi, "FALSE", "host1"]), ("vdi_unlock", [vdi, "host1"])] {
            let result = try f.call(verb, [f.sr] + arguments)
            #expect(result.status == 38, "\(verb): \(result)")
            #expect(result.reason.hasPrefix("ENOSYS: LVMSR \(verb): not supported"), "\(verb): \(result.reason)")
        }
        try f.fails(22, "EINVAL", "sr_scan", f.sr)
        f.scratch.environment["SM_LVM_CONFIG"] = LVMSRFixture.lvmConfiguration
        for verb in ["vdi_clone", "vdi_snapshot"] {
            let result = try f.call(verb, [f.sr, vdi, other])
            #expect(result.status == 38, "\(verb): \(result)")
            #expect(result.reason.contains("VDI \(vdi) is a raw logical volume"), "\(verb): \(result.reason)")
        }
        #expect(try LVMOracle.logicalVolumes(of: f.volumeGroup) == before)
        try f.expectScanAgreesWithLVM(vdis: 1)
    }

    /// Callers running at once (admins and scripts do) never corrupt the SR: eight vdi_creates
    /// in parallel all land, eight vdi_deletes in parallel all go, and LVM agrees with sr_scan.
    @Test(.timeLimit(.minutes(3))) func concurrentCallers() throws {
        let f = try LVMSRFixture(devices: 1, megabytes: 128)
        defer { f.tearDown() }
        try f.createAndAttach()
        let vdis = (0..<8).map { _ in newUUID() }
        let (sr, dconf, environment) = (f.sr, f.dconf, f.scratch.environment)
        for verb in ["vdi_create", "vdi_delete"] {
            let statuses = Statuses(count: vdis.count)
            DispatchQueue.concurrentPerform(iterations: vdis.count) { index in
                let arguments = [dconf, verb, sr, vdis[index]] + (verb == "vdi_create" ? ["4194304"] : [])
                statuses.set(index, (try? Product.run("LVMSR", arguments, environment: environment))?.status ?? -1)
            }
            #expect(statuses.all == Array(repeating: 0, count: vdis.count), "\(verb): \(statuses.all)")
            let listed = try f.expectScanAgreesWithLVM(vdis: verb == "vdi_create" ? vdis.count : 0)
            #expect(Set(listed.keys) == (verb == "vdi_create" ? Set(vdis) : []))
        }
    }

    /// The same SR seen through a symlink to its device works, and sr_attach on another host's
    /// fresh state (no attach record) needs only the group: the SR lives in LVM, not in /run.
    @Test(.timeLimit(.minutes(2))) func stateLivesInLVM() throws {
        let f = try LVMSRFixture(devices: 1)
        defer { f.tearDown() }
        let vdi = try f.createAndAttach(vdiSize: 4 << 20)
        try FileManager.default.removeItem(atPath: f.scratch.path("run"))
        try f.fails(19, "ENODEV", "sr_scan", f.sr)
        let link = f.scratch.path("data/pv-link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: f.devices[0])
        f.dconfDevices = link
        try f.ok("sr_attach", f.sr)
        #expect(try f.expectScanAgreesWithLVM(vdis: 1).keys.sorted() == [vdi])
    }
}

/// Loop devices over sparse files in a scratch directory, an SR UUID for them, and the LVMSR
/// command line with `SM_LVM_CONFIG` disabling activation. `tearDown` (also run by `deinit`)
/// removes the test's volume groups, PV labels, LVM metadata backups and loop devices, so a
/// failing test leaves nothing behind.
final class LVMSRFixture {
    static let lvmConfiguration = "global{activation=0}"
    /// LVM's default extent size.
    static let extent: UInt64 = 4 << 20

    let scratch: Scratch
    let sr = newUUID()
    private var loopDevices: [LoopDevice] = []
    let devices: [String]
    var dconfDevices: String
    var dconf: String { "<dconf><device>\(dconfDevices)</device></dconf>" }
    var volumeGroup: String { "VG_XenStorage-\(sr)" }
    /// Other volume groups a test made, removed at tear-down.
    var otherVolumeGroups: [String] = []
    private var tornDown = false

    init(devices count: Int, megabytes: UInt64 = 64) throws {
        scratch = try Scratch("lvmsr")
        scratch.environment["SM_LVM_CONFIG"] = Self.lvmConfiguration
        for _ in 0..<count {
            loopDevices.append(try LoopDevice(size: megabytes << 20, in: scratch.path("data")))
        }
        devices = loopDevices.map(\.path)
        dconfDevices = devices.joined(separator: ",")
    }

    deinit { tearDown() }

    func tearDown() {
        guard !tornDown else { return }
        tornDown = true
        for group in [volumeGroup] + otherVolumeGroups {
            _ = try? LVMOracle.lvm("vgremove", ["--force", "--yes", group])
            let archives = (try? FileManager.default.contentsOfDirectory(atPath: "/etc/lvm/archive")) ?? []
            for name in archives where name.hasPrefix(group + "_") {
                try? FileManager.default.removeItem(atPath: "/etc/lvm/archive/\(name)")
            }
            try? FileManager.default.removeItem(atPath: "/etc/lvm/backup/\(group)")
        }
        if !devices.isEmpty {
            _ = try? LVMOracle.lvm("pvremove", ["--force", "--force", "--yes"] + devices)
        }
        loopDevices.forEach { $0.release() }
    }

    func call(_ verb: String, _ arguments: [String]) throws -> ProductResult {
        try scratch.run("LVMSR", [dconf, verb] + arguments)
    }

    /// Runs the verb and expects success with nothing on stderr (LVM's chatter stays inside).
    @discardableResult
    func ok(_ verb: String, _ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> ProductResult {
        let result = try call(verb, arguments)
        #expect(result.status == 0, "\(verb) \(arguments): \(result)", sourceLocation: sourceLocation)
        #expect(result.standardError.isEmpty, "\(verb) wrote to stderr: \(result.standardError)", sourceLocation: sourceLocation)
        return result
    }

    /// Runs the verb and expects errno `status`, its name on the only stderr line, and nothing on stdout.
    @discardableResult
    func fails(
        _ status: Int32, _ name: String, _ verb: String, _ arguments: String...,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> ProductResult {
        let result = try call(verb, arguments)
        #expect(result.status == status, "\(verb) \(arguments): \(result)", sourceLocation: sourceLocation)
        #expect(result.reason.hasPrefix("\(name): "), "\(verb): \(result.reason)", sourceLocation: sourceLocation)
        #expect(
            result.standardError.split(separator: "\n").count == 1, "\(verb): \(result.standardError)",
            sourceLocation: sourceLocation)
        #expect(result.standardOutput.isEmpty, sourceLocation: sourceLocation)
        return result
    }

    /// sr_create + sr_attach, and a first VDI of `size` bytes when asked; returns that VDI.
    @discardableResult
    func createAndAttach(vdiSize size: UInt64? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try ok("sr_create", sr, "0", sourceLocation: sourceLocation)
        try ok("sr_attach", sr, sourceLocation: sourceLocation)
        let vdi = newUUID()
        if let size { try ok("vdi_create", sr, vdi, String(size), sourceLocation: sourceLocation) }
        return vdi
    }

    /// sr_scan, checked against `vgs` and `lvs` run independently: physical_size is the group's
    /// size, physical_utilisation its allocated bytes, each VDI one `LV-<uuid>` of the same size,
    /// virtual_allocation their sum. Returns VDI -> size.
    @discardableResult
    func expectScanAgreesWithLVM(vdis count: Int, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: UInt64] {
        let scan = try ResultXML(try ok("sr_scan", sr, sourceLocation: sourceLocation).standardOutput)
        let group = try #require(try LVMOracle.volumeGroup(volumeGroup), sourceLocation: sourceLocation)
        let size = try #require(UInt64(group["vg_size"] ?? ""), sourceLocation: sourceLocation)
        let free = try #require(UInt64(group["vg_free"] ?? ""), sourceLocation: sourceLocation)
        #expect(scan.value("uuid") == sr, sourceLocation: sourceLocation)
        #expect(scan.value("physical_size") == String(size), sourceLocation: sourceLocation)
        #expect(scan.value("physical_utilisation") == String(size - free), sourceLocation: sourceLocation)
        var expected: [String: UInt64] = [:]
        for (name, bytes) in try LVMOracle.logicalVolumes(of: volumeGroup) where name.hasPrefix("LV-") {
            expected[String(name.dropFirst(3))] = bytes
        }
        var reported: [String: UInt64] = [:]
        for vdi in scan.vdis {
            reported[vdi.fields["uuid"] ?? ""] = UInt64(vdi.fields["size"] ?? "")
            #expect(
                vdi.fields["utilisation"] == vdi.fields["size"], "thick: utilisation is the size",
                sourceLocation: sourceLocation)
            #expect(vdi.fields["read_only"] == "False" && vdi.fields["locked"] == "False", sourceLocation: sourceLocation)
        }
        #expect(reported == expected, sourceLocation: sourceLocation)
        #expect(reported.count == count, sourceLocation: sourceLocation)
        #expect(scan.value("virtual_allocation") == String(expected.values.reduce(0, +)), sourceLocation: sourceLocation)
        return reported
    }
}

/// LVM's own command-line tools, run as child processes of the test (never of the driver), to
/// check what the driver did; and blkid for what is on a device.
enum LVMOracle {
    static func lvm(_ command: String, _ arguments: [String]) throws -> ProductResult {
        try Product.runProgram(
            "lvm", [command, "--config", LVMSRFixture.lvmConfiguration] + arguments,
            environment: ["LVM_SUPPRESS_FD_WARNINGS": "1"])
    }

    /// JSON report rows of `vgs`/`lvs`/`pvs`, in bytes.
    static func report(_ command: String, section: String, _ arguments: [String]) throws -> [[String: String]]? {
        let result = try lvm(command, ["--reportformat", "json", "--units", "b", "--nosuffix"] + arguments)
        guard result.status == 0 else { return nil }
        let object = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any]
        let entries = object?["report"] as? [[String: Any]] ?? []
        return entries.flatMap { ($0[section] as? [[String: String]]) ?? [] }
    }

    /// The group's `vgs` row, nil when it does not exist.
    static func volumeGroup(_ name: String) throws -> [String: String]? {
        try report("vgs", section: "vg", ["-o", "vg_name,vg_size,vg_free,pv_count,lv_count", name])?.first
    }

    /// Logical volume name -> size in bytes.
    static func logicalVolumes(of group: String) throws -> [String: UInt64] {
        let rows = try report("lvs", section: "lv", ["-o", "lv_name,lv_size", group]) ?? []
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["lv_name"] ?? "", UInt64($0["lv_size"] ?? "") ?? 0) })
    }

    static func physicalVolumes(of group: String) throws -> [String] {
        let rows = try report("pvs", section: "pv", ["-o", "pv_name,vg_name", "-S", "vg_name=\(group)"]) ?? []
        return rows.compactMap { $0["pv_name"] }
    }

    /// The devices a logical volume's segments live on.
    static func devices(of logicalVolume: String) throws -> [String] {
        let rows = try report("lvs", section: "lv", ["-o", "lv_name,devices", logicalVolume]) ?? []
        return rows.flatMap { ($0["devices"] ?? "").split(separator: ",").map(String.init) }
    }

    /// What `blkid -p` finds on a device (TYPE values), empty for a blank one.
    static func signatures(_ device: String) throws -> [String] {
        let result = try Product.runProgram("blkid", ["-p", "-o", "export", device])
        return result.standardOutput.split(separator: "\n").filter { $0.hasPrefix("TYPE=") || $0.hasPrefix("PTTYPE=") }
            .map(String.init)
    }
}

/// Exit statuses collected from parallel callers.
final class Statuses: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int32]

    init(count: Int) { values = Array(repeating: -2, count: count) }

    func set(_ index: Int, _ value: Int32) { lock.withLock { values[index] = value } }
    var all: [Int32] { lock.withLock { values } }
}
