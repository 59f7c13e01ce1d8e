import Foundation
import Testing

/// Random command lines and dconf documents never crash FileSR: every run ends with 0 or one of
/// the spec's errno values, and a failure always ends stderr with `NAME: reason`.
@Suite struct FileSRRobustnessTests {
    static let specified: Set<Int32> = [0, 1, 5, 16, 17, 19, 22, 28, 37, 38]

    @Test(.timeLimit(.minutes(2))) func randomInvocations() throws {
        let f = try FileSRFixture()
        try f.createAndAttach()
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "4194304")
        var generator = SystemRandomNumberGenerator()
        let verbs = [
            "sr_create", "sr_delete", "sr_attach", "sr_detach", "sr_scan", "sr_content_type", "sr_check",
            "sr_gc", "vdi_create", "vdi_delete", "vdi_attach", "vdi_detach", "vdi_clone", "vdi_snapshot",
            "vdi_resize", "vdi_lock", "vdi_unlock", "help", "--help", "--verbose", "", "sr_scan\0"
        ]
        let tokens = [
            f.sr, vdi, newUUID(), f.sr.uppercased(), "0", "1", "-1", "4194304", "2190433320960",
            "99999999999999999999", "TRUE", "false", "maybe", "host:1", "../../etc", "", " ", "é", "\u{1}",
            String(repeating: "9", count: 300), "@-", "@/dev/null", "@/nonexistent"
        ]
        let dconfs = [
            f.dconf, "<dconf/>", "<dconf><location>/</location></dconf>", "<", "@-", "@/dev/null",
            "<dconf><location>\(f.location)</location><location>x</location></dconf>",
            "<a><location>\(f.location)</location></a>", "\u{0}", String(repeating: "<a>", count: 3000)
        ]
        for _ in 0..<150 {
            var arguments: [String] = []
            if Bool.random(using: &generator) { arguments.append(dconfs.randomElement(using: &generator)!) }
            arguments.append(verbs.randomElement(using: &generator)!)
            for _ in 0..<Int.random(in: 0...5, using: &generator) { arguments.append(tokens.randomElement(using: &generator)!) }
            arguments = arguments.map { $0.replacingOccurrences(of: "\0", with: "") }
            let result = try f.scratch.run("FileSR", arguments, input: Data("<dconf><location>\(f.location)</location></dconf>".utf8))
            #expect(Self.specified.contains(result.status), "\(arguments): \(result)")
            if result.status != 0 {
                let name = result.reason.split(separator: ":").first.map(String.init) ?? ""
                #expect(
                    ["EPERM", "EIO", "EBUSY", "EEXIST", "ENODEV", "EINVAL", "ENOSPC", "ENOLCK", "ENOSYS"].contains(name),
                    "\(arguments): \(result.reason)")
            }
        }
    }
}
