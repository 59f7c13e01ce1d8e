import Foundation
import Testing

/// The bad-input matrix: every case is EINVAL and nothing is created or changed on disk.
@Suite struct FileSRBadInputTests {
    static let sr = "87b8646b-b800-9500-cb7b-af3b74e02f5c"
    static let vdi = "98de866e-b035-4b1a-a571-613bff542b89"
    static let other = "11111111-2222-4333-8444-555555555555"

    /// Runs `arguments` against a prepared SR (attached, one VDI) and expects EINVAL with no
    /// change to the data directory or to the host state.
    func expectInvalid(_ f: FileSRFixture, _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = f.scratch.snapshot("data")
        let runBefore = f.scratch.snapshot("run")
        let locksBefore = f.scratch.snapshot("lock")
        let result = try f.scratch.run("FileSR", arguments)
        #expect(result.status == 22, "\(arguments.map { String($0.prefix(80)) }): \(result)", sourceLocation: sourceLocation)
        #expect(result.reason.hasPrefix("EINVAL: "), "\(result.reason)", sourceLocation: sourceLocation)
        #expect(result.standardOutput.isEmpty, sourceLocation: sourceLocation)
        #expect(f.scratch.snapshot("data") == before, "data changed for \(arguments.prefix(3))", sourceLocation: sourceLocation)
        #expect(f.scratch.snapshot("run") == runBefore, sourceLocation: sourceLocation)
        #expect(f.scratch.snapshot("lock") == locksBefore, sourceLocation: sourceLocation)
    }

    func prepared() throws -> FileSRFixture {
        let f = try FileSRFixture()
        #expect(try f.scratch.run("FileSR", [f.dconf, "sr_create", Self.sr, "0"]).status == 0)
        #expect(try f.scratch.run("FileSR", [f.dconf, "sr_attach", Self.sr]).status == 0)
        #expect(try f.scratch.run("FileSR", [f.dconf, "vdi_create", Self.sr, Self.vdi, "2097152"]).status == 0)
        return f
    }

    /// No arguments, unknown verbs and unknown options.
    @Test func commandLine() throws {
        let f = try prepared()
        try expectInvalid(f, [])
        try expectInvalid(f, [f.dconf])
        try expectInvalid(f, [f.dconf, "vdi_frobnicate", Self.sr])
        try expectInvalid(f, [f.dconf, "SR_SCAN", Self.sr])
        try expectInvalid(f, ["--bogus", f.dconf, "sr_scan", Self.sr])
    }

    /// Every verb with one argument too few and one too many.
    @Test func argumentCounts() throws {
        let f = try prepared()
        let valid: [String: [String]] = [
            "sr_create": [Self.other, "0"], "sr_delete": [Self.sr], "sr_attach": [Self.sr], "sr_detach": [Self.sr],
            "sr_scan": [Self.sr], "sr_content_type": [Self.sr], "sr_check": [Self.sr], "sr_gc": [Self.sr],
            "vdi_create": [Self.sr, Self.other, "2097152"], "vdi_delete": [Self.sr, Self.vdi],
            "vdi_attach": [Self.sr, Self.vdi], "vdi_detach": [Self.sr, Self.vdi],
            "vdi_clone": [Self.sr, Self.vdi, Self.other], "vdi_snapshot": [Self.sr, Self.vdi, Self.other],
            "vdi_resize": [Self.sr, Self.vdi, "4194304"], "vdi_lock": [Self.sr, Self.vdi, "TRUE", "host1"],
            "vdi_unlock": [Self.sr, Self.vdi, "host1"]
        ]
        for (verb, arguments) in valid {
            try expectInvalid(f, [f.dconf, verb] + arguments.dropLast())
            try expectInvalid(f, [f.dconf, verb] + arguments + [Self.other])
        }
    }

    /// Malformed XML, a DOCTYPE with entities (billion laughs), over 64 KiB, duplicate and missing keys.
    @Test func dconfDocuments() throws {
        let f = try prepared()
        let location = f.location
        let laughs = """
            <?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\
            <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><dconf><location>&lol3;</location></dconf>
            """
        let external = "<!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><dconf><location>&x;</location></dconf>"
        let huge = "<dconf><location>\(location)</location><pad>\(String(repeating: "x", count: 70_000))</pad></dconf>"
        let xinclude =
            "<dconf xmlns:xi=\"http://www.w3.org/2001/XInclude\"><location>\(location)</location><xi:include href=\"/etc/passwd\"/></dconf>"
        for dconf in [
            "<dconf><location>\(location)</location>", "not xml at all", "", laughs, external, huge, xinclude,
            "<dconf><location>\(location)</location><location>/tmp</location></dconf>",
            "<dconf><path>\(location)</path></dconf>", "<dconf><location></location></dconf>",
            "<dconf><location>relative/path</location></dconf>"
        ] {
            try expectInvalid(f, [dconf, "vdi_create", Self.sr, Self.other, "2097152"])
        }
    }

