import Foundation
import Testing

/// EXTSR end to end on real loop devices, through the built binary.
@Suite(.serialized) struct EXTSRLifecycleTests {
    /// Create, attach, every VDI verb, scan, detach and delete work on a real ext4; guest data in
    /// a VDI survives detach and attach; after delete the device is blank and its head zero.
    @Test(.timeLimit(.minutes(2))) func fullLifecycle() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        let vdi = newUUID()

        try fixture.succeed("sr_create", sr, "0")
        let created = try fixture.probe()
        #expect(created["TYPE"] == "ext4" && created["UUID"] == sr, "\(created)")
        try fixture.succeed("sr_attach", sr)
        try fixture.succeed("sr_attach", sr)
        #expect(try EXTSRFixture.isMounted(fixture.mountPoint))
        #expect(fixture.loop.mountPoints == [fixture.mountPoint])

        try fixture.succeed("vdi_create", sr, vdi, String(10 << 20))
        let attached = try fixture.succeed("vdi_attach", sr, vdi)
        let vhd = "\(fixture.mountPoint)/\(vdi).vhd"
        #expect(attached.standardOutput.contains("<path>\(vhd)</path>"), "\(attached)")
        #expect(attached.standardOutput.contains("<type>vhd</type>"))
        let written = try Product.runProgram("qemu-io", ["-f", "vpc", "-c", "write -P 0x5a 1M 64k", vhd])
        #expect(written.status == 0, "\(written)")
        try fixture.succeed("vdi_detach", sr, vdi)
        try fixture.succeed("vdi_resize", sr, vdi, String(20 << 20))

        let scan = try fixture.succeed("sr_scan", sr).standardOutput
        #expect(scan.contains("<uuid>\(vdi)</uuid>") && scan.contains("<size>\(20 << 20)</size>"), "\(scan)")
        let statfs = try Product.runProgram("stat", ["-f", "-c", "%b %S", fixture.mountPoint]).standardOutput
            .split(separator: " ").compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(statfs.count == 2 && scan.contains("<physical_size>\(statfs[0] * statfs[1])</physical_size>"), "\(scan)")

        try fixture.succeed("sr_detach", sr)
        #expect(try !EXTSRFixture.isMounted(fixture.mountPoint))
        #expect(fixture.loop.mountPoints.isEmpty)
        expectFailure(try fixture.run("sr_scan", sr), "ENODEV", 19, mentioning: ["not attached"])
        try fixture.succeed("sr_detach", sr)

        try fixture.succeed("sr_attach", sr)
        let read = try Product.runProgram("qemu-io", ["-f", "vpc", "-c", "read -P 0x5a 1M 64k", vhd])
        #expect(read.status == 0 && !read.standardOutput.contains("verification failed"), "\(read)")
        try fixture.succeed("vdi_delete", sr, vdi)
        #expect(!(try fixture.succeed("sr_scan", sr).standardOutput.contains("<vdi>")))
        try fixture.succeed("sr_detach", sr)

