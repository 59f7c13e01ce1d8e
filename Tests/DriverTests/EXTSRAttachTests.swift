import Foundation
import Testing

/// sr_attach finds its own SR or refuses, and mounts nothing when it refuses.
@Suite(.serialized) struct EXTSRAttachTests {
    /// A device holding a different SR, a blank device, a missing device and a plain file are
    /// each ENODEV naming the mismatch, and nothing is mounted.
    @Test(.timeLimit(.minutes(1))) func wrongDevicesAreENODEVAndMountNothing() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        let other = newUUID()

        expectFailure(try fixture.run("sr_attach", sr), "ENODEV", 19, mentioning: [fixture.loop.path, "no filesystem"])
        try fixture.succeed("sr_create", other, "0")
        expectFailure(try fixture.run("sr_attach", sr), "ENODEV", 19, mentioning: [fixture.loop.path, other, sr])
        let missing = EXTSRFixture.dconf(device: "/dev/does-not-exist-\(sr.prefix(8))")
        expectFailure(try fixture.run("sr_attach", sr, dconf: missing), "ENODEV", 19, mentioning: ["does not exist"])
        let plainFile = EXTSRFixture.dconf(device: fixture.loop.backingFile)
        expectFailure(try fixture.run("sr_attach", sr, dconf: plainFile), "ENODEV", 19, mentioning: ["not a block device"])

        #expect(try !EXTSRFixture.isMounted(fixture.mountPoint))
        #expect(fixture.loop.mountPoints.isEmpty)
        expectFailure(try fixture.run("vdi_create", sr, newUUID(), String(2 << 20)), "ENODEV", 19, mentioning: ["not attached"])
    }

    /// A device that holds other data (xfs) is ENODEV naming it; the data stays.
    @Test(.timeLimit(.minutes(1))) func foreignFilesystemIsENODEV() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        try Product.shell("mkfs.xfs -q -f \(fixture.loop.path)")
        expectFailure(try fixture.run("sr_attach", fixture.sr), "ENODEV", 19, mentioning: ["xfs"])
        #expect(try fixture.probe()["TYPE"] == "xfs")
        #expect(fixture.loop.mountPoints.isEmpty)
    }

    /// The SR is found again by its filesystem UUID when the device has another name (as after a reboot).
    @Test(.timeLimit(.minutes(1))) func attachesUnderAnotherDeviceName() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        try fixture.succeed("sr_create", fixture.sr, "0")
        let alias = fixture.scratch.path("data/alias")
        try FileManager.default.createSymbolicLink(atPath: alias, withDestinationPath: fixture.loop.path)
        try fixture.succeed("sr_attach", fixture.sr, dconf: EXTSRFixture.dconf(device: alias))
        #expect(try EXTSRFixture.isMounted(fixture.mountPoint))
        try fixture.succeed("sr_attach", fixture.sr)
        try fixture.succeed("sr_detach", fixture.sr)
    }

    /// A device already mounted elsewhere is EBUSY; our mount point stays empty.
    @Test(.timeLimit(.minutes(1))) func deviceMountedElsewhereIsBusy() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        try fixture.succeed("sr_create", fixture.sr, "0")
        let elsewhere = fixture.scratch.path("elsewhere")
        try Product.shell("mkdir -p \(elsewhere) && mount \(fixture.loop.path) \(elsewhere)")
        expectFailure(try fixture.run("sr_attach", fixture.sr), "EBUSY", 16, mentioning: [elsewhere])
        #expect(try !EXTSRFixture.isMounted(fixture.mountPoint))
    }

    /// Unmounted behind the driver's back, the SR answers VDI verbs ENODEV and nothing is written
    /// into the bare mount-point directory; sr_attach mounts it again.
    @Test(.timeLimit(.minutes(1))) func unmountedBehindOurBackIsENODEV() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        let vdi = newUUID()
        try fixture.succeed("sr_create", sr, "0")
        try fixture.succeed("sr_attach", sr)
        try Product.shell("umount \(fixture.mountPoint)")
        expectFailure(try fixture.run("vdi_create", sr, vdi, String(2 << 20)), "ENODEV", 19, mentioning: ["sr_attach"])
        expectFailure(try fixture.run("sr_scan", sr), "ENODEV", 19)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: fixture.mountPoint)) ?? [] == [])
        try fixture.succeed("sr_attach", sr)
        try fixture.succeed("vdi_create", sr, vdi, String(2 << 20))
        #expect(try fixture.succeed("sr_scan", sr).standardOutput.contains(vdi))
    }
}
