import Foundation
import Testing

/// The iSCSI drivers' host-side contract. This host's kernel has no iSCSI initiator, so logins
/// are proven in the VM lane (Tests/vm/groups/iscsi-drivers.sh); here a stand-in `iscsiadm`
/// (a shell script first in PATH that records its argv and answers like iscsiadm) shows what the
/// drivers hand to iscsiadm and where the CHAP password goes.
@Suite(.serialized) struct ISCSIDriverTests {
    static let iqn = "iqn.2007-10.test.sm:host-tests"
    static let password = "Pa55-w0rd-host"
    static let drivers = ["ISCSISR", "LVMoISCSISR", "EXToISCSISR"]

    /// A scratch host whose PATH starts with a fake iscsiadm: discovery prints one record and
    /// writes its node record (as iscsiadm does), `--login` exits `loginStatus`.
    final class FakeInitiator {
        let scratch: Scratch
        var nodeDirectory: String { scratch.path("nodes") }
        var argvLog: String { scratch.path("iscsiadm.argv") }
        var record: String { "\(nodeDirectory)/\(ISCSIDriverTests.iqn)/127.0.0.1,3260,1/default" }

        init(loginStatus: Int32) throws {
            scratch = try Scratch("iscsi")
            let bin = scratch.path("bin")
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            let script = """
                #!/bin/sh
                echo "$*" >> '\(argvLog)'
                case "$*" in
                  *discovery*)
                    mkdir -p '\(nodeDirectory)/\(ISCSIDriverTests.iqn)/127.0.0.1,3260,1'
                    printf '# BEGIN RECORD 2.1.8\\nnode.name = \(ISCSIDriverTests.iqn)\\nnode.session.auth.authmethod = None\\n# END RECORD\\n' > '\(record)'
                    # Twice, as iscsiadm prints a target once per interface discovery ran through.
                    echo '127.0.0.1:3260,1 \(ISCSIDriverTests.iqn)'; echo '127.0.0.1:3260,1 \(ISCSIDriverTests.iqn)'; exit 0 ;;
                  *--login*) echo 'iscsiadm: Login failed' >&2; exit \(loginStatus) ;;
                  *) exit 0 ;;
                esac
                """
            try script.write(toFile: "\(bin)/iscsiadm", atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(bin)/iscsiadm")
            try "iscsi_node_dir = \(nodeDirectory)\n".write(toFile: scratch.path("sm.conf"), atomically: true, encoding: .utf8)
            scratch.environment["PATH"] = "\(bin):" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        }

        func dconf(_ extra: String = "") -> String {
            "<dconf><target>127.0.0.1</target><targetIQN>\(ISCSIDriverTests.iqn)</targetIQN>\(extra)</dconf>"
        }
    }

    /// Malformed iSCSI dconfs and arguments are EINVAL naming the key for all three drivers, and
    /// nothing runs: iscsiadm is never called and no host state is written.
    @Test(.timeLimit(.minutes(2))) func invalidConfigurationTouchesNothing() throws {
        let fake = try FakeInitiator(loginStatus: 0)
        let sr = newUUID()
        let lun = "<LUNid>1</LUNid>"
        let cases: [(String, String)] = [
            ("<dconf><targetIQN>\(Self.iqn)</targetIQN>\(lun)</dconf>", "target"),
            ("<dconf><target>127.0.0.1</target>\(lun)</dconf>", "targetIQN"),
            (fake.dconf("<port>99999</port>\(lun)"), "port"),
            ("<dconf><target>-x</target><targetIQN>\(Self.iqn)</targetIQN>\(lun)</dconf>", "target"),
            ("<dconf><target>[::1</target><targetIQN>\(Self.iqn)</targetIQN>\(lun)</dconf>", "target"),
            ("<dconf><target>host.example:3260</target><targetIQN>\(Self.iqn)</targetIQN>\(lun)</dconf>", "target"),
            (fake.dconf("<usediscoverynumber>x</usediscoverynumber>\(lun)"), "usediscoverynumber"),
            (fake.dconf("<chapuser>u</chapuser>\(lun)"), "chappassword"),
            (fake.dconf("<localIQN>not an iqn</localIQN>\(lun)"), "localIQN"),
            (fake.dconf("<LUNid>1,x</LUNid>"), "LUNid")
        ]
        for driver in Self.drivers {
            for (dconf, key) in cases where driver != "ISCSISR" || key != "LUNid" {
                let result = try fake.scratch.run(driver, [dconf, "sr_attach", sr])
                expectFailure(result, "EINVAL", 22, mentioning: [key])
            }
            expectFailure(try fake.scratch.run(driver, [fake.dconf(lun), "sr_attach", "not-a-uuid"]), "EINVAL", 22)
        }
        for driver in ["LVMoISCSISR", "EXToISCSISR"] {
            expectFailure(try fake.scratch.run(driver, [fake.dconf(), "sr_attach", sr]), "EINVAL", 22, mentioning: ["LUNid"])
        }
        expectFailure(
            try fake.scratch.run("EXToISCSISR", [fake.dconf("<LUNid>1,2</LUNid>"), "sr_create", sr, "0"]),
            "EINVAL", 22, mentioning: ["exactly one"])
        #expect(!FileManager.default.fileExists(atPath: fake.argvLog), "iscsiadm ran")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fake.scratch.path("run")).isEmpty)
    }

