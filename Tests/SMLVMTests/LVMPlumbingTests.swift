import Foundation
import Testing

@testable import SMCore
@testable import SMLVM

/// The LVM plumbing refuses what it cannot handle instead of crashing or splitting arguments:
/// JSON reports, command lines for liblvm2cmd's splitter, volume names, dconf device lists.
@Suite struct LVMPlumbingTests {
    /// An LVM JSON report decodes into rows, whatever log lines surround it.
    @Test func reportDecoding() throws {
        let lines = [
            "  WARNING: Activation disabled. No device-mapper interaction will be attempted.",
            "  {", "      \"report\": [", "          {", "              \"vg\": [",
            "                  {\"vg_name\":\"VG_a\", \"vg_size\":\"62914560\", \"vg_free\":\"\\u00e9\\\"x\"}",
            "              ]", "          }", "      ]", "  }", "  trailing line"
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
        for text in [
            "", "{", "[1,", "{\"a\": \"\\ud800\"}", "{\"a\": \"\u{01}\"}", "{\"a\" 1}", "{\"a\": 01x}",
            "{\"a\": \"\\q\"}", "{\"a\": \"\\u12G4\"}", "{\"a\": -}", "tru", "\"open",
            String(repeating: "[", count: 100_000)
        ] {
            // In a row's place, where the same text well formed would be a row: refused as JSON.
            if !text.isEmpty {
                let error = #expect(throws: StorageError.self, "\(text.prefix(40))") {
                    try LVMReport(json: Array("{\"report\": [{\"vg\": [\(text)]}]}".utf8), command: "vgs")
                }
                #expect(error?.message.contains("is not JSON") == true, "\(text.prefix(40)): \(String(describing: error))")
            }
            #expect(throws: StorageError.self, "\(text.prefix(40))") { try LVMReport(json: Array(text.utf8), command: "vgs") }
        }
        for body in [
            "\"report\": 1}", "\"report\": [{\"vg\": [[1]]}]}", "\"report\": [{\"vg\": [{\"a\": [1]}]}]}",
            "\"report\": [{\"vg\": 2}]}", "\"report\": [3]}", "\"report\": [{\"vg\": [", "\"other\": []}"
        ] {
            #expect(throws: StorageError.self, "\(body)") {
                try LVMReport(lines: ["  {", body], command: LVMCommand("vgs", []))
            }
        }
        #expect(throws: StorageError.self) { try LVMReport(lines: ["no report here"], command: LVMCommand("vgs", [])) }
        let scalars =
            "{\"report\": [{\"vg\": [{\"a\": 1, \"b\": -2.5, \"g\": -7, \"c\": true, \"d\": false, \"e\": null, \"f\": \"\\ud83d\\ude00\"}]}]}"
        #expect(
            try LVMReport(json: Array(scalars.utf8), command: "vgs").rows("vg").first?.fields
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
        let vdi = UUID().uuidString.lowercased()
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