        try fixture.succeed("sr_delete", sr)
        #expect(try fixture.probe().isEmpty)
        #expect(try fixture.headIsZero(EXTSRFixture.wipeLength))
        try fixture.succeed("sr_delete", sr)
        expectFailure(try fixture.run("sr_attach", sr), "ENODEV", 19, mentioning: [fixture.loop.path, "no filesystem"])
    }

    /// sr_detach with a VDI attached is EBUSY and leaves the SR mounted and usable.
    @Test(.timeLimit(.minutes(1))) func detachWithAttachedVDIIsBusy() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        let vdi = newUUID()
        try fixture.succeed("sr_create", sr, "0")
        try fixture.succeed("sr_attach", sr)
        try fixture.succeed("vdi_create", sr, vdi, String(4 << 20))
        try fixture.succeed("vdi_attach", sr, vdi)

        expectFailure(try fixture.run("sr_detach", sr), "EBUSY", 16, mentioning: [vdi])
        #expect(try EXTSRFixture.isMounted(fixture.mountPoint))
        #expect(try fixture.succeed("sr_scan", sr).standardOutput.contains(vdi))

        try fixture.succeed("vdi_detach", sr, vdi)
        try fixture.succeed("sr_detach", sr)
        #expect(try !EXTSRFixture.isMounted(fixture.mountPoint))
    }

    /// The persistent lock works on EXTSR through the same repository code as FileSR: lock,
    /// `<locked>` in sr_scan, ENOLCK for another user, EBUSY for vdi_delete, unlock.
    @Test(.timeLimit(.minutes(1))) func persistentLocks() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        let vdi = newUUID()
        try fixture.succeed("sr_create", sr, "0")
        try fixture.succeed("sr_attach", sr)
        try fixture.succeed("vdi_create", sr, vdi, String(4 << 20))
        try fixture.succeed("vdi_lock", sr, vdi, "FALSE", "host-a")
        let scan = try ResultXML(try fixture.succeed("sr_scan", sr).standardOutput)
        #expect(scan.vdis.first?.fields["locked"] == "True")
        expectFailure(try fixture.run("vdi_lock", sr, vdi, "FALSE", "host-b"), "ENOLCK", 37)
        expectFailure(try fixture.run("vdi_delete", sr, vdi), "EBUSY", 16)
        try fixture.succeed("vdi_unlock", sr, vdi, "host-a")
        try fixture.succeed("vdi_delete", sr, vdi)
        try fixture.succeed("sr_detach", sr)
    }

    /// Copy-on-write reaches EXTSR by composition: snapshot, then deleting the snapshot leaves a
    /// hidden parent that the detached sr_gc worker (started with EXTSR's own dconf) merges away.
    @Test(.timeLimit(.minutes(1))) func snapshotAndBackgroundCoalescing() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        let vdi = newUUID()
        let snapshot = newUUID()
        try fixture.succeed("sr_create", sr, "0")
        try fixture.succeed("sr_attach", sr)
        try fixture.succeed("vdi_create", sr, vdi, String(8 << 20))
        try fixture.succeed("vdi_snapshot", sr, vdi, snapshot)
        let scan = try ResultXML(try fixture.succeed("sr_scan", sr).standardOutput)
        #expect(Set(scan.vdis.compactMap { $0.fields["uuid"] }) == [vdi, snapshot])
        #expect(scan.vdis.first { $0.fields["uuid"] == vdi }?.fields["parent"] == snapshot)
        try fixture.succeed("vdi_delete", sr, snapshot)
        let vhdFiles = { try FileManager.default.contentsOfDirectory(atPath: fixture.mountPoint).filter { $0.hasSuffix(".vhd") } }
        let deadline = Date().addingTimeInterval(20)
        while try vhdFiles().count > 1, Date() < deadline { usleep(50_000) }
        #expect(try vhdFiles() == ["\(vdi).vhd"])
        let log = try String(contentsOfFile: fixture.scratch.path("SMlog"), encoding: .utf8)
        #expect(log.contains("EXTSR") && log.contains("sr_gc \(sr) result=OK"), "\(log)")
        try fixture.succeed("sr_check", sr)
        try fixture.succeed("vdi_delete", sr, vdi)
        try fixture.succeed("sr_detach", sr)
    }

    /// A process with a file open in the SR makes sr_detach EBUSY (the kernel's answer), still mounted.
    @Test(.timeLimit(.minutes(1))) func detachWhileAFileIsOpenIsBusy() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        try fixture.succeed("sr_create", sr, "0")
        try fixture.succeed("sr_attach", sr)
        let holderPath = "\(fixture.mountPoint)/holder"
        try #require(FileManager.default.createFile(atPath: holderPath, contents: nil))
        let holder = try #require(FileHandle(forWritingAtPath: holderPath))
        expectFailure(try fixture.run("sr_detach", sr), "EBUSY", 16, mentioning: [fixture.mountPoint])
        #expect(try EXTSRFixture.isMounted(fixture.mountPoint))
        try holder.close()
        try fixture.succeed("sr_detach", sr)
    }

    /// On a device smaller than 100 MiB, sr_delete zeroes all of it.
    @Test(.timeLimit(.minutes(1))) func deleteWipesASmallDeviceWhole() throws {
        let size = 48 << 20
        let fixture = try EXTSRFixture(size: UInt64(size))
        defer { fixture.tearDown() }
        try fixture.succeed("sr_create", fixture.sr, "0")
        try fixture.succeed("sr_delete", fixture.sr)
        #expect(try fixture.probe().isEmpty)
        #expect(try fixture.headIsZero(size))
    }
}