    /// With CHAP the password reaches the node record (mode 0600) and nothing else: not
    /// iscsiadm's argv, not stderr (even with --verbose), not the SMlog. A refused login
    /// (iscsiadm status 24) is EPERM naming the CHAP keys, and leaves the SR unattached.
    @Test(.timeLimit(.minutes(2))) func chapPasswordOnlyInTheNodeRecord() throws {
        let fake = try FakeInitiator(loginStatus: 24)
        let sr = newUUID()
        let dconf = fake.dconf("<chapuser>smuser</chapuser><chappassword>\(Self.password)</chappassword>")
        let result = try fake.scratch.run("ISCSISR", ["--verbose", "@-", "sr_attach", sr], input: Data(dconf.utf8))
        expectFailure(result, "EPERM", 1, mentioning: ["chapuser", "chappassword"])
        #expect(result.standardError.contains("chappassword=***"))
        let argv = try String(contentsOfFile: fake.argvLog, encoding: .utf8)
        #expect(argv.contains("--login") && argv.contains("discovery"))
        #expect(!argv.contains(Self.password), "\(argv)")
        #expect(!result.standardError.contains(Self.password) && !result.standardOutput.contains(Self.password))
        let log = (try? String(contentsOfFile: fake.scratch.path("SMlog"), encoding: .utf8)) ?? ""
        #expect(!log.contains(Self.password))
        let record = try String(contentsOfFile: fake.record, encoding: .utf8)
        #expect(
            record.contains(
                "node.session.auth.authmethod = CHAP\nnode.session.auth.username = smuser\n"
                    + "node.session.auth.password = \(Self.password)\n# END RECORD"))
        let mode = try FileManager.default.attributesOfItem(atPath: fake.record)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        expectFailure(try fake.scratch.run("ISCSISR", [dconf, "sr_scan", sr]), "ENODEV", 19, mentioning: ["not attached"])
    }

