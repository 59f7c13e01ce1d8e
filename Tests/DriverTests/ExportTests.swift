import Foundation
import SMCore
import Testing

/// vdi_export and vdi_import on file-based SRs (Docs/export.md), run through the built FileSR
/// and EXTSR with stdin and stdout redirected by a shell, as an operator runs them.
@Suite(.serialized) struct ExportTests {
    static let size: UInt64 = 64 << 20

    /// Runs `command` in /bin/sh with the scratch area's host paths; `$FileSR`, `$EXTSR` and
    /// `$DCONF` (the SR's dconf) are set.
    @discardableResult
    static func shell(_ sr: CopyOnWriteSR, _ command: String, dconf: String? = nil) throws -> ProductResult {
        var environment = sr.scratch.environment
        environment["FileSR"] = Product.path("FileSR")
        environment["EXTSR"] = Product.path("EXTSR")
        environment["DCONF"] = dconf ?? sr.dconf
        return try Product.runProgram("/bin/sh", ["-c", command], environment: environment)
    }

    /// A 64 MiB VDI whose data lies in a chain of three files (two snapshots below the leaf),
    /// with writes that start and end inside sectors, cover part of a block, and overwrite a
    /// parent's data; blocks 20 to 31 are never written. Returns the VDI and its bytes.
    static func chainedVDI(_ sr: CopyOnWriteSR) throws -> (String, [UInt8]) {
        let vdi = try sr.create(size: size)
        try sr.write(vdi, at: 0, pattern(3 << 20, seed: 1))
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, newUUID())
        try sr.write(vdi, at: (1 << 20) + 100, pattern(5000, seed: 2))
        try sr.write(vdi, at: 10 << 20, pattern(1 << 20, seed: 3))
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, newUUID())
        try sr.write(vdi, at: (10 << 20) + 512 * 7, pattern(512 * 3, seed: 4))
        try sr.write(vdi, at: size - 4096, pattern(4096, seed: 5))
        #expect(try VHDChain.open(sr.path(vdi)).length == 3)
        return (vdi, try sr.read(vdi))
    }

    /// Blocks of 2 MiB that hold anything but zeros.
    static func dataBlocks(_ bytes: [UInt8]) -> Int {
        stride(from: 0, to: bytes.count, by: 2 << 20).filter { start in
            bytes[start..<min(bytes.count, start + (2 << 20))].contains { $0 != 0 }
        }.count
    }

    static func allocatedBytes(_ path: String) -> UInt64 {
        var status = stat()
        guard stat(path, &status) == 0 else { return .max }
        return UInt64(status.st_blocks) * 512
    }

    static func contents(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// raw and vhd out of a three-file chain and back in: every byte as the chain reads; the VHD
    /// is one dynamic file (no parent) that qemu-img reads as the raw export and that the
    /// engine's checker and libvhdi accept; unallocated blocks stay holes in the raw file and
    /// are absent from the VHD and from both imported VDIs.
    @Test(.timeLimit(.minutes(5))) func roundTripsFlattenTheChain() throws {
        let sr = try CopyOnWriteSR("sm-export")
        let (vdi, expected) = try Self.chainedVDI(sr)
        let blocks = Self.dataBlocks(expected)
        #expect(blocks < 32)
        let raw = sr.scratch.path("out.raw")
        let vhd = sr.scratch.path("out.vhd")
        let exported = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) raw > \(raw)")
        #expect(exported.status == 0 && exported.standardError.isEmpty, "\(exported)")
        #expect(try Self.contents(raw) == expected)
        // Holes where nothing was allocated: at most the data blocks (plus a block of slack).
        #expect(Self.allocatedBytes(raw) <= UInt64(blocks + 1) << 21, "raw export allocates \(Self.allocatedBytes(raw)) bytes")

        let toVHD = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) VHD | cat > \(vhd)")
        #expect(toVHD.status == 0 && toVHD.standardError.isEmpty, "\(toVHD)")
        let image = try VHDImage.open(vhd)
        #expect(!image.isDifferencing && image.size == Self.size)
        #expect(try image.allocationTable().count { $0 != VHDImage.unallocated } <= blocks)
        #expect(try VHDChain.open(vhd).read(at: 0, count: Int(Self.size)) == expected)
        let compare = try Product.runProgram("qemu-img", ["compare", "-f", "vpc", "-F", "raw", vhd, raw])
        #expect(compare.status == 0, "qemu-img compare: \(compare)")
        let info = try Product.runProgram("qemu-img", ["info", "--output=json", "-f", "vpc", vhd])
        #expect(info.status == 0 && info.standardOutput.contains("\"virtual-size\": \(Self.size)"), "\(info)")
        let check = try Product.run("sm-vhd", ["check", vhd])
        #expect(check.status == 0, "sm-vhd check: \(check)")
        #expect(try VHDOracle.libvhdiMediaSize(vhd) == Self.size)

        for (format, file, size) in [("raw", raw, String(Self.size)), ("vhd", vhd, "0")] {
            let imported = newUUID()
            let result = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_import \(sr.sr) \(imported) \(format) \(size) < \(file)")
            #expect(result.status == 0 && result.standardError.isEmpty, "import \(format): \(result)")
            #expect(try sr.read(imported) == expected, "import \(format)")
            let table = try VHDImage.open(sr.path(imported)).allocationTable()
            #expect(table.count { $0 != VHDImage.unallocated } == blocks, "import \(format): zero blocks were written")
            #expect(try sr.listed()[imported]?.size == Self.size)
            let back = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(imported) raw | cmp - \(raw)")
            #expect(back.status == 0, "export of the \(format) import: \(back)")
        }
        try sr.expectClean()
    }

    /// FileSR to EXTSR (ext4 on a loop device) and back, raw one way and vhd the other: bytes
    /// identical; an import larger than the EXTSR's free space is ENOSPC before reading a byte.
    @Test(.timeLimit(.minutes(5))) func acrossSRTypes() throws {
        let sr = try CopyOnWriteSR("sm-export-ext")
        let (vdi, expected) = try Self.chainedVDI(sr)
        let ext = try EXTSRFixture()
        defer { ext.tearDown() }
        ext.scratch.environment = sr.scratch.environment
        try ext.succeed("sr_create", ext.sr, "0")
        try ext.succeed("sr_attach", ext.sr)
        defer { _ = try? ext.run("sr_detach", ext.sr) }
        let onExt = newUUID()
        let back = newUUID()
        let there = try Self.shell(
            sr,
            "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) raw | \"$EXTSR\" '\(ext.dconf)' vdi_import \(ext.sr) \(onExt) raw \(Self.size)"
        )
        #expect(there.status == 0, "FileSR -> EXTSR: \(there)")
        let again = try Self.shell(
            sr, "\"$EXTSR\" '\(ext.dconf)' vdi_export \(ext.sr) \(onExt) vhd | \"$FileSR\" \"$DCONF\" vdi_import \(sr.sr) \(back) vhd 0")
        #expect(again.status == 0, "EXTSR -> FileSR: \(again)")
        #expect(try sr.read(back) == expected)
        let tooBig = try Self.shell(sr, "\"$EXTSR\" '\(ext.dconf)' vdi_import \(ext.sr) \(newUUID()) raw \(1 << 30) < /dev/zero")
        #expect(tooBig.status == 28 && tooBig.reason.hasPrefix("ENOSPC: "), "\(tooBig)")
        try ext.succeed("vdi_delete", ext.sr, onExt)
    }

    /// Streams that are not what they claim are refused, and nothing is left: no VDI, no
    /// temporary file, nothing listed. Cut short: EIO; too long, the wrong size, not a VHD,
    /// a differencing VHD, a VHD that does not end in its footer: EINVAL.
    @Test(.timeLimit(.minutes(5))) func badStreamsLeaveNothing() throws {
        let sr = try CopyOnWriteSR("sm-export-bad")
        let (vdi, _) = try Self.chainedVDI(sr)
        let raw = sr.scratch.path("good.raw")
        let vhd = sr.scratch.path("good.vhd")
        try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) raw > \(raw)")
        try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) vhd > \(vhd)")
        let vhdSize = try Self.contents(vhd).count
        let differencing = sr.path(vdi)  // the leaf of a chain
        let cases: [(String, String, Int32, String)] = [
            ("raw \(Self.size + 512)", "< \(raw)", 5, "short raw stream"),
            ("raw \(Self.size - 512)", "< \(raw)", 22, "raw stream longer than Size"),
            ("raw \(Self.size)", "< /dev/null", 5, "empty raw stream"),
            ("vhd 0", "< \(raw)", 22, "raw data sent as vhd"),
            ("vhd 0", "< /dev/null", 5, "empty vhd stream"),
            ("vhd 0", "< \(differencing)", 22, "differencing VHD"),
            ("vhd \(Self.size * 2)", "< \(vhd)", 22, "vhd with another Size"),
            ("vhd 0", "< \(vhd)", 0, "control: the good VHD"),
            ("vhd 0", "< <(head -c \(vhdSize - 512) \(vhd))", 5, "vhd without its footer"),
            ("vhd 0", "< <(head -c \(vhdSize / 2) \(vhd))", 5, "vhd cut in a block"),
            ("vhd 0", "< <(cat \(vhd) \(vhd))", 22, "vhd followed by more data"),
            ("qcow2 0", "< \(vhd)", 22, "unknown format")
        ]
        for (arguments, redirect, status, what) in cases {
            let target = newUUID()
            let result = try Self.shell(sr, "exec bash -c '\"$FileSR\" \"$DCONF\" vdi_import \(sr.sr) \(target) \(arguments) \(redirect)'")
            #expect(result.status == status, "\(what): \(result)")
            if status == 0 {
                try sr.expectOK("vdi_delete", sr.sr, target)
                continue
            }
            #expect(!FileManager.default.fileExists(atPath: sr.path(target)), "\(what): the VDI was left")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: sr.root).filter { $0.hasPrefix(".") && $0 != ".sm" }
            #expect(leftovers.isEmpty, "\(what): left \(leftovers)")
            #expect(try sr.listed()[target] == nil, "\(what): listed")
        }
        // The dconf cannot come from stdin too; an existing VDI is EEXIST, its file untouched.
        let fromStdin = try Self.shell(sr, "echo \"$DCONF\" | \"$FileSR\" @- vdi_import \(sr.sr) \(newUUID()) vhd 0")
        #expect(fromStdin.status == 22, "\(fromStdin)")
        let before = try Self.contents(sr.path(vdi))
        let exists = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_import \(sr.sr) \(vdi) vhd 0 < \(vhd)")
        #expect(exists.status == 17, "\(exists)")
        #expect(try Self.contents(sr.path(vdi)) == before)
        try sr.expectClean()
    }

    /// A VDI attached on this host, or locked with vdi_lock (on any host), may be written while
    /// it is read: vdi_export is EBUSY. A snapshot of it exports.
    @Test func busyVDIsAreNotExported() throws {
        let sr = try CopyOnWriteSR("sm-export-busy")
        let vdi = try sr.create(size: 4 << 20)
        try sr.expectOK("vdi_attach", sr.sr, vdi)
        let attached = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) raw > /dev/null")
        #expect(attached.status == 16, "\(attached)")
        try sr.expectOK("vdi_detach", sr.sr, vdi)
        try sr.expectOK("vdi_lock", sr.sr, vdi, "FALSE", "vm-1")
        let locked = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) vhd > /dev/null")
        #expect(locked.status == 16, "\(locked)")
        try sr.expectOK("vdi_unlock", sr.sr, vdi, "vm-1")
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        let exported = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(snapshot) raw | wc -c")
        #expect(exported.status == 0 && exported.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "\(4 << 20)")
    }

    /// vdi_import killed at each of its fault points leaves no VDI; the next sr_scan removes
    /// the temporary file; the same import then succeeds.
    @Test(.timeLimit(.minutes(3))) func killedImportLeavesNothing() throws {
        let sr = try CopyOnWriteSR("sm-export-crash")
        let (vdi, expected) = try Self.chainedVDI(sr)
        let vhd = sr.scratch.path("good.vhd")
        try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) vhd > \(vhd)")
        for point in FaultPoint.Import.allCases {
            let target = newUUID()
            var environment = sr.scratch.environment
            environment["SM_FAULT_POINT"] = point.rawValue
            environment["FileSR"] = Product.path("FileSR")
            environment["DCONF"] = sr.dconf
            let killed = try Product.runProgram(
                "/bin/sh", ["-c", "exec \"$FileSR\" \"$DCONF\" vdi_import \(sr.sr) \(target) vhd 0 < \(vhd)"], environment: environment)
            #expect(killed.status == 128 + 9, "\(point): \(killed)")
            #expect(try sr.listed()[target] == nil, "\(point)")
            #expect(!FileManager.default.fileExists(atPath: sr.path(target)))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: sr.root).filter { $0.hasPrefix(".") && $0 != ".sm" }
            #expect(leftovers.isEmpty, "\(point): sr_scan left \(leftovers)")
            let again = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_import \(sr.sr) \(target) vhd 0 < \(vhd)")
            #expect(again.status == 0, "\(point): \(again)")
            #expect(try sr.read(target) == expected)
        }
        try sr.expectClean()
    }

    /// The progress bar is drawn on a terminal (a pty from script(1)) and never otherwise.
    @Test func progressOnlyOnATerminal() throws {
        let sr = try CopyOnWriteSR("sm-export-tty")
        let vdi = try sr.create(size: 8 << 20)
        let file = sr.scratch.path("out.raw")
        let onTerminal = try Self.shell(sr, "script -qec '\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) raw > \(file)' /dev/null")
        #expect(onTerminal.status == 0 && onTerminal.standardOutput.contains("vdi_export [") && onTerminal.standardOutput.contains("100%"))
        let quiet = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_export \(sr.sr) \(vdi) raw > \(file)")
        #expect(quiet.status == 0 && quiet.standardError.isEmpty, "\(quiet)")
    }

    /// A sparse raw file whose holes end inside blocks (data from 3.5 MiB, a hole from 4 MiB to
    /// 7.5 MiB, data again to the end), as vdi_export's 512 KiB pieces leave them: the import
    /// skips only whole blocks of hole and reads every byte of the others from their start
    /// (SEEK_DATA moved the offset to the data once, and the block was read from there: EIO).
    @Test func importsAFileWhoseHolesEndInsideBlocks() throws {
        let sr = try CopyOnWriteSR("sm-export-holes")
        let size = 8 << 20
        let file = sr.scratch.path("holes.raw")
        #expect(FileManager.default.createFile(atPath: file, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        var expected = [UInt8](repeating: 0, count: size)
        for (start, seed) in [(7 << 19, UInt64(1)), (15 << 19, 2)] {
            let data = pattern(1 << 19, seed: seed)
            try handle.seek(toOffset: UInt64(start))
            try handle.write(contentsOf: data)
            expected.replaceSubrange(start..<start + data.count, with: data)
        }
        try handle.close()
        let imported = newUUID()
        let result = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_import \(sr.sr) \(imported) raw \(size) < \(file)")
        #expect(result.status == 0, "\(result)")
        #expect(try sr.read(imported) == expected)
    }

    /// A VHD that qemu-img made (blocks in the order qemu-io wrote them, not disk order; a size
    /// from its CHS geometry, not a multiple of 2 MiB) imports with the same bytes; the VDI is
    /// that size rounded up to 2 MiB, the rest zeros.
    @Test func importsAVHDQemuMade() throws {
        let sr = try CopyOnWriteSR("sm-export-qemu")
        let vhd = sr.scratch.path("qemu.vhd")
        #expect(try Product.runProgram("qemu-img", ["create", "-q", "-f", "vpc", vhd, "100M"]).status == 0)
        let writes = ["write -P 0xaa 40M 1M", "write -P 0x55 0 1M", "write -P 0x11 99M 512"]
        #expect(try Product.runProgram("qemu-io", ["-f", "vpc"] + writes.flatMap { ["-c", $0] } + [vhd]).status == 0)
        let qemuSize = try #require(try VHDOracle.qemuVirtualSize(vhd))
        #expect(qemuSize % (2 << 20) != 0)
        let vdi = newUUID()
        let result = try Self.shell(sr, "\"$FileSR\" \"$DCONF\" vdi_import \(sr.sr) \(vdi) vhd 0 < \(vhd)")
        #expect(result.status == 0, "\(result)")
        let imported = try sr.read(vdi)
        #expect(UInt64(imported.count) == (qemuSize + (2 << 20) - 1) / (2 << 20) * (2 << 20))
        let reference = try VHDChain.open(vhd).read(at: 0, count: Int(qemuSize))
        #expect(Array(imported[0..<Int(qemuSize)]) == reference)
        #expect(imported[Int(qemuSize)...].allSatisfy { $0 == 0 })
        #expect(try VHDImage.open(sr.path(vdi)).allocationTable().count { $0 != VHDImage.unallocated } == 3)
    }

    /// Drivers without the verbs answer ENOSYS with their reason.
    @Test func unsupportedDriversSayWhy() throws {
        let scratch = try Scratch("sm-export-enosys")
        let dconf = "<dconf><target>127.0.0.1</target><targetIQN>iqn.2000-01.com.example:x</targetIQN></dconf>"
        let result = try scratch.run("ISCSISR", [dconf, "vdi_export", newUUID(), newUUID(), "raw"])
        #expect(result.status == 38 && result.reason.hasPrefix("ENOSYS: ISCSISR vdi_export: not supported"), "\(result)")
    }
}
