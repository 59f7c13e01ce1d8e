import Foundation
import Testing

/// NFSSR's dconf is validated before anything is touched: a server that is not a host name or IP
/// literal, a serverpath that is not a plain absolute path, or an option outside its shape is
/// EINVAL naming the key, and no host state, lock or mount point appears. Runs the built NFSSR
/// with `sr_attach` and `sr_create`, the verbs that would otherwise mount.
@Suite(.serialized) struct NFSSRBadInputTests {
    static let sr = "3a9e5c17-2b4d-4f60-8e1a-c5d7b9f20e44"

    static func dconf(server: String = "127.0.0.1", serverpath: String = "/export/sm", _ extra: [(String, String)] = []) -> String {
        "<dconf><server>\(server)</server><serverpath>\(serverpath)</serverpath>"
            + extra.map { "<\($0.0)>\($0.1)</\($0.0)>" }.joined() + "</dconf>"
    }

    /// Runs sr_attach and sr_create with `dconf`; both must be EINVAL mentioning `key`, and the
    /// scratch host directories (run, lock, mount) must stay empty.
    func expectRefused(_ dconf: String, key: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let scratch = try Scratch("nfssr")
        for arguments in [["sr_attach", Self.sr], ["sr_create", Self.sr, "0"]] {
            let result = try scratch.run("NFSSR", [dconf] + arguments)
            expectFailure(result, "EINVAL", 22, mentioning: [key], sourceLocation: sourceLocation)
        }
        for directory in ["run", "lock", "mount"] {
            #expect(scratch.snapshot(directory).isEmpty, "\(directory) was touched for \(dconf)", sourceLocation: sourceLocation)
        }
    }

    /// A missing or empty server or serverpath is EINVAL naming the key.
    @Test(.timeLimit(.minutes(1))) func requiredKeys() throws {
        try expectRefused("<dconf><serverpath>/export</serverpath></dconf>", key: "'server'")
        try expectRefused("<dconf><server>127.0.0.1</server></dconf>", key: "'serverpath'")
        try expectRefused(Self.dconf(server: ""), key: "'server'")
        try expectRefused(Self.dconf(serverpath: ""), key: "'serverpath'")
    }

    /// Servers that are not a DNS name, an IPv4 literal or an IPv6 literal: option and argument
    /// injection, a second source, ports, URLs, zone indexes, shortened IPv4, bad labels.
    @Test(
        .timeLimit(.minutes(2)),
        arguments: [
            "nfs,vers=2", "nfs server", "-onolock", "nfs-", "nfs..example", ".nfs", "nfs.", "nfs_1.example",
            "nfs:2049", "nfs://server", "host/export", "1.2.3", "256.1.1.1", "1.2.3.4.5", "1.2.3.04",
            "[::1", "::1]", "[]", "[nfs]", "fe80::1%eth0", "::1::2", "n$(reboot)", "n;x", "ñfs",
            String(repeating: "a", count: 64) + ".example", Array(repeating: "abcdefghij", count: 26).joined(separator: ".")
        ])
    func badServers(_ server: String) throws {
        try expectRefused(Self.dconf(server: server), key: "server")
    }

    /// Serverpaths that are relative, carry separators mount(8) or the server would read, or
    /// climb out with `..`.
    @Test(
        .timeLimit(.minutes(2)),
        arguments: [
            "export", "~/export", "/export,nolock", "/export sm", "/export:sm", "/export/../etc", "/export/./sm",
            "/..", "/export\\sm", "/export/$(id)", "/export;x", "/exp\u{7f}ort", "/ëxport", "/export/*",
            "/" + String(repeating: "a", count: 1024)
        ])
    func badServerPaths(_ serverpath: String) throws {
        try expectRefused(Self.dconf(serverpath: serverpath), key: "serverpath")
    }

    /// Option values outside their shapes, contradictions, and a transport that cannot reach the server.
    @Test(.timeLimit(.minutes(3))) func badOptions() throws {
        let cases: [(String, String)] = [
            ("nfsversion", "2"), ("nfsversion", "4.3"), ("nfsversion", "v3"), ("nfsversion", "3,nolock"), ("nfsversion", ""),
            ("nfsversion", "3.0"), ("proto", "udp"), ("proto", "rdma"), ("proto", "TCP"), ("proto", "tcp,nolock"),
            ("timeo", "0"), ("timeo", "6001"), ("timeo", "-1"), ("timeo", "+5"), ("timeo", "0x10"), ("timeo", "1e2"),
            ("timeo", "10s"), ("timeo", ""), ("timeo", "99999999999999999999"), ("retrans", "101"), ("retrans", "-1"),
            ("retrans", "three"), ("soft", "maybe"), ("soft", ""), ("hard", "2"), ("hard", "true,nolock")
        ]
        for (key, value) in cases {
            try expectRefused(Self.dconf([(key, value)]), key: key)
        }
        try expectRefused(Self.dconf([("soft", "true"), ("hard", "true")]), key: "contradict")
        try expectRefused(Self.dconf([("soft", "false"), ("hard", "false")]), key: "contradict")
        try expectRefused(Self.dconf(server: "192.0.2.7", [("proto", "tcp6")]), key: "proto")
    }

    /// Malformed UUIDs and sizes are EINVAL before the dconf is even used; nothing is touched.
    @Test(.timeLimit(.minutes(1))) func badArguments() throws {
        let scratch = try Scratch("nfssr")
        let dconf = Self.dconf()
        for arguments in [
            ["sr_attach", "not-a-uuid"], ["sr_create", Self.sr, "-1"], ["sr_create", Self.sr],
            ["vdi_create", Self.sr, Self.sr, "0"], ["vdi_lock", Self.sr, Self.sr, "maybe", "u"],
            ["vdi_lock", Self.sr, Self.sr, "TRUE", "a/b"]
        ] {
            expectFailure(try scratch.run("NFSSR", [dconf] + arguments), "EINVAL", 22)
        }
        for directory in ["run", "lock", "mount"] { #expect(scratch.snapshot(directory).isEmpty, "\(directory)") }
    }
}
