import Foundation
import Testing

/// The verbs a driver does not offer are declared once, in its `unsupportedVerbs` table: its
/// ENOSYS lines, its `--help` and Docs/drivers.md must all say the same.
@Suite struct DriversDocumentTests {
    static let drivers = ["FileSR", "EXTSR", "NFSSR", "LVMSR", "ISCSISR", "LVMoISCSISR", "EXToISCSISR", "RBDSR"]

    /// A dconf each driver accepts without touching anything (ENOSYS verbs run no substrate).
    static func dconf(_ driver: String, scratch: Scratch) -> String {
        let iscsi = "<target>127.0.0.1</target><targetIQN>iqn.2026-12.org.example:none</targetIQN>"
        switch driver {
        case "FileSR": return "<dconf><location>\(scratch.path("data"))</location></dconf>"
        case "EXTSR", "LVMSR": return "<dconf><device>/dev/sm-no-such-device</device></dconf>"
        case "NFSSR": return "<dconf><server>127.0.0.1</server><serverpath>/export/sm</serverpath></dconf>"
        case "ISCSISR": return "<dconf>\(iscsi)</dconf>"
        case "LVMoISCSISR", "EXToISCSISR": return "<dconf>\(iscsi)<LUNid>1</LUNid></dconf>"
        default:
            return
                "<dconf><monitors>127.0.0.1:6789</monitors><pool>sm</pool><user>none</user><key>AQBgXGxlAAAAABAAk4xQ3F0bGlHhqtAqIyc7mw==</key></dconf>"
        }
    }

    /// The "Unsupported verbs:" lines of a driver's --help: verb names and the reason.
    static func table(_ driver: String) throws -> [(verbs: [String], reason: String)] {
        let help = try Product.run(driver, ["--help"]).standardOutput
        guard let start = help.range(of: "\nUnsupported verbs:\n") else { return [] }
        return help[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false)
            .prefix { $0.hasPrefix("  ") }
            .compactMap { line -> (verbs: [String], reason: String)? in
                guard let separator = line.range(of: ": ENOSYS, ") else { return nil }
                let verbs = line[..<separator.lowerBound].trimmingCharacters(in: .whitespaces)
                return (verbs.components(separatedBy: ", "), String(line[separator.upperBound...]))
            }
    }

    /// Docs/drivers.md's generated table is what the built drivers' --help says
    /// (`Scripts/drivers-doc.py --check`; the script rewrites it).
    @Test func pageMatchesTheDrivers() throws {
        let result = try Product.runProgram(
            "python3", [Product.packageRoot.appendingPathComponent("Scripts/drivers-doc.py").path, "--check"],
            environment: ["SM_BIN_DIR": Product.binaryDirectory.path])
        #expect(result.status == 0, "\(result.standardOutput)\(result.standardError)")
    }

    /// Every verb a driver's --help lists as unsupported answers exactly `ENOSYS: <driver>
    /// <verb>: <reason>` (a `<placeholder>` of the table filled in by the call), and the LVM
    /// drivers give the same reasons.
    @Test(.timeLimit(.minutes(2))) func enosysLinesAreTheTable() throws {
        let scratch = try Scratch()
        var reasons: [String: [String: String]] = [:]
        for driver in Self.drivers {
            for (verbs, reason) in try Self.table(driver) {
                for verb in verbs {
                    reasons[driver, default: [:]][verb] = reason
                    let arguments = Self.arguments(verb)
                    let result = try scratch.run(driver, [Self.dconf(driver, scratch: scratch), verb] + arguments)
                    #expect(result.status == 38, "\(driver) \(verb): \(result)")
                    let expected = "ENOSYS: \(driver) \(verb): \(reason)"
                    if let placeholder = reason.range(of: "<") {
                        #expect(
                            result.reason.hasPrefix("ENOSYS: \(driver) \(verb): \(reason[..<placeholder.lowerBound])"), "\(result.reason)")
                        #expect(!result.reason.contains("<SR-UUID>"), "\(result.reason)")
                    } else {
                        #expect(result.reason == expected)
                    }
                }
            }
        }
        #expect(reasons["LVMSR"] != nil && reasons["LVMSR"] == reasons["LVMoISCSISR"])
        // The LVM table's own reason, not the default one; sr_gc and sr_check are implemented.
        #expect(reasons["LVMSR"]?["vdi_lock"]?.contains("no persistent VDI locks") == true)
        #expect(reasons["LVMSR"]?["sr_gc"] == nil && reasons["LVMSR"]?["sr_check"] == nil)
    }

    /// Arguments that the dispatcher accepts for `verb`.
    static func arguments(_ verb: String) -> [String] {
        let uuid = { UUID().uuidString.lowercased() }
        switch verb {
        case "sr_create": return [uuid(), "0"]
        case "sr_probe": return []
        case "vdi_create", "vdi_resize": return [uuid(), uuid(), "1048576"]
        case "vdi_clone", "vdi_snapshot": return [uuid(), uuid(), uuid()]
        case "vdi_lock": return [uuid(), uuid(), "false", "host1"]
        case "vdi_unlock": return [uuid(), uuid(), "host1"]
        case "vdi_export": return [uuid(), uuid(), "raw"]
        case "vdi_import": return [uuid(), uuid(), "raw", "1048576"]
        case let verb where verb.hasPrefix("vdi_"): return [uuid(), uuid()]
        default: return [uuid()]
        }
    }
}
