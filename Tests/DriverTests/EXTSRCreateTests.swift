import Foundation
import Testing

/// sr_create on devices that already hold something, and on bad input.
@Suite(.serialized) struct EXTSRCreateTests {
    /// Something a device can hold that sr_create must not destroy unasked.
    enum Holding: String, CaseIterable, CustomTestStringConvertible {
        case ext4, xfs, lvmPhysicalVolume, gptPartitionTable, dosPartitionTable

        var testDescription: String { rawValue }

        /// The shell command that puts it on `device`.
        func command(_ device: String) -> String {
            switch self {
            case .ext4: return "mkfs.ext4 -q -F \(device)"
            case .xfs: return "mkfs.xfs -q -f \(device)"
            case .lvmPhysicalVolume:
                return "LVM_SUPPRESS_FD_WARNINGS=1 pvcreate -q --config 'global{activation=0}' \(device)"
            case .gptPartitionTable: return "printf 'label: gpt\\n,10M\\n' | sfdisk -q --no-reread \(device)"
            case .dosPartitionTable: return "printf 'label: dos\\n,10M\\n' | sfdisk -q --no-reread \(device)"
            }
        }

        /// blkid's key and value for it, and the word the EEXIST reason must contain.
        var signature: (key: String, value: String) {
            switch self {
            case .ext4: return ("TYPE", "ext4")
            case .xfs: return ("TYPE", "xfs")
            case .lvmPhysicalVolume: return ("TYPE", "LVM2_member")
            case .gptPartitionTable: return ("PTTYPE", "gpt")
            case .dosPartitionTable: return ("PTTYPE", "dos")
            }
        }
    }

    /// Without force sr_create is EEXIST naming what is there, and the signature is untouched;
    /// with force=true it makes the SR, and only the SR's ext4 is left.
    @Test(.timeLimit(.minutes(1)), arguments: Holding.allCases)
    func refusesWhatIsThereUnlessForced(_ holding: Holding) throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        try Product.shell(holding.command(fixture.loop.path))
        let before = try fixture.probe()
        let (key, value) = holding.signature
        try #require(before[key] == value, "setup: \(before)")

        let refused = try fixture.run("sr_create", fixture.sr, "0")
        expectFailure(refused, "EEXIST", 17, mentioning: [fixture.loop.path, value, "force"])
        #expect(try fixture.probe() == before)

