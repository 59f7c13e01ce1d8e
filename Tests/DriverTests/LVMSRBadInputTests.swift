import Foundation
import Testing
@testable import SMCore
@testable import SMLVM

/// Bad input is EINVAL with no side effect, and the LVM plumbing (JSON reports, command lines)
/// refuses what it cannot handle instead of crashing or splitting arguments.
@Suite(.serialized) struct LVMSRBadInputTests {
    /// Malformed dconf device lists, an unusable lvm_config, bad UUIDs and sizes, a shrink: all
    /// EINVAL, the devices stay blank and no volume group appears.
    @Test(.timeLimit(.minutes(2))) func invalidArgumentsTouchNothing() throws {
        let f = try LVMSRFixture(devices: 2)
        defer { f.tearDown() }
        let (first, second) = (f.devices[0], f.devices[1])
        let link = f.scratch.path("data/same-device")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: first)
        for devices in ["", ",", "\(first),", "\(first),,\(second)", "dev/loop0", "\(first),\(first)",
                        "\(first) \(second)", "'\(first)'", "\(first),#x", "\(first),\(link)",
                        Array(repeating: first, count: 40).joined(separator: ",")] {
            f.dconfDevices = devices
            let result = try f.fails(22, "EINVAL", "sr_create", f.sr, "0")
            #expect(!result.reason.isEmpty, "\(devices)")
        }
        f.dconfDevices = "\(first),\(second)"
        f.scratch.environment["SM_LVM_CONFIG"] = "global{activation=0} devices{ filter = [ \"a|'|\" ] }"
        try f.fails(22, "EINVAL", "sr_create", f.sr, "0")
        f.scratch.environment["SM_LVM_CONFIG"] = LVMSRFixture.lvmConfiguration
        try f.fails(22, "EINVAL", "sr_create", "not-a-uuid", "0")
        try f.fails(22, "EINVAL", "sr_create", f.sr, "-1")
        try f.fails(22, "EINVAL", "sr_create", f.sr, "1e9")
        for device in f.devices { #expect(try LVMOracle.signatures(device).isEmpty, "\(device)") }
        #expect(try LVMOracle.volumeGroup(f.volumeGroup) == nil)

        try f.ok("sr_create", f.sr, "0")
        try f.ok("sr_attach", f.sr)
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, String(2 * LVMSRFixture.extent))
        try f.fails(22, "EINVAL", "vdi_create", f.sr, newUUID(), "0")
        try f.fails(22, "EINVAL", "vdi_create", f.sr, newUUID(), "0x100")
        try f.fails(22, "EINVAL", "vdi_create", f.sr, "\(vdi)x", "4194304")
        try f.fails(22, "EINVAL", "vdi_resize", f.sr, vdi, String(LVMSRFixture.extent))
        try f.fails(22, "EINVAL", "vdi_attach", f.sr)
        #expect(try f.expectScanAgreesWithLVM(vdis: 1)[vdi] == 2 * LVMSRFixture.extent)
    }

    /// An LVM JSON report decodes into rows, whatever log lines surround it.
    @Test func reportDecoding() throws {
        let lines = [
            "  WARNING: Activation disabled. No device-mapper interaction will be attempted.",
            "  {", "      \"report\": [", "          {", "              \"vg\": [",
            "                  {\"vg_name\":\"VG_a\", \"vg_size\":\"62914560\", \"vg_free\":\"\\u00e9\\\"x\"}",
            "              ]", "          }", "      ]", "  }", "  trailing line",
        ]
        let report = try LVMReport(lines: lines, command: LVMCommand("vgs", []))
        let row = try #require(report.rows("vg").first)
        #expect(try row.number("vg_size") == 62_914_560)
        #expect(try row.text("vg_free") == "é\"x")
        #expect(report.rows("lv").isEmpty)
        #expect(throws: StorageError.self) { try row.number("vg_free") }
        #expect(throws: StorageError.self) { try row.text("missing") }
    }

    /// Malformed, truncated or hostile JSON is an error saying where, never a crash (deep
    /// nesting included); a report of the wrong shape is an EIO message.
    @Test func hostileReports() throws {
        for text in ["", "{", "[1,", "{\"a\": \"\\ud800\"}", "{\"a\": \"\u{01}\"}", "{\"a\" 1}", "{\"a\": 01x}",
                     "{\"a\": \"\\q\"}", "{\"a\": \"\\u12G4\"}", "{\"a\": -}", "tru", "\"open",
                     String(repeating: "[", count: 100_000)] {
            // In a row's place, where the same text well formed would be a row: refused as JSON.
            if !text.isEmpty {
                let error = #expect(throws: StorageError.self, "\(text.prefix(40))") {
                    try LVMReport(json: Array("{\"report\": [{\"vg\": [\(text)]}]}".utf8), command: "vgs")
                }
                #expect(error?.message.contains("is not JSON") == true, "\(text.prefix(40)): \(String(describing: error))")
            }
            #expect(throws: StorageError.self, "\(text.prefix(40))") { try LVMReport(json: Array(text.utf8), command: "vgs") }
        }
        for body in ["\"report\": 1}", "\"report\": [{\"vg\": [[1]]}]}", "\"report\": [{\"vg\": [{\"a\": [1]}]}]}",
                     "\"report\": [{\"vg\": 2}]}", "\"report\": [3]}", "\"report\": [{\"vg\": [", "\"other\": []}"] {
            #expect(throws: StorageError.self, "\(body)") {
                try LVMReport(lines: ["  {", body], command: LVMCommand("vgs", []))
            }
        }
        #expect(throws: StorageError.self) { try LVMReport(lines: ["no report here"], command: LVMCommand("vgs", [])) }
        let scalars = "{\"report\": [{\"vg\": [{\"a\": 1, \"b\": -2.5, \"g\": -7, \"c\": true, \"d\": false, \"e\": null, \"f\": \"\\ud83d\\ude00\"}]}]}"
        #expect(try LVMReport(json: Array(scalars.utf8), command: "vgs").rows("vg").first?.fields
            == ["a": "1", "b": "-2.5", "g": "-7", "c": "1", "d": "0", "e": "", "f": "😀"])
    }

    /// Command lines survive liblvm2cmd's splitter: whitespace and leading quotes or `#` are
    /// quoted, a word with both quote characters or a NUL is refused, and so are over 64 words.
    @Test func commandLineQuoting() throws {
        #expect(try LVMCommand("lvs", ["-o", "lv_name", "VG/LV"]).line() == "lvs -o lv_name VG/LV")
        #expect(try LVMCommand.quote("global{activation=0}") == "global{activation=0}")
        #expect(try LVMCommand.quote("devices { filter = [\"a|.*|\"] }") == "'devices { filter = [\"a|.*|\"] }'")
        #expect(try LVMCommand.quote("it's") == "it's")
        #expect(try LVMCommand.quote("'x y") == "\"'x y\"")
        #expect(try LVMCommand.quote("#comment") == "'#comment'")
        #expect(try LVMCommand.quote("") == "''")
        #expect(throws: StorageError.self) { try LVMCommand.quote("a'b \"c\"") }
        #expect(throws: StorageError.self) { try LVMCommand.quote("a\u{0}b") }
        #expect(throws: StorageError.self) { try LVMCommand("vgcreate", Array(repeating: "x", count: 64)).line() }
        #expect(LVMCommand("vgs", []).configured("global{activation=0}").words == ["vgs", "--config", "global{activation=0}"])
    }

    /// Only `LV-<canonical lower-case UUID>` names are VDIs.
    @Test func logicalVolumeNames() {
        let vdi = newUUID()
        #expect(LVMRepository.vdi(fromLogicalVolume: "LV-\(vdi)")?.string == vdi)
        for name in ["LV-\(vdi.uppercased())", "lv-\(vdi)", "LV-\(vdi)x", "LV-", "swap", "LV-\(vdi.prefix(35))"] {
            #expect(LVMRepository.vdi(fromLogicalVolume: name) == nil, "\(name)")
        }
        #expect(LVMRepository.volumeGroupName(for: CanonicalUUID(vdi)!) == "VG_XenStorage-\(vdi)")
    }

    /// The dconf device list: commas, surrounding whitespace trimmed, everything else refused.
    @Test func deviceLists() throws {
        #expect(try LVMSR.devices("/dev/sdb") == ["/dev/sdb"])
        #expect(try LVMSR.devices(" /dev/sdb , /dev/disk/by-id/x ") == ["/dev/sdb", "/dev/disk/by-id/x"])
        for bad in ["", " ", "/dev/sdb,", "sdb", "/dev/sd b", "/dev/sdb,/dev/sdb", "/dev/\"sdb", "/dev/sdb\u{7}"] {
            #expect(throws: StorageError.self, "\(bad)") { try LVMSR.devices(bad) }
        }
    }
}
