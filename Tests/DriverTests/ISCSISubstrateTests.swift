import Foundation
import Testing

@testable import SMCore

/// The pieces of the iSCSI substrate that need no initiator: hashing, UUID derivation, dconf
/// validation, discovery parsing and the node-record rewrite that carries the CHAP password.
@Suite struct ISCSISubstrateTests {
    /// SHA-1 matches the FIPS 180 examples, including a two-block message and the empty one.
    @Test func sha1KnownAnswers() {
        func hex(_ text: String) -> String { SHA1.digest(Array(text.utf8)).map { String(format: "%02x", $0) }.joined() }
        #expect(hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(hex(String(repeating: "a", count: 1000)) == "291e9a6c66994949b57ba5e650361e98fc36b1ba")
    }

    /// Name-based UUIDs agree with RFC 9562's version 5 (Python's uuid5 of python.org, and RFC
    /// 9562's own example www.example.com, in the DNS namespace), and an ISCSISR VDI UUID depends
    /// only on the SCSI id.
    @Test func nameBasedUUIDs() {
        let dns = CanonicalUUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")!
        #expect(CanonicalUUID.nameBased(namespace: dns, name: "python.org").string == "886313e1-3b8a-5372-9b90-0c9aee199e5d")
        #expect(CanonicalUUID.nameBased(namespace: dns, name: "www.example.com").string == "2ed6657d-e927-568b-95e1-2665a8aea6a2")
        // libuuid's result is RFC 9562's construction: SHA-1 of namespace and name, 16 bytes, version and variant set.
        for index in 0..<100 {
            let name = String(repeating: "lun-\(index)/é", count: index)
            var expected = Array(SHA1.digest(dns.bytes + Array(name.utf8)).prefix(16))
            expected[6] = (expected[6] & 0x0F) | 0x50
            expected[8] = (expected[8] & 0x3F) | 0x80
            #expect(CanonicalUUID.nameBased(namespace: dns, name: name) == CanonicalUUID(bytes: expected))
        }
        let first = ISCSISR.vdiUUID(scsiIdentifier: "360000000000000000e00000000010001")
        #expect(first == ISCSISR.vdiUUID(scsiIdentifier: "360000000000000000e00000000010001"))
        #expect(first != ISCSISR.vdiUUID(scsiIdentifier: "360000000000000000e00000000010002"))
        #expect(first.string.dropFirst(14).first == "5")
    }

    /// Valid iSCSI dconfs parse with their defaults; every malformed key is EINVAL naming the key,
    /// and a bad CHAP password is refused without being echoed.
    @Test func dconfValidation() throws {
        let base = ["target": "10.0.0.5", "targetIQN": "iqn.2007-10.com.example:disks"]
        let plain = try ISCSITarget(configuration: DeviceConfiguration(values: base))
        #expect(plain.port == 3260 && plain.chap == nil && plain.initiatorIQN == nil && plain.discoveryNumber == nil)
        var full = base
        full.merge([
            "port": "3261", "localIQN": "iqn.2007-10.com.example:host1", "chapuser": "u",
            "chappassword": "p4ss", "usediscoverynumber": "1", "target": "[fe80::1]"
        ]) { $1 }
        let parsed = try ISCSITarget(configuration: DeviceConfiguration(values: full))
        #expect(parsed.port == 3261 && parsed.address == "fe80::1" && parsed.discoveryNumber == 1)
        #expect(parsed.chap == ISCSITarget.Credentials(user: "u", password: "p4ss"))
        let bad: [(String, String)] = [
            ("target", "-o"), ("target", "a b"), ("target", "x/y"), ("target", ""), ("targetIQN", "disks"),
            ("targetIQN", "iqn.2007-10.x/../y"), ("targetIQN", "iqn."), ("localIQN", "iqn.a b"), ("port", "0"),
            ("port", "65536"), ("port", "+1"), ("port", "0x10"), ("usediscoverynumber", "-1"), ("chapuser", "u")
        ]
        for (key, value) in bad {
            var values = base
            values[key] = value
            #expect(throws: StorageError.self, "\(key)=\(value)") { try ISCSITarget(configuration: DeviceConfiguration(values: values)) }
        }
        for secret in ["has space", "new\nline", "tab\there", String(repeating: "x", count: 256)] {
            var values = base
            values["chapuser"] = "u"
            values["chappassword"] = secret
            let outcome = Result { try ISCSITarget(configuration: DeviceConfiguration(values: values)) }
            guard case .failure(let failure) = outcome, let error = failure as? StorageError else {
                Issue.record("accepted a bad password")
                continue
            }
            let (code, message) = (error.code, error.message)
            #expect(code == .invalidArgument)
            #expect(!message.contains(String(secret.prefix(8))))
        }
        var onlyPassword = base
        onlyPassword["chappassword"] = "p"
        #expect(throws: StorageError.self) { try ISCSITarget(configuration: DeviceConfiguration(values: onlyPassword)) }
    }

