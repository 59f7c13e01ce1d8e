import Foundation
import Testing

/// sr_delete: refuses while the SR is in use, wipes when it may, finishes an interrupted delete.
@Suite(.serialized) struct EXTSRDeleteTests {
    /// While attached or holding a VDI sr_delete is EBUSY and the SR stays intact.
    @Test(.timeLimit(.minutes(1))) func busyWhileAttachedOrHoldingVDIs() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        let vdi = newUUID()
        try fixture.succeed("sr_create", sr, "0")
        try fixture.succeed("sr_attach", sr)
        try fixture.succeed("vdi_create", sr, vdi, String(4 << 20))
        expectFailure(try fixture.run("sr_delete", sr), "EBUSY", 16, mentioning: ["sr_detach"])
        try fixture.succeed("sr_detach", sr)

        expectFailure(try fixture.run("sr_delete", sr), "EBUSY", 16, mentioning: ["1 VDI"])
        let after = try fixture.probe()
        #expect(after["TYPE"] == "ext4" && after["UUID"] == sr, "\(after)")
        #expect(fixture.loop.mountPoints.isEmpty)

        try fixture.succeed("sr_attach", sr)
        #expect(FileManager.default.fileExists(atPath: "\(fixture.mountPoint)/\(vdi).vhd"))
        try fixture.succeed("vdi_delete", sr, vdi)
        try fixture.succeed("sr_detach", sr)
        try fixture.succeed("sr_delete", sr)
        #expect(try fixture.probe().isEmpty)
    }

    /// A device holding something else is ENODEV and is not wiped; a blank one succeeds.
    @Test(.timeLimit(.minutes(1))) func foreignDeviceIsNotWiped() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        try fixture.succeed("sr_delete", fixture.sr)
        try Product.shell("mkfs.xfs -q -f \(fixture.loop.path)")
        expectFailure(try fixture.run("sr_delete", fixture.sr), "ENODEV", 19, mentioning: ["xfs", "nothing was wiped"])
        #expect(try fixture.probe()["TYPE"] == "xfs")
        let otherSR = newUUID()
        try fixture.succeed("sr_create", otherSR, "0", dconf: fixture.forcedDconf)
        expectFailure(try fixture.run("sr_delete", fixture.sr), "ENODEV", 19, mentioning: [otherSR])
        #expect(try fixture.probe()["UUID"] == otherSR)
    }

    /// A delete interrupted after its intent was written (the `sm-deleting` label) is refused by
    /// sr_attach and sr_create, and finished by sr_delete without the VDI check.
    @Test(.timeLimit(.minutes(1))) func interruptedDeleteIsFinished() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        try fixture.succeed("sr_create", sr, "0")
        try Product.shell("tune2fs -L sm-deleting \(fixture.loop.path) >/dev/null")
        expectFailure(try fixture.run("sr_attach", sr), "ENODEV", 19, mentioning: ["sr_delete"])
        expectFailure(try fixture.run("sr_create", sr, "0", dconf: fixture.forcedDconf), "EEXIST", 17, mentioning: ["sr_delete"])
        #expect(fixture.loop.mountPoints.isEmpty)
        try fixture.succeed("sr_delete", sr)
        #expect(try fixture.probe().isEmpty)
        #expect(try fixture.headIsZero(EXTSRFixture.wipeLength))
    }

    /// A read-only inspection mount left by a delete killed mid-way is cleaned up by the next call.
    @Test(.timeLimit(.minutes(1))) func leftoverInspectionMountIsReleased() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        let sr = fixture.sr
        try fixture.succeed("sr_create", sr, "0")
        let inspection = fixture.scratch.path("mount/.\(sr).inspect")
        try Product.shell("mkdir -p \(inspection) && mount -o ro \(fixture.loop.path) \(inspection)")
        try fixture.succeed("sr_delete", sr)
        #expect(try !EXTSRFixture.isMounted(inspection))
        #expect(try fixture.probe().isEmpty)
    }
}
