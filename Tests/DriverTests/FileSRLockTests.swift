import Foundation
import Testing

/// vdi_lock / vdi_unlock through the built FileSR, row by row of LOCK-UTIL.md's behaviour table,
/// on real lock files that lock-util (another implementation's command line) also sees.
@Suite struct FileSRLockTests {
    /// A FileSR with one VDI, and sm.conf setting the VDI lock lease (1 s keeps takeovers short).
    private func fixture(lease: String? = "1") throws -> (FileSRFixture, String) {
        let f = try FileSRFixture()
        if let lease { try Data("vdi_lock_lease = \(lease)\n".utf8).write(to: URL(fileURLWithPath: f.scratch.path("sm.conf"))) }
        try f.createAndAttach()
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "4194304")
        return (f, vdi)
    }

    private func lockFiles(_ f: FileSRFixture, _ vdi: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: f.root)) ?? []).filter { $0.hasPrefix("\(vdi).vhd.xenlk") }.sorted()
    }

    private func locked(_ f: FileSRFixture, _ vdi: String) throws -> String? {
        try ResultXML(f.ok("sr_scan", f.sr).standardOutput).vdis.first { $0.fields["uuid"] == vdi }?.fields["locked"]
    }

    /// Runs FileSR as another host: its own UTS namespace and hostname.
    private func callAs(_ host: String, _ f: FileSRFixture, _ verb: String, _ arguments: String...) throws -> ProductResult {
        try Product.runProgram(
            "unshare",
            [
                "--uts", "/bin/sh", "-c", "hostname \"$0\" && exec \"$@\"", host,
                Product.path("FileSR"), f.dconf, verb
            ] + arguments, environment: f.scratch.environment)
    }

    /// vdi_lock takes the lock as `<vdi>.vhd.xenlk.<host>.<user>.fw` holding `<path>.30` (the
    /// default lease), sr_scan reports it locked, and lock-util's delta sees it.
    @Test func lockCreatesProtocolFile() throws {
        let (f, vdi) = try fixture(lease: nil)
        #expect(try locked(f, vdi) == "False")
        try f.ok("vdi_lock", f.sr, vdi, "FALSE", "vm-one")
        let name = "\(vdi).vhd.xenlk.\(hostName).vm-one.fw"
        #expect(lockFiles(f, vdi) == [name])
        #expect(try String(contentsOfFile: "\(f.root)/\(name)", encoding: .utf8) == "\(f.root)/\(name).30")
        #expect(try locked(f, vdi) == "True")
        let delta = try LockUtil.run(["delta", f.vhd(vdi)])
        #expect(delta.standardOutput.hasSuffix(" 30\n") && delta.status == 0, "\(delta)")
    }

    /// Held by another user and Force FALSE: ENOLCK naming the holder; the lock stays.
    /// The same user reasserting succeeds.
    @Test func heldByAnotherUserAndReassert() throws {
        let (f, vdi) = try fixture()
        try f.ok("vdi_lock", f.sr, vdi, "FALSE", "vm-one")
        let refused = try f.fails(37, "ENOLCK", "vdi_lock", f.sr, vdi, "false", "vm-two")
        #expect(
            refused.reason.contains("locked by 'vm-one' on host \(hostName)") && refused.reason.contains("Force TRUE"),
            "\(refused.reason)")
        try f.ok("vdi_lock", f.sr, vdi, "FALSE", "vm-one")
        try f.ok("vdi_lock", f.sr, vdi, "0", "vm-one")
        #expect(lockFiles(f, vdi) == ["\(vdi).vhd.xenlk.\(hostName).vm-one.fw"])
    }

    /// Force TRUE breaks another user's lock, waiting one lease (1 s here) so that the cut-off
    /// holder can notice; the previous holder then gets ENOLCK. Force on a free VDI does not wait.
    @Test func forceBreaksTheLock() throws {
        let (f, vdi) = try fixture()
        try f.ok("vdi_lock", f.sr, vdi, "FALSE", "vm-one")
        let start = Date()
        try f.ok("vdi_lock", f.sr, vdi, "TRUE", "vm-two")
        let seconds = Date().timeIntervalSince(start)
        #expect(seconds >= 1.0 && seconds < 5.0, "takeover took \(seconds) s with a 1 s lease")
        #expect(lockFiles(f, vdi) == ["\(vdi).vhd.xenlk.\(hostName).vm-two.fw"])
        try f.fails(37, "ENOLCK", "vdi_lock", f.sr, vdi, "FALSE", "vm-one")
        let log = try String(contentsOfFile: f.scratch.path("SMlog"), encoding: .utf8)
        #expect(log.contains("took over from 'vm-one' on host \(hostName)"), "the takeover is logged")

        let (g, free) = try fixture(lease: "10")
        let quick = Date()
        try g.ok("vdi_lock", g.sr, free, "TRUE", "vm-one")
        #expect(Date().timeIntervalSince(quick) < 5.0, "nothing was taken over, so no 10 s wait")
    }

    /// A lock held on another host (a UTS namespace) by the same UserString is another holder:
    /// ENOLCK here, and Force takes it over; lock-util on that host then finds it gone.
    @Test func anotherHostIsAnotherHolder() throws {
        let (f, vdi) = try fixture()
        let remote = try callAs("otherhost", f, "vdi_lock", f.sr, vdi, "FALSE", "agent")
        #expect(remote.status == 0, "\(remote)")
        #expect(lockFiles(f, vdi) == ["\(vdi).vhd.xenlk.otherhost.agent.fw"])
        let refused = try f.fails(37, "ENOLCK", "vdi_lock", f.sr, vdi, "FALSE", "agent")
        #expect(refused.reason.contains("'agent' on host otherhost"), "\(refused.reason)")
        try f.fails(37, "ENOLCK", "vdi_unlock", f.sr, vdi, "agent")
        try f.ok("vdi_lock", f.sr, vdi, "TRUE", "agent")
        #expect(lockFiles(f, vdi) == ["\(vdi).vhd.xenlk.\(hostName).agent.fw"])
        expectLine(try LockUtil.run(["lock", f.vhd(vdi), "w", "0", "agent", "30"], host: "otherhost"), "-4 -1")
    }

    /// vdi_unlock: by another user ENOLCK (the lock stays); by the holder it goes; again, and on a
    /// VDI never locked, it succeeds (idempotent).
    @Test func unlockRows() throws {
        let (f, vdi) = try fixture()
        try f.ok("vdi_unlock", f.sr, vdi, "vm-one")
        try f.ok("vdi_lock", f.sr, vdi, "FALSE", "vm-one")
        let refused = try f.fails(37, "ENOLCK", "vdi_unlock", f.sr, vdi, "vm-two")
        #expect(refused.reason.contains("'vm-one' on host \(hostName)"), "\(refused.reason)")
        #expect(lockFiles(f, vdi).count == 1)
        try f.ok("vdi_unlock", f.sr, vdi, "vm-one")
        #expect(lockFiles(f, vdi).isEmpty)
        #expect(try locked(f, vdi) == "False")
        try f.ok("vdi_unlock", f.sr, vdi, "vm-one")
    }

    /// No VDI, or an SR that is not attached: ENODEV for both verbs, and nothing is created.
    @Test func noVDI() throws {
        let (f, vdi) = try fixture()
        let missing = newUUID()
        try f.fails(19, "ENODEV", "vdi_lock", f.sr, missing, "FALSE", "vm-one")
        try f.fails(19, "ENODEV", "vdi_unlock", f.sr, missing, "vm-one")
        #expect(lockFiles(f, missing).isEmpty)
        try f.ok("sr_detach", f.sr)
        try f.fails(19, "ENODEV", "vdi_lock", f.sr, vdi, "FALSE", "vm-one")
        try f.fails(19, "ENODEV", "vdi_unlock", f.sr, vdi, "vm-one")
        try f.fails(19, "ENODEV", "vdi_lock", newUUID(), vdi, "FALSE", "vm-one")
        #expect(lockFiles(f, vdi).isEmpty)
    }

    /// vdi_delete of a locked VDI is EBUSY and deletes nothing; after vdi_unlock it succeeds.
    @Test func deleteOfLockedVDI() throws {
        let (f, vdi) = try fixture()
        try f.ok("vdi_lock", f.sr, vdi, "FALSE", "vm-one")
        let busy = try f.fails(16, "EBUSY", "vdi_delete", f.sr, vdi)
        #expect(busy.reason.contains("locked by 'vm-one'") && busy.reason.contains("vdi_unlock"), "\(busy.reason)")
        #expect(FileManager.default.fileExists(atPath: f.vhd(vdi)))
        try f.ok("vdi_unlock", f.sr, vdi, "vm-one")
        try f.ok("vdi_delete", f.sr, vdi)
        #expect(!FileManager.default.fileExists(atPath: f.vhd(vdi)))
    }

    /// Bad Force or UserString values and a bad lease setting are EINVAL and touch nothing.
    @Test func invalidInput() throws {
        let (f, vdi) = try fixture()
        try f.fails(22, "EINVAL", "vdi_lock", f.sr, vdi, "maybe", "vm-one")
        try f.fails(22, "EINVAL", "vdi_lock", f.sr, vdi, "TRUE", "../vm")
        try f.fails(22, "EINVAL", "vdi_unlock", f.sr, vdi, "vm one")
        try Data("vdi_lock_lease = soon\n".utf8).write(to: URL(fileURLWithPath: f.scratch.path("sm.conf")))
        let setting = try f.fails(22, "EINVAL", "vdi_lock", f.sr, vdi, "FALSE", "vm-one")
        #expect(setting.reason.contains("vdi_lock_lease"), "\(setting.reason)")
        #expect(lockFiles(f, vdi).isEmpty)
    }
}
