import Foundation
import SMCore
import Testing

/// vdi_export and vdi_import of VHD VDIs on an LVM SR (dconf vdi_type=vhd, Docs/export.md), on
/// loop devices with LVM's activation disabled: everything decided before a volume is read or
/// written (the refusals, the space check, that nothing is left behind). The round trips that
/// read and write the VHDs on activated volumes are the VM lane's `lvm-export` group.
@Suite(.serialized) struct LVMExportTests {
    static func dconf(_ f: LVMSRFixture) -> String { f.vhdDconf() }

    /// A VHD SR of one loop device, made and attached.
    func vhdSR(megabytes: UInt64 = 64) throws -> LVMSRFixture { try LVMSRFixture.vhdSR(megabytes: megabytes) }

    /// Runs `command` in /bin/sh with the fixture's environment; `$LVMSR` and `$DCONF` are set.
    func shell(_ f: LVMSRFixture, _ command: String) throws -> ProductResult {
        var environment = f.scratch.environment
        environment["LVMSR"] = Product.path("LVMSR")
        environment["DCONF"] = Self.dconf(f)
        return try Product.runProgram("/bin/sh", ["-c", command], environment: environment)
    }

    /// A VDI volume as vdi_create leaves it: tags only (no VHD can be written without activation).
    func plant(_ f: LVMSRFixture, _ name: String, size: UInt64 = 8 << 20, hidden: Bool = false) throws {
        var tags = ["sm_type=vhd", "sm_vsize=\(size)"]
        if hidden { tags.append("sm_hidden") }
        let result = try LVMOracle.lvm(
            "lvcreate", ["--yes", "-an", "-Zn", "-L", "4m", "-n", name] + tags.flatMap { ["--addtag", $0] } + [f.volumeGroup])
        #expect(result.status == 0, "lvcreate \(name): \(result)")
    }

    func volumeNames(_ f: LVMSRFixture) throws -> Set<String> { Set(try LVMOracle.logicalVolumes(of: f.volumeGroup).keys) }

    func groupTags(_ f: LVMSRFixture) throws -> [String] {
        let row = try LVMOracle.report("vgs", section: "vg", ["-o", "vg_tags", f.volumeGroup])?.first
        return (row?["vg_tags"] ?? "").split(separator: ",").map(String.init)
    }

    /// Expects errno `status` with `text` in the one-line reason, nothing on stdout, and the
    /// group as it was: these volumes, no intent record.
    func expectRefused(
        _ f: LVMSRFixture, _ result: ProductResult, _ status: Int32, _ text: String, volumes: Set<String>,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(result.status == status, "\(result)", sourceLocation: sourceLocation)
        #expect(result.reason.contains(text), "\(result.reason)", sourceLocation: sourceLocation)
        #expect(result.standardOutput.isEmpty, sourceLocation: sourceLocation)
        #expect(try volumeNames(f) == volumes, sourceLocation: sourceLocation)
        #expect(try !groupTags(f).contains { $0.hasPrefix("sm_intent=") }, sourceLocation: sourceLocation)
    }

    /// vdi_export of a VHD VDI reads its chain through the VHD engine on activated volumes: with
    /// activation disabled that is EIO naming the reason, never the volume's raw bytes; a hidden
    /// or missing VDI is ENODEV, a bad format EINVAL, each with nothing written to stdout.
    @Test(.timeLimit(.minutes(2))) func exportRefusals() throws {
        let f = try vhdSR()
        defer { f.tearDown() }
        let (vdi, hidden) = (newUUID(), newUUID())
        try plant(f, "LV-\(vdi)")
        try plant(f, "LV-\(hidden)", hidden: true)
        let volumes: Set = ["LV-\(vdi)", "LV-\(hidden)"]
        let out = f.scratch.path("out")
        let export = try shell(f, "\"$LVMSR\" \"$DCONF\" vdi_export \(f.sr) \(vdi) raw > \(out)")
        try expectRefused(f, export, 5, "LVM activation is disabled", volumes: volumes)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)).isEmpty, "a refused export wrote data")
        for format in ["raw", "vhd"] {
            try expectRefused(
                f, try shell(f, "\"$LVMSR\" \"$DCONF\" vdi_export \(f.sr) \(hidden) \(format) > \(out)"), 19, hidden, volumes: volumes)
            let missing = newUUID()
            try expectRefused(
                f, try shell(f, "\"$LVMSR\" \"$DCONF\" vdi_export \(f.sr) \(missing) \(format) > \(out)"), 19, missing, volumes: volumes)
        }
        try expectRefused(f, try shell(f, "\"$LVMSR\" \"$DCONF\" vdi_export \(f.sr) \(vdi) qcow2 > \(out)"), 22, "qcow2", volumes: volumes)
    }

    /// vdi_import into a VHD SR: a bad stream is EINVAL, an existing VDI EEXIST, a stream whose
    /// inflated volume the group cannot hold ENOSPC (a raw stream counts every block; a sparse
    /// VHD stream only its blocks of data, so the same size passes the check as vhd), and with
    /// activation disabled the VHD cannot be written (EIO): each leaves no volume, no temporary
    /// and no intent record.
    @Test(.timeLimit(.minutes(3))) func importRefusals() throws {
        let f = try vhdSR()
        defer { f.tearDown() }
        let existing = newUUID()
        try plant(f, "LV-\(existing)")
        let volumes: Set = ["LV-\(existing)"]
        let garbage = f.scratch.path("garbage")
        try Data(repeating: 0x5A, count: 4096).write(to: URL(fileURLWithPath: garbage))
        try expectRefused(
            f, try shell(f, "\"$LVMSR\" \"$DCONF\" vdi_import \(f.sr) \(newUUID()) vhd 0 < \(garbage)"), 22, "not a dynamic VHD",
            volumes: volumes)
        try expectRefused(
            f, try shell(f, "\"$LVMSR\" \"$DCONF\" vdi_import \(f.sr) \(existing) raw 4096 < \(garbage)"), 17, existing,
            volumes: volumes)

        // 1 GiB raw: every block may hold data, far more than the 64 MiB group.
        let big = f.scratch.path("big.raw")
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        try FileHandle(forWritingTo: URL(fileURLWithPath: big)).truncate(atOffset: 1 << 30)
        try expectRefused(
            f, try shell(f, "\"$LVMSR\" \"$DCONF\" vdi_import \(f.sr) \(newUUID()) raw \(1 << 30) < \(big)"), 28,
            "vdi_import of VDI", volumes: volumes)

        // The same 1 GiB as an empty dynamic VHD: no blocks of data, so the space check passes and
        // the write is what fails (no device without activation).
        let sparse = f.scratch.path("sparse.vhd")
        let made = try Product.runProgram("qemu-img", ["create", "-q", "-f", "vpc", "-o", "subformat=dynamic", sparse, "1G"])
        #expect(made.status == 0, "qemu-img create: \(made)")
        try expectRefused(
            f, try shell(f, "\"$LVMSR\" \"$DCONF\" vdi_import \(f.sr) \(newUUID()) vhd 0 < \(sparse)"), 5,
            "LVM activation is disabled", volumes: volumes)
        let small = f.scratch.path("small.raw")
        try Data(repeating: 7, count: 3 << 20).write(to: URL(fileURLWithPath: small))
        try expectRefused(
            f, try shell(f, "\"$LVMSR\" \"$DCONF\" vdi_import \(f.sr) \(newUUID()) raw \(3 << 20) < \(small)"), 5,
            "LVM activation is disabled", volumes: volumes)
    }
}
