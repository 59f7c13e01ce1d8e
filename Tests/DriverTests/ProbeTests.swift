import Foundation
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// sr_probe (Docs/probe.md) through the built drivers on this host: FileSR on a directory, EXTSR
/// on a loop device, LVMSR on loop devices with LVM metadata (activation off, as the other LVM
/// driver tests), the SR-less command line, and the iSCSI and NFS probes as far as they run
/// here (dconf checks; iSCSI discovery against the stand-in iscsiadm of ISCSIDriverTests, since
/// this kernel has no initiator). The real NFS and iSCSI probes run in the VM lane
/// (Tests/vm/groups/nfs-smoke.sh, iscsi-smoke.sh).
@Suite(.serialized) struct ProbeTests {
    /// A parsed `<probe>` document.
    struct Probe {
        let root: XMLElement

        init(_ result: ProductResult, sourceLocation: SourceLocation = #_sourceLocation) throws {
            #expect(result.status == 0, "sr_probe: \(result)", sourceLocation: sourceLocation)
            #expect(result.standardError.isEmpty, "sr_probe wrote to stderr: \(result.standardError)", sourceLocation: sourceLocation)
            root = try #require(try XMLDocument(xmlString: result.standardOutput, options: []).rootElement())
            #expect(root.name == "probe", sourceLocation: sourceLocation)
        }

        /// The direct children called `name`.
        func all(_ name: String) -> [XMLElement] { root.elements(forName: name) }
        var driver: String? { root.elements(forName: "driver").first?.stringValue }
    }

    static func text(_ element: XMLElement, _ name: String) -> String? { element.elements(forName: name).first?.stringValue }
    static func texts(_ element: XMLElement, _ name: String) -> [String] { element.elements(forName: name).compactMap(\.stringValue) }

    /// Every file below the scratch root (data, run, lock, mount): a probe changes none of them.
    static func everything(_ scratch: Scratch) -> [String: String] {
        ["data", "run", "lock", "mount"].reduce(into: [:]) { $0.merge(scratch.snapshot($1)) { a, _ in a } }
    }

    // MARK: The command line

    /// sr_probe takes no SR (`<Driver> <dconf> sr_probe`): any argument is EINVAL; the other
    /// verbs still need their SR-UUID; help lists sr_probe with no arguments.
    @Test func commandLine() throws {
        let scratch = try Scratch("probe-cli")
        let dconf = "<dconf><location>\(scratch.path("data"))</location></dconf>"
        expectFailure(try scratch.run("FileSR", [dconf, "sr_probe", newUUID()]), "EINVAL", 22, mentioning: ["no arguments"])
        expectFailure(try scratch.run("FileSR", [dconf, "sr_scan"]), "EINVAL", 22, mentioning: ["SR-UUID"])
        expectFailure(try scratch.run("FileSR", [dconf, "sr_scan", "not-a-uuid"]), "EINVAL", 22, mentioning: ["SR-UUID"])
        let help = try scratch.run("FileSR", ["--help"])
        #expect(help.standardOutput.contains("\n  sr_probe\n"))
        let verbHelp = try scratch.run("FileSR", ["help", "sr_probe"])
        #expect(verbHelp.standardOutput.hasPrefix("Usage: FileSR <dconf> sr_probe\n"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path("lock")).isEmpty, "a rejected call took a lock")
    }

    /// A driver that cannot probe answers ENOSYS with its table's reason (RBDSR), before it
    /// looks at the dconf.
    @Test func unsupportedIsENOSYS() throws {
        let scratch = try Scratch("probe-rbd")
        let result = try scratch.run("RBDSR", ["<dconf></dconf>", "sr_probe"])
        expectFailure(result, "ENOSYS", 38, mentioning: ["RBDSR sr_probe: not offered yet", "rbd namespace ls"])
        #expect(result.standardOutput.isEmpty)
    }

    // MARK: FileSR