    /// LUNid lists: numbers, commas, whitespace; one LUN where one is required.
    @Test func lunLists() throws {
        #expect(try ISCSITarget.lunNumbers(" 1, 2 ,3", single: false) == [1, 2, 3])
        #expect(try ISCSITarget.lunNumbers("0", single: true) == [0])
        for bad in ["", "1,", "1,1", "a", "-1", "16384", "1 2", "1,2"] {
            #expect(throws: StorageError.self, "\(bad)") { try ISCSITarget.lunNumbers(bad, single: bad != "1,2" ? false : true) }
        }
    }

    /// Discovery lines parse into portals (IPv4 and bracketed IPv6); anything else is skipped.
    @Test func discoveryLines() {
        let parsed = ISCSIPortal.parseDiscovery("127.0.0.1:3260,1 iqn.2007-10.x:y")
        #expect(parsed?.portal == ISCSIPortal(address: "127.0.0.1", port: 3260, groupTag: "1") && parsed?.iqn == "iqn.2007-10.x:y")
        let six = ISCSIPortal.parseDiscovery("[fe80::1]:3261,12 iqn.2007-10.x:z")
        #expect(six?.portal.address == "fe80::1" && six?.portal.text == "[fe80::1]:3261" && six?.portal.groupTag == "12")
        for line in ["", "iscsiadm: No portals found", "127.0.0.1:3260 iqn.x", "127.0.0.1:x,1 iqn.x", "a/b:1,1 iqn.x"] {
            #expect(ISCSIPortal.parseDiscovery(line) == nil, "\(line)")
        }
    }

    /// The node record keeps every other line, loses any earlier credentials and gets the new ones
    /// before `# END RECORD`; a record without that line is refused.
    @Test func nodeRecordRewrite() throws {
        let record = """
            # BEGIN RECORD 2.1.8
            node.name = iqn.x:y
            node.session.auth.authmethod = CHAP
            node.session.auth.username = old
            node.session.auth.password = oldsecret
            node.conn[0].port = 3260
            # END RECORD

            """
        let chap = try ISCSISession.recordWithAuthentication(record, chap: .init(user: "u", password: "s3cret"), path: "r")
        let lines = chap.split(separator: "\n").map(String.init)
        #expect(!chap.contains("oldsecret") && !chap.contains("= old\n"))
        #expect(
            lines.suffix(4) == [
                "node.session.auth.authmethod = CHAP", "node.session.auth.username = u",
                "node.session.auth.password = s3cret", "# END RECORD"
            ])
        #expect(lines.contains("node.conn[0].port = 3260") && lines.contains("node.name = iqn.x:y"))
        let none = try ISCSISession.recordWithAuthentication(chap, chap: nil, path: "r")
        #expect(none.contains("node.session.auth.authmethod = None") && !none.contains("s3cret") && !none.contains("username"))
        #expect(throws: StorageError.self) { try ISCSISession.recordWithAuthentication("node.name = x\n", chap: nil, path: "r") }
    }
}
