import Foundation
import SMCore
import Testing

/// vdi_resize as the outside test of FileSR exercised it: large resizes of differencing VDIs
/// (whose BAT outgrows its reserved room), resizes killed at every step and after random delays,
/// and resizes on a full filesystem. After each, the file must keep blktap's layout (all metadata
/// before the first data block), a valid footer at its end, two identical footer copies once the
/// next resize or snapshot has run, and the guest data.
@Suite(.serialized) struct ResizeCrashTests {
    static let mebibyte: UInt64 = 1 << 20
    static let large: UInt64 = 10 << 30

    /// A differencing VDI with data blocks of its own: 4 MiB written, snapshotted, then two runs
    /// written into the child. Returns the VDI and what it reads (its first 4 MiB).
    func differencingWithBlocks(_ sr: CopyOnWriteSR, seed: UInt64 = 60) throws -> (String, [UInt8]) {
        let vdi = try sr.create(size: 4 * Self.mebibyte)
        var expected = pattern(4 << 20, seed: seed)
        try sr.write(vdi, at: 0, expected)
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, newUUID())
        let first = pattern(1 << 20, seed: seed + 1)
        let second = pattern(512 << 10, seed: seed + 2)
        try sr.write(vdi, at: 0, first)
        try sr.write(vdi, at: 3 << 20, second)
        expected.replaceSubrange(0..<(1 << 20), with: first)
        expected.replaceSubrange((3 << 20)..<((3 << 20) + (512 << 10)), with: second)
        return (vdi, expected)
    }

    /// blktap's layout rules, computed here independently of VHDChecker: a valid footer at the
    /// end, the copy at 0 identical, and every data block starting at or after the end of the
    /// header, the sector-padded BAT and the parent locators, and ending before the footer.
    static func blktapLayoutProblems(_ path: String) throws -> [String] {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let end = Array(data[(data.count - 512)...])
        guard (try? VHDFooter(bytes: end)) != nil else { return ["no valid footer at the end"] }
        var problems: [String] = []
        if end != Array(data[0..<512]) { problems.append("footer copy at 0 differs from the footer at the end") }
        let image = try VHDImage.open(path)
        var metadataEnd = (image.header.tableOffset + UInt64(image.header.maxTableEntries) * 4 + 511) / 512 * 512
        for locator in image.header.parentLocators where !locator.isEmpty {
            metadataEnd = max(metadataEnd, locator.dataOffset + locator.dataSpaceInBytes)
        }
        for (block, entry) in try image.allocationTable().enumerated() where entry != VHDImage.unallocated {
            let start = UInt64(entry) * 512
            if start < metadataEnd { problems.append("block \(block) at \(start) clobbers headers (metadata ends at \(metadataEnd))") }
            if start + VHDImage.bitmapSize + VHDImage.blockSize > UInt64(data.count - 512) {
                problems.append("block \(block) clobbers footer")
            }
        }
        return problems
    }

    /// True when the last 512 bytes of the file are a valid VHD footer.
    static func endFooterValid(_ path: String) throws -> Bool {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        guard size >= 512 else { return false }
        try handle.seek(toOffset: size - 512)
        return (try? VHDFooter(bytes: [UInt8](try handle.readToEnd() ?? Data()))) != nil
    }

    /// The file passes our own checker from the command line.
    static func expectVHDClean(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try Product.run("sm-vhd", ["check", path])
        #expect(result.status == 0, "sm-vhd check \(path): \(result)", sourceLocation: sourceLocation)
        #expect(try blktapLayoutProblems(path) == [], sourceLocation: sourceLocation)
    }

    /// Size, data and every checker agree about `vdi` after a resize to `size`.
    func expectSound(
        _ sr: CopyOnWriteSR, _ vdi: String, size: UInt64, data: [UInt8],
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(try sr.listed(sourceLocation: sourceLocation)[vdi]?.size == size, sourceLocation: sourceLocation)
        try Self.expectVHDClean(sr.path(vdi), sourceLocation: sourceLocation)
        // qemu and libvhdi read the copy at offset 0: they must see the same size as blktap.
        #expect(try VHDOracle.qemuVirtualSize(sr.path(vdi)) == size, sourceLocation: sourceLocation)
        #expect(try VHDOracle.libvhdiMediaSize(sr.path(vdi)) == size, sourceLocation: sourceLocation)
        let chain = try VHDChain.open(sr.path(vdi))
        #expect(try chain.read(at: 0, count: data.count) == data, "data of \(vdi)", sourceLocation: sourceLocation)
        #expect(try chain.read(at: UInt64(data.count), count: 1 << 20).allSatisfy { $0 == 0 }, sourceLocation: sourceLocation)
    }

    /// A large resize of a differencing VDI (BAT past its reserved room) keeps every parent
    /// locator and the BAT before every data block, as blktap requires, twice in a row; a base
    /// VDI resized the same way still compares equal to its raw contents under qemu.
    @Test(.timeLimit(.minutes(2))) func largeResizeKeepsMetadataBeforeBlocks() throws {
        let sr = try CopyOnWriteSR("sm-resize")
        let (vdi, expected) = try differencingWithBlocks(sr)
        for size in [Self.large, 4 * Self.large] {
            try sr.expectOK("vdi_resize", sr.sr, vdi, String(size))
            try expectSound(sr, vdi, size: size, data: expected)
        }
        try sr.expectClean()

        let base = try sr.create(size: 4 * Self.mebibyte)
        let data = pattern(3 << 20, seed: 70)
        try sr.write(base, at: 0, data)
        try sr.expectOK("vdi_resize", sr.sr, base, String(Self.large))
        try expectSound(sr, base, size: Self.large, data: data)
        let raw = sr.scratch.path("base.raw")
        #expect(FileManager.default.createFile(atPath: raw, contents: Data(data)))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: raw))
        try handle.truncate(atOffset: Self.large)
        try handle.close()
        let compared = try Product.runProgram("qemu-img", ["compare", "-f", "vpc", "-F", "raw", sr.path(base), raw])
        #expect(compared.status == 0, "qemu-img compare: \(compared)")
    }

    /// A large resize killed at every step: the file still ends in a valid footer; a snapshot
    /// taken next repairs before freezing (both files clean, footers identical); the resize then
    /// completes; sr_check, sm-vhd check, qemu and libvhdi agree and the data reads back.
    @Test(.timeLimit(.minutes(2)), arguments: FaultPoint.Resize.allCases) func largeResizeKilled(point: FaultPoint.Resize) throws {
        let sr = try CopyOnWriteSR("sm-resize-crash")
        let (vdi, expected) = try differencingWithBlocks(sr)
        let killed = try sr.run("vdi_resize", [sr.sr, vdi, String(Self.large)], environment: ["SM_FAULT_POINT": point.rawValue])
        #expect(killed.status == 128 + 9, "\(point): \(killed)")
        #expect(try Self.endFooterValid(sr.path(vdi)), "\(point): no valid footer at the end")
        let size = try #require(try sr.listed()[vdi]?.size, "\(point): VDI not listed")
        #expect(size == 4 * Self.mebibyte || size == Self.large)
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        try Self.expectVHDClean(sr.path(snapshot))
        try Self.expectVHDClean(sr.path(vdi))
        try sr.expectClean()
        try sr.expectOK("vdi_resize", sr.sr, vdi, String(Self.large))
        try expectSound(sr, vdi, size: Self.large, data: expected)
        try sr.expectClean()
    }

    /// A small resize (no BAT growth) killed between its two footer writes leaves them different;
    /// a same-size resize repairs them (the end copy, written first, wins), and so does a
    /// snapshot before it makes the file a read-only parent.
    @Test(.timeLimit(.minutes(1))) func smallResizeKilledBetweenFootersIsRepaired() throws {
        let sr = try CopyOnWriteSR("sm-resize-footers")
        let vdi = try sr.create(size: 4 * Self.mebibyte)
        let data = pattern(1 << 20, seed: 80)
        try sr.write(vdi, at: 0, data)
        let point = ["SM_FAULT_POINT": FaultPoint.Resize.endFooterWritten.rawValue]
        #expect(try sr.run("vdi_resize", [sr.sr, vdi, String(6 * Self.mebibyte)], environment: point).status == 128 + 9)
        let torn = try VHDOracle.footerSizes(sr.path(vdi))
        #expect(torn.end == 6 * Self.mebibyte && torn.copy == 4 * Self.mebibyte, "the window this test is about: \(torn)")
        try sr.expectOK("vdi_resize", sr.sr, vdi, String(6 * Self.mebibyte))
        try expectSound(sr, vdi, size: 6 * Self.mebibyte, data: data)
        try sr.expectClean()

        #expect(try sr.run("vdi_resize", [sr.sr, vdi, String(8 * Self.mebibyte)], environment: point).status == 128 + 9)
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        try expectSound(sr, snapshot, size: 8 * Self.mebibyte, data: data)
        try expectSound(sr, vdi, size: 8 * Self.mebibyte, data: data)
        try sr.expectClean()
    }

    /// A file whose end holds no footer because a writer died while appending (block data past
    /// the old end, as older versions left it) is repaired by a same-size resize and by a
    /// snapshot: the footer goes back after the last byte in use, the data is intact.
    @Test(.timeLimit(.minutes(1))) func missingEndFooterIsRepaired() throws {
        let sr = try CopyOnWriteSR("sm-resize-tail")
        let data = pattern(3 << 20, seed: 120)
        var vdis: [String] = []
        for _ in 0..<2 {
            let vdi = try sr.create(size: 4 * Self.mebibyte)
            try sr.write(vdi, at: 0, data)
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: sr.path(vdi)))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(pattern((2 << 20) + 512, seed: 121)))
            try handle.close()
            #expect(try !Self.endFooterValid(sr.path(vdi)))
            vdis.append(vdi)
        }
        try sr.expectOK("vdi_resize", sr.sr, vdis[0], String(4 * Self.mebibyte))
        try expectSound(sr, vdis[0], size: 4 * Self.mebibyte, data: data)
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdis[1], snapshot)
        try expectSound(sr, snapshot, size: 4 * Self.mebibyte, data: data)
        try expectSound(sr, vdis[1], size: 4 * Self.mebibyte, data: data)
        try sr.expectClean()
    }

    /// Resizes killed after random delays, as the outside test did (20 runs, large and small
    /// alternately): every file ends in a valid footer, and the next resize (or a snapshot, then
    /// the resize) leaves it clean with its data.
    @Test(.timeLimit(.minutes(5))) func randomKills() throws {
        let sr = try CopyOnWriteSR("sm-resize-random")
        // How long a whole resize takes, process start included: delays are drawn up to that.
        let (probe, _) = try differencingWithBlocks(sr, seed: 90)
        let started = Date()
        try sr.expectOK("vdi_resize", sr.sr, probe, String(Self.large))
        let span = max(Date().timeIntervalSince(started), 0.02)
        var generator = SeededGenerator(seed: UInt64(Date().timeIntervalSince1970))
        for iteration in 0..<20 {
            let (vdi, expected) = try differencingWithBlocks(sr, seed: UInt64(100 + iteration))
            let target = iteration % 2 == 0 ? Self.large : 6 * Self.mebibyte
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Product.path("FileSR"))
            process.arguments = [sr.dconf, "vdi_resize", sr.sr, vdi, String(target)]
            process.environment = ProcessInfo.processInfo.environment.merging(sr.scratch.environment) { $1 }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            let delay = Double.random(in: 0...span, using: &generator)
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let note = "iteration \(iteration), killed after \(Int(delay * 1000)) ms"
            #expect(try Self.endFooterValid(sr.path(vdi)), "\(note): no valid footer at the end")
            if iteration % 4 < 2 { try sr.expectOK("vdi_snapshot", sr.sr, vdi, newUUID()) }
            try sr.expectOK("vdi_resize", sr.sr, vdi, String(target))
            try expectSound(sr, vdi, size: target, data: expected)
        }
        try sr.expectClean()
    }

    /// A BAT-growing resize on a full filesystem (a small tmpfs) answers ENOSPC and leaves the
    /// file byte for byte as it was; with space freed, the same resize succeeds.
    @Test(.timeLimit(.minutes(1))) func resizeWithoutSpaceChangesNothing() throws {
        let fixture = try FileSRFixture()
        let mountPoint = fixture.location
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try Product.shell("mount -t tmpfs -o size=16m sm-resize-enospc \(mountPoint)")
        defer { _ = try? Product.runProgram("umount", [mountPoint]) }
        try fixture.createAndAttach()
        let vdi = newUUID()
        try fixture.ok("vdi_create", fixture.sr, vdi, String(8 * Self.mebibyte))
        let data = pattern(6 << 20, seed: 110)
        try VHDChain.open(fixture.vhd(vdi), writable: true).write(at: 0, bytes: data)
        // Fill the filesystem, leaving less than one block free.
        let status = try FileManager.default.attributesOfFileSystem(forPath: mountPoint)
        let free = (status[.systemFreeSize] as? NSNumber)?.uint64Value ?? 0
        let filler = "\(mountPoint)/filler"
        #expect(FileManager.default.createFile(atPath: filler, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
        try? handle.write(contentsOf: Data(count: Int(free - min(free, Self.mebibyte))))
        try handle.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: fixture.vhd(vdi)))
        try fixture.fails(28, "ENOSPC", "vdi_resize", fixture.sr, vdi, String(Self.large))
        #expect(try Data(contentsOf: URL(fileURLWithPath: fixture.vhd(vdi))) == before, "the failed resize changed the file")
        try Self.expectVHDClean(fixture.vhd(vdi))
        try FileManager.default.removeItem(atPath: filler)
        try fixture.ok("vdi_resize", fixture.sr, vdi, String(Self.large))
        try Self.expectVHDClean(fixture.vhd(vdi))
        #expect(try VHDChain.open(fixture.vhd(vdi)).read(at: 0, count: data.count) == data)
    }
}