    /// A refused dconf never shows its text: with a CHAP secret in each secret key, mis-escaped
    /// (an undefined entity, a bare '&' or '<', bad bytes), duplicated or in an oversized
    /// document, the iSCSI drivers answer EINVAL and neither stderr (even with --verbose) nor the
    /// SMlog holds any part of the secret; inline, as a file and on stdin.
    @Test(.timeLimit(.minutes(2))) func refusedDconfNeverShowsASecret() throws {
        let scratch = try Scratch("secret")
        let secret = "S3cr3tXYZ42"
        let base = "<target>127.0.0.1</target><targetIQN>iqn.2007-10.test.sm:secret</targetIQN><chapuser>u</chapuser>"
        var documents: [String] = []
        for key in ["chappassword", "incoming_chappassword", "password"] {
            for value in ["&\(secret);", "\(secret)&x", "\(secret)<", "<\(secret)>", "&#x\(secret);", "\(secret)</\(secret)>"] {
                documents += ["<dconf><\(key)>\(value)</\(key)>\(base)</dconf>", "<dconf>\(base)<\(key)>\(value)</\(key)></dconf>"]
            }
            documents += [
                "<dconf>\(base)<\(key)>\(secret)</\(key)><\(key)>\(secret)</\(key)></dconf>",
                "<!DOCTYPE d [<!ENTITY \(secret) '\(secret)'>]><dconf>\(base)<\(key)>&\(secret);</\(key)></dconf>",
                "<dconf>\(base)<\(key)>\(secret)</\(key)><pad>\(String(repeating: "x", count: 70_000))</pad></dconf>",
                "<dconf>\(base)<\(key)>\(secret)\u{1}</\(key)></dconf>"
            ]
        }
        let file = scratch.path("secret.dconf")
        for (index, document) in documents.enumerated() {
            try document.write(toFile: file, atomically: true, encoding: .utf8)
            for driver in ["ISCSISR", "EXToISCSISR"] {
                let passes: [([String], Data?)] = [
                    ([document, "sr_attach", Self.sr], nil), (["--verbose", "@\(file)", "sr_attach", Self.sr], nil),
                    (["--verbose", "@-", "sr_attach", Self.sr], Data(document.utf8))
                ]
                for (arguments, input) in passes where document.utf8.count < 60_000 || arguments[0] != document {
                    let result = try scratch.run(driver, arguments, input: input)
                    #expect(result.status == 22, "document \(index): \(result)")
                    #expect(!result.standardError.contains("S3cr3t"), "document \(index): \(result.standardError)")
                    #expect(!result.standardOutput.contains("S3cr3t"))
                }
            }
        }
        let log = try String(contentsOfFile: scratch.path("SMlog"), encoding: .utf8)
        #expect(log.contains("EINVAL"))
        #expect(!log.contains("S3cr3t"), "\(log)")
    }

    /// Malformed UUIDs in every position.
    @Test func uuids() throws {
        let f = try prepared()
        for bad in [
            "../etc", "", "87b8646b-b800-9500-cb7b-af3b74e02f5", "87b8646b-b800-9500-cb7b af3b74e02f5c",
            "87b8646b-b800-9500-cb7b-af3b74e02f5c0", "zzb8646b-b800-9500-cb7b-af3b74e02f5c"
        ] {
            try expectInvalid(f, [f.dconf, "sr_scan", bad])
            try expectInvalid(f, [f.dconf, "vdi_create", Self.sr, bad, "2097152"])
            try expectInvalid(f, [f.dconf, "vdi_delete", bad, Self.vdi])
            try expectInvalid(f, [f.dconf, "vdi_snapshot", Self.sr, Self.vdi, bad])
        }
    }

    /// Sizes that are not plain decimal bytes, zero, or above 2040 GiB; Force that is not a boolean.
    @Test func sizesAndBooleans() throws {
        let f = try prepared()
        for bad in ["0", "-1", "1e9", "0x10", "18446744073709551616", String(UInt64(2041) << 30), "+5", " 5", "5 ", "1.5"] {
            try expectInvalid(f, [f.dconf, "vdi_create", Self.sr, Self.other, bad])
            try expectInvalid(f, [f.dconf, "vdi_resize", Self.sr, Self.vdi, bad])
        }
        for bad in ["-1", "1e9", "0x10", "18446744073709551616"] {
            try expectInvalid(f, [f.dconf, "sr_create", Self.other, bad])
        }
        for bad in ["maybe", "", "yes", "2"] {
            try expectInvalid(f, [f.dconf, "vdi_lock", Self.sr, Self.vdi, bad, "host1"])
        }
        for bad in ["", "a/b", "../x", String(repeating: "a", count: 129), "with space"] {
            try expectInvalid(f, [f.dconf, "vdi_lock", Self.sr, Self.vdi, "TRUE", bad])
        }
    }
}