        try fixture.succeed("sr_create", fixture.sr, "0", dconf: fixture.forcedDconf)
        let after = try fixture.probe()
        #expect(after["TYPE"] == "ext4" && after["UUID"] == fixture.sr && after["PTTYPE"] == nil, "\(after)")
        try fixture.succeed("sr_attach", fixture.sr)
        try fixture.succeed("sr_detach", fixture.sr)
    }

    /// sr_create twice is EEXIST naming the SR, even with force, and the SR stays usable.
    @Test(.timeLimit(.minutes(1))) func createTwiceIsEEXIST() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        try fixture.succeed("sr_create", fixture.sr, "0")
        expectFailure(try fixture.run("sr_create", fixture.sr, "0"), "EEXIST", 17, mentioning: [fixture.sr])
        expectFailure(try fixture.run("sr_create", fixture.sr, "0", dconf: fixture.forcedDconf), "EEXIST", 17)
        try fixture.succeed("sr_attach", fixture.sr)
    }

    /// A Size below the device makes a filesystem of that size; above it is ENOSPC and nothing is written.
    @Test(.timeLimit(.minutes(1))) func sizeIsHonouredOrENOSPC() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        expectFailure(
            try fixture.run("sr_create", fixture.sr, String(EXTSRFixture.defaultSize + 1)), "ENOSPC", 28,
            mentioning: [fixture.loop.path])
        #expect(try fixture.probe().isEmpty)
        try fixture.succeed("sr_create", fixture.sr, String(128 << 20))
        let header = try Product.runProgram("dumpe2fs", ["-h", fixture.loop.path]).standardOutput
        func field(_ name: String) -> UInt64? {
            header.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { UInt64($0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)) }
        }
        let bytes = (field("Block count") ?? 0) * (field("Block size") ?? 0)
        #expect(bytes == 128 << 20, "\(header)")
    }

    /// A missing device, a plain file or a directory is ENODEV; bad dconf values and sizes are
    /// EINVAL; nothing is created in any case.
    @Test(.timeLimit(.minutes(1))) func badDevicesAndInput() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        let missing = EXTSRFixture.dconf(device: "/dev/does-not-exist-\(sr.prefix(8))")
        expectFailure(try fixture.run("sr_create", sr, "0", dconf: missing), "ENODEV", 19, mentioning: ["does not exist"])
        let plainFile = EXTSRFixture.dconf(device: fixture.loop.backingFile)
        expectFailure(try fixture.run("sr_create", sr, "0", dconf: plainFile), "ENODEV", 19, mentioning: ["not a block device"])
        expectFailure(
            try fixture.run("sr_create", sr, "0", dconf: EXTSRFixture.dconf(device: fixture.scratch.path("data"))),
            "ENODEV", 19, mentioning: ["directory"])
        expectFailure(
            try fixture.run("sr_create", sr, "0", dconf: "<dconf><device>loop0</device></dconf>"), "EINVAL", 22,
            mentioning: ["absolute"])
        expectFailure(try fixture.run("sr_create", sr, "0", dconf: "<dconf/>"), "EINVAL", 22, mentioning: ["device"])
        expectFailure(
            try fixture.run(
                "sr_create", sr, "0",
                dconf: "<dconf><device>\(fixture.loop.path)</device><force>maybe</force></dconf>"),
            "EINVAL", 22, mentioning: ["force"])
        expectFailure(try fixture.run("sr_create", sr, String(1 << 20)), "EINVAL", 22, mentioning: ["smallest"])
        #expect(try fixture.probe().isEmpty)
    }

    /// A mounted device is EBUSY even with force, and stays mounted and intact.
    @Test(.timeLimit(.minutes(1))) func mountedDeviceIsBusyEvenWithForce() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let elsewhere = fixture.scratch.path("elsewhere")
        try Product.shell("mkfs.ext4 -q -F \(fixture.loop.path) && mkdir -p \(elsewhere) && mount \(fixture.loop.path) \(elsewhere)")
        let before = try fixture.probe()
        expectFailure(
            try fixture.run("sr_create", fixture.sr, "0", dconf: fixture.forcedDconf), "EBUSY", 16,
            mentioning: [elsewhere])
        #expect(try EXTSRFixture.isMounted(elsewhere))
        #expect(try fixture.probe() == before)
    }

    /// A sr_create killed (SIGKILL) while its mkfs.ext4 runs leaves the device claimed by that
    /// mkfs: a retry is EBUSY naming mkfs.ext4 and its pid and touches nothing while it lives, and
    /// succeeds once it is gone. mkfs.ext4 here is a PATH wrapper that waits (on a FIFO, inside
    /// the one process) before it execs the real one, so that the kill lands while it runs; a
    /// bare mkfs on a loop device is done before a kill can be aimed at it.
    @Test(.timeLimit(.minutes(2))) func killedCreateKeepsTheDeviceClaimedWhileItsMkfsRuns() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let bin = fixture.scratch.path("bin")
        let marker = fixture.scratch.path("mkfs.pid")
        let fifo = fixture.scratch.path("mkfs.go")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try Product.shell("mkfifo \(fifo)")
        let realMkfs = try Product.shell("command -v mkfs.ext4").trimmingCharacters(in: .whitespacesAndNewlines)
        try """
        #!/bin/bash
        echo $$ > '\(marker)'
        read -t 60 line <> '\(fifo)'
        exec '\(realMkfs)' "$@"
        """.write(toFile: "\(bin)/mkfs.ext4", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(bin)/mkfs.ext4")
        var environment = ProcessInfo.processInfo.environment.merging(fixture.scratch.environment) { $1 }
        environment["PATH"] = "\(bin):" + (environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")

        let create = Process()
        create.executableURL = URL(fileURLWithPath: Product.path("EXTSR"))
        create.arguments = [fixture.dconf, "sr_create", fixture.sr, "0"]
        create.environment = environment
        create.standardOutput = FileHandle.nullDevice
        create.standardError = FileHandle.nullDevice
        try create.run()
        var mkfs: Int32?
        for _ in 0..<200 where mkfs == nil {
            mkfs = (try? String(contentsOfFile: marker, encoding: .utf8)).flatMap {
                Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if mkfs == nil { usleep(50_000) }
        }
        let orphan = try #require(mkfs, "the wrapped mkfs.ext4 never started")
        kill(create.processIdentifier, SIGKILL)
        create.waitUntilExit()
        defer { kill(orphan, SIGKILL) }

        fixture.scratch.environment["SM_LOCK_TIMEOUT"] = "1"
        let retry = try fixture.run("sr_create", fixture.sr, "0")
        expectFailure(retry, "EBUSY", 16, mentioning: ["mkfs.ext4 (pid \(orphan))"])
        #expect(try fixture.probe().isEmpty, "the refused retry touched the device")
        expectFailure(try fixture.run("sr_delete", fixture.sr), "EBUSY", 16, mentioning: ["mkfs.ext4"])

        kill(orphan, SIGKILL)
        for _ in 0..<100 where kill(orphan, 0) == 0 && !isZombie(orphan) { usleep(20_000) }
        try fixture.succeed("sr_create", fixture.sr, "0")
        let created = try fixture.probe()
        #expect(created["TYPE"] == "ext4" && created["UUID"] == fixture.sr, "\(created)")
    }

    /// Killed at any instant (SIGKILL after a random delay, with the real mkfs.ext4) and retried
    /// at once, sr_create never answers EIO: the retry waits for an orphaned mkfs and then either
    /// makes the SR (the kill came before mkfs) or finds the one the orphan finished (EEXIST);
    /// either way the device then holds the SR.
    @Test(.timeLimit(.minutes(3))) func retryAfterAKillAtAnyInstant() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        var environment = ProcessInfo.processInfo.environment.merging(fixture.scratch.environment) { $1 }
        environment["SM_LOCK_TIMEOUT"] = "60"
        fixture.scratch.environment["SM_LOCK_TIMEOUT"] = "60"
        var outcomes: [Int32: Int] = [:]
        for round in 0..<16 {
            let create = Process()
            create.executableURL = URL(fileURLWithPath: Product.path("EXTSR"))
            create.arguments = [fixture.dconf, "sr_create", fixture.sr, "0"]
            create.environment = environment
            create.standardOutput = FileHandle.nullDevice
            create.standardError = FileHandle.nullDevice
            try create.run()
            // sr_create on this device takes about 0.1 s, most of it in mkfs.ext4.
            usleep(UInt32.random(in: 0...150_000))
            kill(create.processIdentifier, SIGKILL)
            create.waitUntilExit()
            let retry = try fixture.run("sr_create", fixture.sr, "0")
            #expect(retry.status == 0 || retry.status == 17, "round \(round): \(retry)")
            outcomes[retry.status, default: 0] += 1
            let probe = try fixture.probe()
            #expect(probe["TYPE"] == "ext4" && probe["UUID"] == fixture.sr, "round \(round): \(probe)")
            try Product.shell("wipefs -a -q \(fixture.loop.path)")
        }
        print("retry outcomes (exit status: rounds): \(outcomes)")
    }

    /// True when `pid` has exited and waits only to be reaped (it holds no descriptors then).
    private func isZombie(_ pid: Int32) -> Bool {
        ((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "").contains(") Z ")
    }
}
