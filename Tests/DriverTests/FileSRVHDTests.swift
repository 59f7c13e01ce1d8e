import Foundation
import Testing

/// Every VHD FileSR makes is read by qemu and libvhdi as the right size, all zeros; resize
/// updates both footer copies and keeps data.
@Suite struct FileSRVHDTests {
    /// Sizes from 2 MiB to 2040 GiB: qemu-img and vhdiinfo agree on the size and qemu reads zeros.
    @Test func createdImagesReadByTools() throws {
        let f = try FileSRFixture()
        try f.createAndAttach()
        let sizes: [UInt64] = [2 << 20, 100 << 20, 1 << 30, 127 << 30, 2040 << 30]
        for size in sizes {
            let vdi = newUUID()
            try f.ok("vdi_create", f.sr, vdi, String(size))
            #expect(try VHDOracle.qemuVirtualSize(f.vhd(vdi)) == size)
            #expect(try VHDOracle.libvhdiMediaSize(f.vhd(vdi)) == size)
            #expect(try VHDOracle.readsAsZeros(f.vhd(vdi), size: size, scratch: f.scratch))
            let footers = try VHDOracle.footerSizes(f.vhd(vdi))
            #expect(footers.end == size && footers.copy == size)
        }
    }

    /// After vdi_resize both footer copies and both tools report the new size, and data written
    /// by qemu before the resize reads back unchanged, including when the BAT must grow past its
    /// reserved room and blocks move (4 MiB to 2040 GiB).
    @Test func resizeKeepsData() throws {
        let f = try FileSRFixture()
        try f.createAndAttach()
        let cases: [(UInt64, UInt64)] = [(4 << 20, 2040 << 30), (8 << 20, 64 << 20), (1 << 30, 3 << 30)]
        for (from, to) in cases {
            let vdi = newUUID()
            try f.ok("vdi_create", f.sr, vdi, String(from))
            let writes = ["write -P 0xaa 0 1M", "write -P 0x5c 3M 512k", "write -P 0x11 1536k 4k"]
            let qemu = try Product.runProgram("qemu-io", ["-f", "vpc"] + writes.flatMap { ["-c", $0] } + [f.vhd(vdi)])
            #expect(qemu.status == 0, "\(qemu)")
            try f.ok("vdi_resize", f.sr, vdi, String(to))
            #expect(try VHDOracle.qemuVirtualSize(f.vhd(vdi)) == to)
            #expect(try VHDOracle.libvhdiMediaSize(f.vhd(vdi)) == to)
            let footers = try VHDOracle.footerSizes(f.vhd(vdi))
            #expect(footers.end == to && footers.copy == to)
            let raw = f.scratch.path("reference-\(vdi).raw")
            try Product.shell("truncate -s \(to) \(raw)")
            let reference = try Product.runProgram("qemu-io", ["-f", "raw"] + writes.flatMap { ["-c", $0] } + [raw])
            #expect(reference.status == 0)
            let compare = try Product.runProgram("qemu-img", ["compare", "-f", "vpc", "-F", "raw", f.vhd(vdi), raw])
            #expect(compare.status == 0, "\(compare)")
            try FileManager.default.removeItem(atPath: raw)
        }
    }
}
