import Foundation
import Testing

/// EXTSR with `multihost` (as EXToISCSISR always is): ext4's multi-mount protection refuses a
/// second host. The second host is a second loop device over the same file (two block devices,
/// one disk, as two hosts see one LUN) with its own host state and mount directory.
@Suite(.serialized) struct EXTSRMultiHostTests {
    static let multihost = "<multihost>true</multihost>"

    /// sr_create makes MMP with a 5 s interval; another host's sr_attach while the SR is
    /// attached is EBUSY naming the holder's node and mounts nothing; after sr_detach it attaches.
    @Test(.timeLimit(.minutes(4))) func secondHostIsRefusedUntilTheFirstDetaches() throws {
        let host1 = try EXTSRFixture()
        defer { host1.tearDown() }
        let loop2 = try LoopDevice(sharing: host1.loop)
        defer { loop2.release() }
        let host2 = try Scratch("extsr-host2")
        let dconf1 = "<dconf><device>\(host1.loop.path)</device>\(Self.multihost)</dconf>"
        let dconf2 = "<dconf><device>\(loop2.path)</device>\(Self.multihost)</dconf>"
        let sr = host1.sr

        try host1.succeed("sr_create", sr, "0", dconf: dconf1)
        let features = try Product.shell("dumpe2fs -h \(host1.loop.path) 2>/dev/null")
        #expect(features.contains(" mmp "))
        #expect(features.contains("MMP update interval:      5"))
        try host1.succeed("sr_attach", sr, dconf: dconf1)

        let refused = try host2.run("EXTSR", [dconf2, "sr_attach", sr])
        expectFailure(
            refused, "EBUSY", 16,
            mentioning: [
                "in use by another host", "multi-mount protection names node '",
                "nothing was mounted"
            ])
        #expect(loop2.mountPoints.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: host2.path("mount/\(sr)")))
        #expect(try EXTSRFixture.isMounted(host1.mountPoint))

        try host1.succeed("sr_detach", sr, dconf: dconf1)
        let attached = try host2.run("EXTSR", [dconf2, "sr_attach", sr])
        #expect(attached.status == 0, "\(attached)")
        #expect(loop2.mountPoints == [host2.path("mount/\(sr)")])
        let detached = try host2.run("EXTSR", [dconf2, "sr_detach", sr])
        #expect(detached.status == 0, "\(detached)")
    }

    /// Without `multihost` EXTSR makes no MMP (a local disk), as before.
    @Test(.timeLimit(.minutes(1))) func localDisksHaveNoMMP() throws {
        let fixture = try EXTSRFixture()
        defer { fixture.tearDown() }
        try fixture.succeed("sr_create", fixture.sr, "0")
        #expect(try !Product.shell("dumpe2fs -h \(fixture.loop.path) 2>/dev/null").contains(" mmp "))
    }
}
