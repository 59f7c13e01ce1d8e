import Foundation
import Testing

/// What NFSSR does on a host without an NFS server (this build machine's kernel has no NFS client
/// at all): help, sr_delete's ENOSYS, the content type, ENODEV for an SR that is not attached,
/// and mount failures that leave nothing behind. Real NFS mounts are proven in the VM lane
/// (Tests/vm/groups/nfs.sh).
@Suite(.serialized) struct NFSSRHostTests {
    let scratch: Scratch
    let sr = newUUID()

    init() throws { scratch = try Scratch("nfssr") }

    static let dconf = NFSSRBadInputTests.dconf()

    func run(_ arguments: [String], dconf: String = dconf) throws -> ProductResult {
        try scratch.run("NFSSR", [dconf] + arguments)
    }

    /// NFS mounts below the scratch mount directory, from this process's mount table.
    func mountsBelowScratch() throws -> [String] {
        let table = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        return table.split(separator: "\n").map(String.init).filter { $0.contains(scratch.path("mount")) }
    }

    /// --help names the required and optional keys and the fixed mount options; `help sr_delete` works.
    @Test func help() throws {
        let usage = try Product.run("NFSSR", ["--help"])
        #expect(usage.status == 0)
        for word in [
            "Required dconf keys: server, serverpath", "nfsversion", "proto", "timeo", "retrans", "soft", "hard",
            "actimeo=0", "sr_delete answers ENOSYS"
        ] {
            #expect(usage.standardOutput.contains(word), "'\(word)' missing from --help")
        }
        let verb = try Product.run("NFSSR", ["help", "sr_delete"])
        #expect(verb.status == 0 && verb.standardOutput.contains("sr_delete SR-UUID"), "\(verb)")
    }

    /// sr_delete is ENOSYS ("a shared substrate") naming the directory to remove on the server,
    /// without mounting anything.
    @Test func srDeleteIsENOSYS() throws {
        let result = try run(["sr_delete", sr])
        expectFailure(result, "ENOSYS", 38, mentioning: ["shared substrate", "/export/sm/\(sr)"])
        #expect(try mountsBelowScratch().isEmpty)
    }

    /// sr_content_type answers `vhd` without contacting the server.
    @Test func contentType() throws {
        let result = try run(["sr_content_type", sr])
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.contains("<type>vhd</type>"), "\(result.standardOutput)")
    }

    /// VDI verbs and sr_scan on an SR that is not attached are ENODEV "not attached"; sr_detach of
    /// an SR that was never attached succeeds (idempotent). Nothing is mounted.
    @Test func notAttached() throws {
        let vdi = newUUID()
        for arguments in [
            ["sr_scan", sr], ["vdi_create", sr, vdi, "1048576"], ["vdi_attach", sr, vdi],
            ["vdi_delete", sr, vdi], ["vdi_resize", sr, vdi, "4194304"], ["vdi_lock", sr, vdi, "FALSE", "u"],
            ["vdi_unlock", sr, vdi, "u"]
        ] {
            expectFailure(try run(arguments), "ENODEV", 19, mentioning: ["not attached"])
        }
        let detach = try run(["sr_detach", sr])
        #expect(detach.status == 0, "\(detach)")
        #expect(try mountsBelowScratch().isEmpty)
        #expect(scratch.snapshot("mount").isEmpty)
    }

    /// A mount that fails (here: no NFS client in the kernel, or no server on 127.0.0.1) is ENODEV
    /// carrying mount.nfs's own message, for sr_attach and sr_create alike; no mount, no mount
    /// point and no attach record is left.
    @Test(.timeLimit(.minutes(1))) func mountFailureLeavesNothing() throws {
        let dconf = NFSSRBadInputTests.dconf([("nfsversion", "4.1")])
        for arguments in [["sr_attach", sr], ["sr_create", sr, "0"]] {
            let result = try run(arguments, dconf: dconf)
            expectFailure(result, "ENODEV", 19, mentioning: ["127.0.0.1:/export/sm", "mount.nfs"])
        }
        #expect(try mountsBelowScratch().isEmpty)
        #expect(scratch.snapshot("mount").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: scratch.path("run/\(sr)/attached")))
    }

    /// The mount command line is built from the validated values only: an IPv6 server in
    /// brackets with tcp6, the path with its repeated and trailing slashes dropped, the chosen
    /// version, timeout, retransmissions and hard, then the fixed options.
    @Test(.timeLimit(.minutes(1))) func mountCommandLine() throws {
        let dconf = NFSSRBadInputTests.dconf(
            server: "::1", serverpath: "//export//sm/",
            [
                ("nfsversion", "4.2"), ("timeo", "600"), ("retrans", "5"), ("hard", "TRUE"), ("unknown", "x")
            ])
        let result = try scratch.run("NFSSR", ["--verbose", dconf, "sr_attach", sr])
        #expect(result.status == 19, "\(result)")
        let expected =
            "run mount -t nfs -o vers=4.2,proto=tcp6,timeo=600,retrans=5,hard,actimeo=0,retry=0,nosuid,nodev,noexec "
            + "[::1]:/export/sm/\(sr) \(scratch.path("mount"))/\(sr)"
        #expect(result.standardError.contains(expected), "\(result.standardError)")
        #expect(result.standardError.contains("ignores the dconf key 'unknown'"), "\(result.standardError)")
    }
}
