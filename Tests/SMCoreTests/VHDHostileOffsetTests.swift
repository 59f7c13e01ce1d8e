import Foundation
import Testing

@testable import SMCore

/// Offsets read from a damaged (or hostile) file that no file can have: values past
/// Int64.max, or near UInt64.max where adding a length overflows. Opening, reading, writing and
/// checking must answer an error (EIO), never trap.
@Suite struct VHDHostileOffsetTests {
    static let huge: UInt64 = 0xFFFF_FFFF_FFFF_FE00

    /// A 4 MiB disk with one block written, then `change` applied to its parsed structures and
    /// both footers and the header rewritten with valid checksums.
    func disk(
        _ scratch: EngineScratch, footer changeFooter: (inout VHDFooter) -> Void = { _ in },
        header changeHeader: (inout VHDDynamicHeader) -> Void = { _ in }
    ) throws -> String {
        let path = scratch.path("disk.vhd")
        let image = try scratch.create("disk.vhd", size: 4 << 20)
        try image.write(at: 0, bytes: bytes(4096, seed: 3))
        var footer = image.footer
        var header = image.header
        changeFooter(&footer)
        changeHeader(&header)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: 512)
        try handle.write(contentsOf: header.bytes)
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: footer.bytes)
        try handle.seek(toOffset: try handle.seekToEnd() - 512)
        try handle.write(contentsOf: footer.bytes)
        try handle.close()
        return path
    }

    /// Opens, reads, writes, grows, repairs: each may fail, none may trap.
    func exercise(_ path: String) {
        if let image = try? VHDImage.open(path, writable: true) {
            _ = try? image.allocationTable()
            _ = try? image.read(at: 0, count: 4096)
            _ = try? image.write(at: 2 << 20, bytes: [1, 2, 3])
            _ = try? image.setHidden(true)
            _ = try? image.resize(to: image.size + (64 << 20))
            _ = try? image.repairTail()
            _ = try? VHDChain.resolveParent(of: image)
        }
        #expect(!VHDChecker.problems(ofFile: path).isEmpty)
    }

    @Test func headerOffsetNearTheTopOfUInt64() throws {
        let scratch = try EngineScratch()
        let path = try disk(scratch, footer: { $0.dataOffset = Self.huge })
        #expect(throws: StorageError.self) { try VHDImage.open(path) }
        exercise(path)
    }

    @Test func tableOffsetNearTheTopOfUInt64() throws {
        let scratch = try EngineScratch()
        let path = try disk(scratch, header: { $0.tableOffset = Self.huge })
        exercise(path)
    }

    @Test func locatorOffsetNearTheTopOfUInt64() throws {
        let scratch = try EngineScratch()
        let path = try disk(
            scratch, footer: { $0.diskType = .differencing },
            header: {
                $0.setParentName("parent.vhd")
                $0.parentUniqueID = [UInt8](repeating: 7, count: 16)
                $0.parentLocators[0] = VHDParentLocator(
                    platformCode: VHDParentLocator.macX, dataSpace: 512, dataLength: 20,
                    dataOffset: Self.huge)
            })
        exercise(path)
    }

    /// A BAT whose entry count promises far more than the file holds is refused before it is read.
    @Test func tableLargerThanTheFile() throws {
        let scratch = try EngineScratch()
        let path = try disk(scratch, header: { $0.maxTableEntries = 0xFFFF_FFFF })
        let image = try VHDImage.open(path)
        #expect(throws: StorageError.self) { try image.allocationTable() }
        exercise(path)
    }

    /// A batmap header (creator tap 1.2) whose map offset is past Int64.max.
    @Test func batmapOffsetNearTheTopOfUInt64() throws {
        let scratch = try EngineScratch()
        let path = try disk(scratch, footer: { $0.creatorVersion = 0x0001_0002 })
        let image = try VHDImage.open(path)
        let batmapHeader = (image.header.tableOffset + UInt64(image.header.maxTableEntries) * 4 + 511) / 512 * 512
        var raw = [UInt8](repeating: 0, count: 512)
        raw.replaceSubrange(0..<8, with: Array("tdbatmap".utf8))
        raw.setBigEndian64(Self.huge, at: 8)
        raw.setBigEndian32(1, at: 16)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: batmapHeader)
        try handle.write(contentsOf: raw)
        try handle.close()
        #expect(VHDChecker.problems(ofFile: path).contains { $0.contains("batmap") })
    }
}
