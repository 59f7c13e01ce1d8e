import Foundation
import Testing

/// FileSR through the built executable: the success path and the spec's idempotency.
@Suite struct FileSRLifecycleTests {
    static let gib: UInt64 = 1 << 30

    /// A realistic sequence (create, attach, three VDIs, resize, scan, detach, delete) succeeds and
    /// sr_scan reports real numbers in DESIGN.md's order.
    @Test func realisticSequence() throws {
        let f = try FileSRFixture()
        try f.createAndAttach()
        let vdis = [newUUID(), newUUID(), newUUID()]
        try f.ok("vdi_create", f.sr, vdis[0], "1073741824")
        try f.ok("vdi_create", f.sr, vdis[1], "1000")  // rounds up to 2 MiB
        try f.ok("vdi_create", f.sr, vdis[2], "10737418240")
        try f.ok("vdi_resize", f.sr, vdis[0], "3221225472")
        let scan = try ResultXML(f.ok("sr_scan", f.sr).standardOutput)
        // DESIGN.md's fields in its order, then the chain-health fields (Docs/chain-health.md).
        #expect(
            scan.order == [
                "uuid", "physical_utilisation", "virtual_allocation", "physical_size",
                "default_vdi_visibility", "label", "description", "gc_running", "pending_merges",
                "vdi", "vdi", "vdi"
            ])
        #expect(scan.value("gc_running") == "False")
        #expect(scan.value("pending_merges") == "0")
        #expect(scan.value("uuid") == f.sr)
        let expected: [String: UInt64] = [vdis[0]: 3 * Self.gib, vdis[1]: 2 << 20, vdis[2]: 10 * Self.gib]
        #expect(scan.value("virtual_allocation") == String(expected.values.reduce(0, +)))
        var statistics = statvfs()
        #expect(statvfs(f.root, &statistics) == 0)
        #expect(scan.value("physical_size") == String(UInt64(statistics.f_blocks) * UInt64(statistics.f_frsize)))
        var occupied: UInt64 = 0
        for entry in scan.vdis {
            #expect(
                entry.order == [
                    "uuid", "size", "utilisation", "locked", "label", "description", "shareable", "read_only",
                    "chain_depth", "coalesce_bytes"
                ])
            #expect(entry.fields["chain_depth"] == "1" && entry.fields["coalesce_bytes"] == "0")
            let uuid = try #require(entry.fields["uuid"])
            #expect(entry.fields["size"] == expected[uuid].map(String.init))
            var status = stat()
            #expect(stat(f.vhd(uuid), &status) == 0)
            #expect(entry.fields["utilisation"] == String(UInt64(status.st_blocks) * 512))
            occupied += UInt64(status.st_blocks) * 512
            #expect(entry.fields["locked"] == "False" && entry.fields["read_only"] == "False")
        }
        #expect(scan.value("physical_utilisation") == String(occupied))
        for vdi in vdis { try f.ok("vdi_delete", f.sr, vdi) }
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_delete", f.sr)
        #expect(!FileManager.default.fileExists(atPath: f.root))
    }

    /// vdi_attach prints the VHD's path and type; the SMlog gets one line per call.
    @Test func attachOutputAndLog() throws {
        let f = try FileSRFixture()
        try f.createAndAttach()
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "4194304")
        let attach = try f.ok("vdi_attach", f.sr, vdi)
        #expect(attach.standardOutput.hasPrefix("<?xml version=\"1.0\" ?>\n<sr>"))
        let xml = try ResultXML(attach.standardOutput)
        #expect(xml.value("path") == f.vhd(vdi))
        #expect(xml.value("type") == "vhd")
        let type = try ResultXML(f.ok("sr_content_type", f.sr).standardOutput)
        #expect(type.value("type") == "vhd")
        let log = try String(contentsOfFile: f.scratch.path("SMlog"), encoding: .utf8).split(separator: "\n")
        #expect(log.count == 5)
        #expect(log.last?.contains("FileSR") == true && log.last?.contains("sr_content_type \(f.sr) result=OK") == true)
        #expect(log[3].contains("vdi_attach \(f.sr) \(vdi) result=OK"))
    }

    /// Idempotent verbs repeat safely; sr_create and vdi_create a second time are EEXIST.
    @Test func idempotency() throws {
        let f = try FileSRFixture()
        try f.ok("sr_create", f.sr, "0")
        try f.fails(17, "EEXIST", "sr_create", f.sr, "0")
        try f.ok("sr_attach", f.sr)
        try f.ok("sr_attach", f.sr)
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "8388608")
        try f.fails(17, "EEXIST", "vdi_create", f.sr, vdi, "8388608")
        try f.ok("vdi_attach", f.sr, vdi)
        try f.ok("vdi_attach", f.sr, vdi)
        try f.ok("vdi_detach", f.sr, vdi)
        try f.ok("vdi_detach", f.sr, vdi)
        try f.ok("vdi_resize", f.sr, vdi, "16777216")
        try f.ok("vdi_resize", f.sr, vdi, "16777216")
        try f.ok("vdi_resize", f.sr, vdi, "16000000")  // rounds up to the same size
        try f.fails(22, "EINVAL", "vdi_resize", f.sr, vdi, "8388608")
        #expect(try VHDOracle.qemuVirtualSize(f.vhd(vdi)) == 16 << 20)
        try f.ok("vdi_delete", f.sr, vdi)
        try f.ok("vdi_delete", f.sr, vdi)
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_delete", f.sr)
        try f.ok("sr_delete", f.sr)
    }

    /// Upper-case UUIDs are accepted and stored lower-case.
    @Test func upperCaseUUIDs() throws {
        let f = try FileSRFixture()
        try f.ok("sr_create", f.sr.uppercased(), "0")
        try f.ok("sr_attach", f.sr)
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr.uppercased(), vdi.uppercased(), "2097152")
        #expect(FileManager.default.fileExists(atPath: f.vhd(vdi)))
    }

    /// The dconf can come from a file (@FILE) or stdin (@-).
    @Test func dconfFromFileAndStdin() throws {
        let f = try FileSRFixture()
        let file = f.scratch.path("local.dconf")
        try f.dconf.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try f.scratch.run("FileSR", ["@\(file)", "sr_create", f.sr, "0"]).status == 0)
        let viaStdin = try f.scratch.run("FileSR", ["@-", "sr_attach", f.sr], input: Data(f.dconf.utf8))
        #expect(viaStdin.status == 0, "\(viaStdin)")
        let missing = try f.scratch.run("FileSR", ["@/nonexistent/dconf", "sr_attach", f.sr])
        #expect(missing.status == 22 && missing.reason.hasPrefix("EINVAL: cannot read dconf file"))
    }

    /// --help and help <verb> explain the command line.
    @Test func helpAndVerbHelp() throws {
        let help = try Product.run("FileSR", ["--help"])
        #expect(help.status == 0)
        for verb in ["sr_create", "sr_scan", "vdi_create", "vdi_lock", "vdi_unlock"] {
            #expect(help.standardOutput.contains(verb))
        }
        #expect(help.standardOutput.contains("location"))
        let verbHelp = try Product.run("FileSR", ["help", "vdi_resize"])
        #expect(verbHelp.status == 0 && verbHelp.standardOutput.contains("new-size") && verbHelp.standardOutput.contains("EBUSY"))
        let bogus = try Product.run("FileSR", ["help", "vdi_bogus"])
        #expect(bogus.status == 22 && bogus.reason.hasPrefix("EINVAL: "))
    }
}
