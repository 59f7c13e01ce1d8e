import Foundation
import Testing

/// Each error FileSR lists, produced by a real situation.
@Suite struct FileSRErrorTests {
    /// ENODEV: no such SR, no such VDI, SR not attached on this host, location missing.
    @Test func noSuchDevice() throws {
        let f = try FileSRFixture()
        let vdi = newUUID()
        try f.fails(19, "ENODEV", "sr_attach", f.sr)
        try f.fails(19, "ENODEV", "sr_scan", f.sr)
        try f.fails(19, "ENODEV", "vdi_create", f.sr, vdi, "2097152")
        try f.ok("sr_create", f.sr, "0")
        let notAttached = try f.fails(19, "ENODEV", "vdi_create", f.sr, vdi, "2097152")
        #expect(notAttached.reason.contains("not attached on this host"))
        try f.fails(19, "ENODEV", "sr_scan", f.sr)
        try f.ok("sr_attach", f.sr)
        try f.fails(19, "ENODEV", "vdi_attach", f.sr, vdi)
        try f.fails(19, "ENODEV", "vdi_resize", f.sr, vdi, "4194304")
        #expect(!FileManager.default.fileExists(atPath: f.vhd(vdi)))
        let elsewhere = try FileSRFixture(location: "/nonexistent-\(newUUID())")
        try elsewhere.fails(19, "ENODEV", "sr_create", elsewhere.sr, "0")
    }

    /// EBUSY: sr_delete with VDIs, sr_detach with an attached VDI, vdi_delete and vdi_resize of
    /// an attached VDI; nothing changes.
    @Test func busy() throws {
        let f = try FileSRFixture()
        try f.createAndAttach()
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "2097152")
        try f.fails(16, "EBUSY", "sr_delete", f.sr)
        try f.ok("vdi_attach", f.sr, vdi)
        try f.fails(16, "EBUSY", "sr_detach", f.sr)
        try f.fails(16, "EBUSY", "vdi_delete", f.sr, vdi)
        try f.fails(16, "EBUSY", "vdi_resize", f.sr, vdi, "8388608")
        #expect(try VHDOracle.qemuVirtualSize(f.vhd(vdi)) == 2 << 20)
        try f.ok("sr_scan", f.sr)
        try f.ok("vdi_detach", f.sr, vdi)
        try f.ok("sr_detach", f.sr)
        try f.fails(16, "EBUSY", "sr_delete", f.sr)
        #expect(FileManager.default.fileExists(atPath: f.vhd(vdi)))
    }

    /// ENOSPC: vdi_create on a really full filesystem (a 4 MiB tmpfs filled to the last byte), and
    /// sr_create with a Size larger than the filesystem. No partial VHD is left behind.
    @Test func noSpace() throws {
        let f = try FileSRFixture()
        let mountPoint = f.location
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try Product.shell("mount -t tmpfs -o size=4m sm-test-full \(mountPoint)")
        defer { _ = try? Product.runProgram("umount", [mountPoint]) }
        try f.fails(28, "ENOSPC", "sr_create", f.sr, String(1 << 30))
        try f.createAndAttach()
        _ = try Product.runProgram("dd", ["if=/dev/zero", "of=\(mountPoint)/filler", "bs=64k"])
        let vdi = newUUID()
        try f.fails(28, "ENOSPC", "vdi_create", f.sr, vdi, "1073741824")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: f.root).filter { $0.hasSuffix(".vhd") || $0.contains(vdi) }
        #expect(leftovers.isEmpty, "\(leftovers)")
        try FileManager.default.removeItem(atPath: "\(mountPoint)/filler")
        try f.ok("vdi_create", f.sr, vdi, "1073741824")
    }
}
