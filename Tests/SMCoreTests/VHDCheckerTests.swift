import Foundation
import Testing
@testable import SMCore

@Suite struct VHDCheckerTests {
    func damaged(_ change: (FileHandle, VHDImage) throws -> Void) throws -> [String] {
        let scratch = try EngineScratch()
        let image = try scratch.create("disk.vhd", size: 4 << 20)
        try image.write(at: 0, bytes: bytes(3 << 20, seed: 9))
        #expect(VHDChecker.problems(ofFile: scratch.path("disk.vhd")).isEmpty)
        let handle = try #require(FileHandle(forUpdatingAtPath: scratch.path("disk.vhd")))
        try change(handle, image)
        try handle.close()
        return VHDChecker.problems(ofFile: scratch.path("disk.vhd"))
    }

    func flip(_ handle: FileHandle, at offset: UInt64) throws {
        try handle.seek(toOffset: offset)
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: [byte ^ 0x01])
    }

    /// Each kind of damage is named: checksums, footer copies, BAT bounds, overlaps, reserved
    /// bytes, geometry, truncation.
    @Test func namesEachDamage() throws {
        let footerChecksum = try damaged { handle, _ in try flip(handle, at: try handle.seekToEnd() - 512 + 64) }
        #expect(footerChecksum.contains { $0.contains("footer at the end") && $0.contains("checksum") })
        let copy = try damaged { handle, _ in try flip(handle, at: 70) }
        #expect(copy.contains { $0.contains("offset 0") })
        let header = try damaged { handle, _ in try flip(handle, at: 512 + 40) }
        #expect(header.contains { $0.contains("dynamic header") })
        let pastEnd = try damaged { handle, image in
            try handle.seek(toOffset: image.header.tableOffset + 4)
            try handle.write(contentsOf: [0x00, 0xFF, 0x00, 0x00])
        }
        #expect(pastEnd.contains { $0.contains("past the end") })
        let overlap = try damaged { handle, image in
            let first = try image.allocationTable()[0]
            var entry = [UInt8](repeating: 0, count: 4)
            entry.setBigEndian32(first + 8, at: 0)
            try handle.seek(toOffset: image.header.tableOffset + 4)
            try handle.write(contentsOf: entry)
        }
        #expect(overlap.contains { $0.contains("overlaps") })
        let truncated = try damaged { handle, _ in try handle.truncate(atOffset: 1_000_000) }
        #expect(!truncated.isEmpty)
        let tiny = try damaged { handle, _ in try handle.truncate(atOffset: 700) }
        #expect(tiny.contains { $0.contains("too short") })
        let reserved = try damaged { handle, image in
            var footer = image.footer
            footer.savedState = 0
            var raw = footer.bytes
            raw[200] = 7
            raw.setBigEndian32(raw.vhdChecksum(excludingFieldAt: 64), at: 64)
            try handle.seek(toOffset: 0)
            try handle.write(contentsOf: raw)
            try handle.seek(toOffset: try handle.seekToEnd() - 512)
            try handle.write(contentsOf: raw)
        }
        #expect(reserved.contains { $0.contains("reserved") })
        let geometry = try damaged { handle, image in
            var footer = image.footer
            footer.geometry = VHDGeometry(cylinders: 65535, heads: 16, sectorsPerTrack: 255)
            try handle.seek(toOffset: 0)
            try handle.write(contentsOf: footer.bytes)
            try handle.seek(toOffset: try handle.seekToEnd() - 512)
            try handle.write(contentsOf: footer.bytes)
        }
        #expect(geometry.contains { $0.contains("geometry") })
    }

    /// Garbage of any size never traps the checker.
    @Test func survivesGarbage() throws {
        let scratch = try EngineScratch()
        for (index, size) in [0, 511, 2048, 70_000].enumerated() {
            let path = scratch.path("garbage\(index).vhd")
            FileManager.default.createFile(atPath: path, contents: Data(bytes(size, seed: UInt8(index))))
            #expect(!VHDChecker.problems(ofFile: path).isEmpty)
        }
        #expect(VHDChecker.problems(ofFile: scratch.path("missing.vhd")) == ["cannot open \(scratch.path("missing.vhd"))"])
    }
}

@Suite struct IntentJournalTests {
    /// A record survives a round trip, marked with the host and process that wrote it; while
    /// its entry is held it is live (not claimable); once the holder is gone another claimant
    /// gets it; finishing removes it.
    @Test func liveAndAbandonedRecords() throws {
        let scratch = try EngineScratch()
        let journal = IntentJournal(srRoot: scratch.directory, hostIdentity: "host-a")
        #expect(journal.isEmpty)
        var entry: IntentEntry? = try journal.begin(IntentRecord(operation: "snapshot", fields: ["source": "a", "x": "1=2"]))
        #expect(!journal.isEmpty)
        #expect(journal.claimAbandoned().entries.isEmpty)
        #expect(journal.records().first?.live == true)
        entry = nil
        let claimed = journal.claimAbandoned().entries
        #expect(claimed.count == 1)
        #expect(claimed.first?.record == IntentRecord(operation: "snapshot", fields: [
            "source": "a", "x": "1=2", "host": "host-a", "pid": String(getpid()),
        ]))
        try claimed.first?.finish()
        #expect(journal.isEmpty)
        _ = entry
    }
}