    /// An empty location probes as a bare `<probe>`; after sr_create and two VDIs it lists that
    /// SR (path, two VDIs) and nothing else in the directory (a stray directory named by a UUID
    /// without `.sm`, a file); the probe writes nothing anywhere. A missing location is ENODEV,
    /// a relative one EINVAL.
    @Test(.timeLimit(.minutes(1))) func fileSR() throws {
        let scratch = try Scratch("probe-file")
        let location = scratch.path("data/srs")
        try FileManager.default.createDirectory(atPath: location, withIntermediateDirectories: true)
        let dconf = "<dconf><location>\(location)</location></dconf>"
        let empty = try Probe(try scratch.run("FileSR", [dconf, "sr_probe"]))
        #expect(empty.driver == "FileSR")
        #expect(empty.all("sr").isEmpty)

        let sr = newUUID()
        for arguments in [
            ["sr_create", sr, "0"], ["sr_attach", sr], ["vdi_create", sr, newUUID(), "1048576"], ["vdi_create", sr, newUUID(), "1"]
        ] {
            let result = try scratch.run("FileSR", [dconf] + arguments)
            #expect(result.status == 0, "\(arguments): \(result)")
        }
        try FileManager.default.createDirectory(atPath: "\(location)/\(newUUID())", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(location)/\(newUUID())"))

        let before = Self.everything(scratch)
        let probe = try Probe(try scratch.run("FileSR", [dconf, "sr_probe"]))
        #expect(Self.everything(scratch) == before, "sr_probe changed a file")
        let srs = probe.all("sr")
        try #require(srs.count == 1, "\(probe.root)")
        #expect(Self.text(srs[0], "uuid") == sr)
        #expect(Self.text(srs[0], "path") == "\(location)/\(sr)")
        #expect(Self.text(srs[0], "vdis") == "2")

        expectFailure(
            try scratch.run("FileSR", ["<dconf><location>\(location)/absent</location></dconf>", "sr_probe"]), "ENODEV", 19,
            mentioning: ["absent"])
        expectFailure(try scratch.run("FileSR", ["<dconf><location>srs</location></dconf>", "sr_probe"]), "EINVAL", 22)
        expectFailure(try scratch.run("FileSR", ["<dconf></dconf>", "sr_probe"]), "EINVAL", 22, mentioning: ["location"])
    }

    // MARK: EXTSR

    /// A blank device probes as a `<device>` with its size and no contents; a plain ext4
    /// filesystem is listed as contents but is no SR; after sr_create the device's `<sr>` is that
    /// SR, and nothing is mounted or written by the probe (the device's bytes are unchanged).
    @Test(.timeLimit(.minutes(2))) func extSR() throws {
        let f = try EXTSRFixture(size: 64 << 20)
        defer { f.tearDown() }
        func probe() throws -> XMLElement {
            let probe = try Probe(try f.run("sr_probe"))
            #expect(probe.driver == "EXTSR")
            let devices = probe.all("device")
            try #require(devices.count == 1, "\(probe.root)")
            #expect(Self.text(devices[0], "path") == f.loop.path)
            #expect(Self.text(devices[0], "size") == String(64 << 20))
            return devices[0]
        }
        let blank = try probe()
        #expect(Self.texts(blank, "contents").isEmpty)
        #expect(blank.elements(forName: "sr").isEmpty)

        #expect(try Product.runProgram("mkfs.ext4", ["-q", "-F", f.loop.path]).status == 0)
        let plain = try probe()
        #expect(Self.texts(plain, "contents").contains { $0.hasPrefix("ext4 filesystem") }, "\(plain)")
        #expect(plain.elements(forName: "sr").isEmpty, "a plain ext4 filesystem is no SR")

        let made = try f.run("sr_create", f.sr, "0", dconf: f.forcedDconf)
        #expect(made.status == 0, "\(made)")
        let checksum = { try Product.runProgram("sha256sum", [f.loop.path]).standardOutput }
        let before = try checksum()
        let found = try probe()
        #expect(try checksum() == before, "sr_probe wrote to the device")
        #expect(f.loop.mountPoints.isEmpty, "sr_probe left a mount")
        let sr = try #require(found.elements(forName: "sr").first, "\(found)")
        #expect(Self.text(sr, "uuid") == f.sr)
        #expect(Self.text(sr, "driver") == "EXTSR")

        expectFailure(try f.run("sr_probe", dconf: EXTSRFixture.dconf(device: f.scratch.path("data/none"))), "ENODEV", 19)
        expectFailure(try f.run("sr_probe", dconf: EXTSRFixture.dconf(device: "sdb")), "EINVAL", 22)
    }

    // MARK: LVMSR

    /// Two blank devices probe with no volume group; after sr_create over both, each device
    /// names the SR's group and the group (size and free as vgs reports them, both physical
    /// volumes) carries `<sr>`; a device in a foreign group shows that group without `<sr>`; the
    /// probe changes no LVM metadata (both groups' sequence numbers are the same after it).
    @Test(.timeLimit(.minutes(3))) func lvmSR() throws {
        let f = try LVMSRFixture(devices: 3)
        defer { f.tearDown() }
        let pair = "<dconf><device>\(f.devices[0]),\(f.devices[1])</device></dconf>"
        let blank = try Probe(try f.scratch.run("LVMSR", [pair, "sr_probe"]))
        #expect(blank.driver == "LVMSR")
        #expect(blank.all("device").count == 2)
        #expect(blank.all("device").allSatisfy { $0.elements(forName: "volume_group").isEmpty })
        #expect(blank.all("volume_group").isEmpty)

        f.dconfDevices = "\(f.devices[0]),\(f.devices[1])"
        try f.ok("sr_create", f.sr, "0")
        let foreign = "probe-foreign-\(newUUID().prefix(8))"
        f.otherVolumeGroups.append(foreign)
        #expect(try LVMOracle.lvm("vgcreate", [foreign, f.devices[2]]).status == 0)

        let all = "<dconf><device>\(f.devices.joined(separator: ","))</device></dconf>"
        // This test's two groups only: tests running beside it change their own groups' metadata.
        let sequence = {
            try (LVMOracle.report("vgs", section: "vg", ["-o", "vg_name,vg_seqno"]) ?? [])
                .filter { [f.volumeGroup, foreign].contains($0["vg_name"] ?? "") }
        }
        let before = try sequence()
        #expect(before.count == 2, "\(before)")
        let probe = try Probe(try f.scratch.run("LVMSR", [all, "sr_probe"]))
        #expect(try sequence() == before, "sr_probe changed LVM metadata")

        let groups = Dictionary(uniqueKeysWithValues: probe.all("volume_group").map { (Self.text($0, "name") ?? "", $0) })
        #expect(groups.keys.sorted() == [f.volumeGroup, foreign].sorted())
        let ours = try #require(groups[f.volumeGroup])
        let vgs = try #require(try LVMOracle.volumeGroup(f.volumeGroup))
        #expect(Self.text(ours, "size") == vgs["vg_size"])
        #expect(Self.text(ours, "free") == vgs["vg_free"])
        #expect(Self.texts(ours, "physical_volume") == [f.devices[0], f.devices[1]].sorted())
        let sr = try #require(ours.elements(forName: "sr").first)
        #expect(Self.text(sr, "uuid") == f.sr)
        #expect(try #require(groups[foreign]).elements(forName: "sr").isEmpty)
        let membership = Dictionary(
            uniqueKeysWithValues: probe.all("device").map { (Self.text($0, "path") ?? "", Self.text($0, "volume_group")) })
        #expect(membership == [f.devices[0]: f.volumeGroup, f.devices[1]: f.volumeGroup, f.devices[2]: foreign])
        #expect(probe.all("device").allSatisfy { Self.texts($0, "contents").contains { $0.hasPrefix("LVM2_member") } })

        expectFailure(
            try f.scratch.run("LVMSR", ["<dconf><device>\(f.devices[0]),\(f.scratch.path("data/none"))</device></dconf>", "sr_probe"]),
            "ENODEV", 19)
        expectFailure(
            try f.scratch.run("LVMSR", ["<dconf><device>\(f.devices[0]),\(f.devices[0])</device></dconf>", "sr_probe"]), "EINVAL", 22)
    }

    // MARK: iSCSI and NFS, as far as this host goes

    /// Without targetIQN the iSCSI drivers list the portal's targets from a sendtargets
    /// discovery that iscsiadm is told not to record (`-o nonpersistent`), a node record that
    /// appears anyway is deleted again (that record only: not another interface's record of the
    /// same target and portal), and nothing logs in;
    /// LUNid is not needed. Stand-in iscsiadm (ISCSIDriverTests.FakeInitiator): this host has no
    /// initiator; the real discovery and LUN listing are the VM lane's (iscsi-smoke.sh).
    @Test(.timeLimit(.minutes(1))) func iscsiTargets() throws {
        let fake = try ISCSIDriverTests.FakeInitiator(loginStatus: 0)
        for driver in ISCSIDriverTests.drivers {
            try? FileManager.default.removeItem(atPath: fake.argvLog)
            try? FileManager.default.removeItem(atPath: fake.nodeDirectory)
            // A record sr_attach made through its own interface, for the same target and portal:
            // the probe's record beside it is removed, it stays.
            let kept = "\(fake.nodeDirectory)/\(ISCSIDriverTests.iqn)/127.0.0.1,3260,1/sm-kept"
            try FileManager.default.createDirectory(
                atPath: (kept as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try "node.name = \(ISCSIDriverTests.iqn)\n".write(toFile: kept, atomically: true, encoding: .utf8)
            let probe = try Probe(try fake.scratch.run(driver, ["<dconf><target>127.0.0.1</target></dconf>", "sr_probe"]))
            #expect(probe.driver == driver)
            let targets = probe.all("target")
            try #require(targets.count == 1, "\(probe.root)")
            #expect(Self.text(targets[0], "iqn") == ISCSIDriverTests.iqn)
            #expect(Self.text(targets[0], "portal") == "127.0.0.1:3260")
            let argv = try String(contentsOfFile: fake.argvLog, encoding: .utf8)
            // The stand-in writes a node record at every discovery (a real nonpersistent one does
            // not): the probe removes what it finds new, and never logs in.
            #expect(
                argv == "-m discovery -t sendtargets -p 127.0.0.1:3260 -o nonpersistent\n"
                    + "-m node -T \(ISCSIDriverTests.iqn) -p 127.0.0.1:3260 -I default -o delete\n")
            #expect(FileManager.default.fileExists(atPath: kept))
        }
    }

    /// Bad iSCSI and NFS probe dconfs are EINVAL naming the key, with nothing run or written.
    @Test(.timeLimit(.minutes(1))) func badDconfTouchesNothing() throws {
        let fake = try ISCSIDriverTests.FakeInitiator(loginStatus: 0)
        let cases: [(String, String, String)] = [
            ("ISCSISR", "<dconf></dconf>", "target"),
            ("ISCSISR", "<dconf><target>-x</target></dconf>", "target"),
            ("LVMoISCSISR", "<dconf><target>127.0.0.1</target><port>0</port></dconf>", "port"),
            ("EXToISCSISR", "<dconf><target>127.0.0.1</target><targetIQN>nope</targetIQN></dconf>", "targetIQN"),
            (
                "ISCSISR", "<dconf><target>127.0.0.1</target><targetIQN>\(ISCSIDriverTests.iqn)</targetIQN><chapuser>u</chapuser></dconf>",
                "chappassword"
            ),
            ("NFSSR", "<dconf><serverpath>/srv</serverpath></dconf>", "server"),
            ("NFSSR", "<dconf><server>a b</server></dconf>", "server"),
            ("NFSSR", "<dconf><server>127.0.0.1</server><serverpath>srv</serverpath></dconf>", "serverpath"),
            ("NFSSR", "<dconf><server>127.0.0.1</server><nfsversion>5</nfsversion></dconf>", "nfsversion")
        ]
        for (driver, dconf, key) in cases {
            let result = try fake.scratch.run(driver, [dconf, "sr_probe"])
            expectFailure(result, "EINVAL", 22, mentioning: [key])
            #expect(result.standardOutput.isEmpty)
        }
        #expect(!FileManager.default.fileExists(atPath: fake.argvLog), "iscsiadm ran")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fake.scratch.path("run")).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: fake.scratch.path("mount")).isEmpty)
    }
}
