import Foundation
import Testing

@testable import SMCore

/// Inputs the fuzz targets of Fuzz/ (Docs/fuzzing.md) crashed on, reduced to the field that
/// mattered and rebuilt here on a disk SMCore writes, so that each stays fixed without the
/// fuzzer. Each must answer an error, never trap.
@Suite struct FuzzRegressionTests {
    /// An 8 MiB disk with one block written, then `change` applied to the raw file.
    func disk(_ scratch: EngineScratch, change: (FileHandle, VHDImage) throws -> Void) throws -> String {
        let path = scratch.path("disk.vhd")
        let image = try scratch.create("disk.vhd", size: 8 << 20)
        try image.write(at: 0, bytes: bytes(4096, seed: 9))
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try change(handle, image)
        try handle.close()
        return path
    }

    /// fuzz-vhd-file, crash 1: a BAT entry naming a sector near 2^32 (past 2 TiB) moved the end of
    /// used space so far that the next new block's sector did not fit a BAT entry, and
    /// `UInt32(blockStart / 512)` trapped. Allocating a block now answers EIO.
    @Test func newBlockPastWhatABATEntryAddresses() throws {
        let scratch = try EngineScratch()
        let path = try disk(scratch) { handle, image in
            var entry = [UInt8](repeating: 0, count: 4)
            entry.setBigEndian32(0xFFFF_FF00, at: 0)
            try handle.seek(toOffset: image.header.tableOffset + 4)
            try handle.write(contentsOf: entry)
        }
        let image = try VHDImage.open(path, writable: true)
        #expect(throws: StorageError.self) { try image.write(at: 4 << 20, bytes: [UInt8](repeating: 1, count: 512)) }
        #expect(try image.read(at: 0, count: 4096) == bytes(4096, seed: 9))
    }

    /// fuzz-vhd-file, out of memory: a BAT whose every entry points into the metadata made the
    /// checker write one message (or three) per block, gigabytes for a large disk. Per-block
    /// problems are now counted past the first few.
    @Test func checkerBoundsPerBlockProblems() throws {
        let scratch = try EngineScratch()
        let image = try scratch.create("wide.vhd", size: 64 << 30)
        let entries = Int(image.header.maxTableEntries)
        let handle = try #require(FileHandle(forUpdatingAtPath: scratch.path("wide.vhd")))
        try handle.seek(toOffset: image.header.tableOffset)
        try handle.write(contentsOf: [UInt8](repeating: 0, count: entries * 4))
        try handle.close()
        let problems = VHDChecker.problems(ofFile: scratch.path("wide.vhd"))
        #expect(problems.count <= VHDChecker.blockProblemsListed + 8, "\(problems.count) problems for \(entries) blocks")
        #expect(problems.contains { $0.contains("clobbers headers") })
        #expect(problems.last?.hasPrefix("and ") == true && problems.last?.contains("more problems") == true)
    }

    /// The same through a parent locator: an offset past 2 TiB (but a file offset, so `open`
    /// takes it) puts the next block where no BAT entry can name it.
    @Test func newBlockAfterALocatorPastWhatABATEntryAddresses() throws {
        let scratch = try EngineScratch()
        let path = try disk(scratch) { handle, image in
            var header = image.header
            header.parentLocators[7] = VHDParentLocator(
                platformCode: VHDParentLocator.macX, dataSpace: 512, dataLength: 20,
                dataOffset: 1 << 45)
            try handle.seek(toOffset: image.footer.dataOffset)
            try handle.write(contentsOf: header.bytes)
        }
        let image = try VHDImage.open(path, writable: true)
        #expect(throws: StorageError.self) { try image.write(at: 4 << 20, bytes: [UInt8](repeating: 1, count: 512)) }
    }

    /// fuzz-intent, crash 1 (the input as found): "\r\n" is one Character in Swift, so splitting
    /// the text at "\n" kept a line without "=" inside the previous value instead of finding
    /// the record damaged, and a value ending in "\r" swallowed the next line on a round trip.
    @Test func intentRecordLinesEndAtEveryNewlineByte() {
        let found: [UInt8] = Array("sm-intent 1\noperation=coalesce\nchild=0b1a4f-54c\r\n7d-8e9f-0a1b2c3d4e5f\r".utf8)
        #expect(IntentRecord(bytes: found) == nil)
        let record = IntentRecord(operation: .coalesce, fields: ["child": "a\r", "parent": "b"])
        #expect(IntentRecord(bytes: record.bytes) == record)
    }
}