    /// With a session to the target already logged in (iscsiadm would answer "session exists"),
    /// sr_attach checks the dconf's CHAP credentials against the session's: a wrong password, a
    /// wrong user or no CHAP at all is EPERM like a refused login, before iscsiadm runs or the
    /// node record changes; the right ones reuse the session. The kernel's copy of the
    /// credentials (sysfs) decides; without it, the node record does. The sysfs session is a
    /// stand-in directory here (no initiator on this host); the VM lane proves it on a real one.
    @Test(.timeLimit(.minutes(2))) func existingSessionChecksCredentials() throws {
        let fake = try FakeInitiator(loginStatus: 15)
        let sessions = fake.scratch.path("iscsi_session")
        let session = "\(sessions)/session3"
        try FileManager.default.createDirectory(atPath: session, withIntermediateDirectories: true)
        for (name, value) in ["targetname": Self.iqn, "ifacename": "default", "username": "smuser", "password": Self.password] {
            try "\(value)\n".write(toFile: "\(session)/\(name)", atomically: true, encoding: .utf8)
        }
        try "iscsi_node_dir = \(fake.nodeDirectory)\niscsi_session_dir = \(sessions)\n"
            .write(toFile: fake.scratch.path("sm.conf"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(
            atPath: (fake.record as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var record =
            "node.name = \(Self.iqn)\nnode.session.auth.authmethod = CHAP\nnode.session.auth.username = smuser\n"
            + "node.session.auth.password = \(Self.password)\n# END RECORD\n"
        try record.write(toFile: fake.record, atomically: true, encoding: .utf8)
        let wrong = "Wr0ng-pa55word"
        let refused = [
            fake.dconf("<chapuser>smuser</chapuser><chappassword>\(wrong)</chappassword>"),
            fake.dconf("<chapuser>someone</chapuser><chappassword>\(Self.password)</chappassword>"),
            fake.dconf()
        ]
        func expectRefused(_ sr: String) throws {
            for dconf in refused {
                let result = try fake.scratch.run("ISCSISR", [dconf, "sr_attach", sr])
                expectFailure(result, "EPERM", 1, mentioning: ["chapuser", "chappassword", "session3"])
                #expect(!result.standardError.contains(wrong) && !result.standardError.contains(Self.password))
                #expect(!FileManager.default.fileExists(atPath: fake.argvLog), "iscsiadm ran")
                #expect(try String(contentsOfFile: fake.record, encoding: .utf8) == record)
                expectFailure(try fake.scratch.run("ISCSISR", [dconf, "sr_scan", sr]), "ENODEV", 19)
            }
        }
        let sr = newUUID()
        try expectRefused(sr)
        let right = fake.dconf("<chapuser>smuser</chapuser><chappassword>\(Self.password)</chappassword>")
        let attached = try fake.scratch.run("ISCSISR", [right, "sr_attach", sr])
        #expect(attached.status == 0, "\(attached)")
        #expect(try fake.scratch.run("ISCSISR", [right, "sr_scan", sr]).status == 0)
        try? FileManager.default.removeItem(atPath: fake.argvLog)
        record = try String(contentsOfFile: fake.record, encoding: .utf8)
        try expectRefused(newUUID())
        // A kernel that does not show the credentials: the node record decides.
        try FileManager.default.removeItem(atPath: "\(session)/username")
        try expectRefused(newUUID())
        #expect(try fake.scratch.run("ISCSISR", [right, "sr_attach", newUUID()]).status == 0)
    }

    /// Provisioning verbs are ENOSYS with the reason; sr_content_type is aio without a session;
    /// VDI verbs on an SR not attached here are ENODEV.
    @Test(.timeLimit(.minutes(2))) func unsupportedVerbsAndUnattachedSRs() throws {
        let fake = try FakeInitiator(loginStatus: 0)
        let (sr, vdi) = (newUUID(), newUUID())
        let dconf = fake.dconf()
        for arguments in [
            ["sr_create", sr, "0"], ["sr_delete", sr], ["vdi_create", sr, vdi, "1048576"], ["vdi_delete", sr, vdi],
            ["vdi_resize", sr, vdi, "1048576"], ["vdi_clone", sr, vdi, newUUID()],
            ["vdi_snapshot", sr, vdi, newUUID()], ["vdi_lock", sr, vdi, "false", "host1"]
        ] {
            expectFailure(try fake.scratch.run("ISCSISR", [dconf] + arguments), "ENOSYS", 38, mentioning: ["ISCSISR"])
        }
        let type = try fake.scratch.run("ISCSISR", [dconf, "sr_content_type", sr])
        #expect(type.status == 0 && type.standardOutput.contains("<type>aio</type>"))
        expectFailure(try fake.scratch.run("ISCSISR", [dconf, "vdi_attach", sr, vdi]), "ENODEV", 19)
        expectFailure(try fake.scratch.run("ISCSISR", [dconf, "vdi_detach", sr, vdi]), "ENODEV", 19)
        #expect(try fake.scratch.run("ISCSISR", [dconf, "sr_detach", sr]).status == 0)
        let lvm = fake.dconf("<LUNid>1,2</LUNid>")
        expectFailure(
            try fake.scratch.run("LVMoISCSISR", [lvm, "vdi_lock", sr, vdi, "false", "host1"]), "ENOSYS", 38, mentioning: ["LVMoISCSISR"])
        fake.scratch.environment["SM_SANLOCK_HOST_ID"] = "7"
        expectFailure(try fake.scratch.run("LVMoISCSISR", [lvm, "sr_scan", sr]), "ENODEV", 19)
        expectFailure(try fake.scratch.run("EXToISCSISR", [fake.dconf("<LUNid>1</LUNid>"), "sr_scan", sr]), "ENODEV", 19)
        #expect(try fake.scratch.run("EXToISCSISR", [fake.dconf("<LUNid>1</LUNid>"), "sr_detach", sr]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: fake.argvLog), "iscsiadm ran")
    }

    /// LVMoISCSISR's shared volume group needs this host's sanlock host id: missing, 0, 2001 or
    /// not a number, every verb that reaches LVM is EINVAL naming `sanlock_host_id`, before
    /// iscsiadm runs or host state is written; sr_content_type and ENOSYS verbs do not need it.
    @Test(.timeLimit(.minutes(2))) func sanlockHostIDIsRequiredAndChecked() throws {
        let fake = try FakeInitiator(loginStatus: 0)
        let (sr, vdi) = (newUUID(), newUUID())
        let dconf = fake.dconf("<LUNid>1</LUNid>")
        for value in [nil, "0", "2001", "x", "-1", "1.5"] {
            fake.scratch.environment["SM_SANLOCK_HOST_ID"] = value
            for arguments in [
                ["sr_create", sr, "0"], ["sr_attach", sr], ["sr_delete", sr], ["sr_detach", sr], ["sr_scan", sr],
                ["vdi_create", sr, vdi, "1048576"], ["vdi_attach", sr, vdi], ["vdi_resize", sr, vdi, "1048576"]
            ] {
                expectFailure(try fake.scratch.run("LVMoISCSISR", [dconf] + arguments), "EINVAL", 22, mentioning: ["sanlock_host_id"])
            }
        }
        fake.scratch.environment["SM_SANLOCK_HOST_ID"] = nil
        let type = try fake.scratch.run("LVMoISCSISR", [dconf, "sr_content_type", sr])
        #expect(type.status == 0 && type.standardOutput.contains("<type>aio</type>"))
        expectFailure(try fake.scratch.run("LVMoISCSISR", [dconf, "vdi_unlock", sr, vdi, "host1"]), "ENOSYS", 38)
        #expect(!FileManager.default.fileExists(atPath: fake.argvLog), "iscsiadm ran")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fake.scratch.path("run")).isEmpty)
    }

    /// An EXToISCSISR sr_create whose Size is below the smallest EXT SR is EINVAL before anything
    /// runs: no discovery, no login, no node record, no host state.
    @Test(.timeLimit(.minutes(2))) func tooSmallEXTSizeTouchesNothing() throws {
        let fake = try FakeInitiator(loginStatus: 0)
        let result = try fake.scratch.run("EXToISCSISR", [fake.dconf("<LUNid>1</LUNid>"), "sr_create", newUUID(), "1048576"])
        expectFailure(result, "EINVAL", 22, mentioning: ["Size"])
        #expect(!FileManager.default.fileExists(atPath: fake.argvLog), "iscsiadm ran")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fake.scratch.path("run")).isEmpty)
    }

    /// A login whose session record cannot be written is logged out again: sr_attach fails (EIO)
    /// and leaves no session that no SR on this host knows about.
    @Test(.timeLimit(.minutes(2))) func failedAttachRecordLogsOut() throws {
        let fake = try FakeInitiator(loginStatus: 0)
        // `<run_dir>/iscsi` as a plain file: the session's users directory cannot be made.
        try "".write(toFile: fake.scratch.path("run/iscsi"), atomically: true, encoding: .utf8)
        let result = try fake.scratch.run("ISCSISR", [fake.dconf(), "sr_attach", newUUID()])
        expectFailure(result, "EIO", 5)
        let argv = try String(contentsOfFile: fake.argvLog, encoding: .utf8)
        #expect(argv.contains("--login"))
        #expect(argv.contains("--logout"), "\(argv)")
    }

    /// --help names the iSCSI keys for every driver.
    @Test func help() throws {
        for driver in Self.drivers {
            let result = try Product.run(driver, ["--help"])
            #expect(result.status == 0)
            #expect(result.standardOutput.contains("Required dconf keys: target, targetIQN"))
            #expect(result.standardOutput.contains("chappassword"))
            #expect(result.standardOutput.contains("LUNid") == (driver != "ISCSISR"))
        }
    }
}
