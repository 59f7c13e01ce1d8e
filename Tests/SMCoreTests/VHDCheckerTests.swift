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
        #expect(overlap.contains { $0.contains("block 0 overlaps block 1") }, "\(overlap)")
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

    /// A sound child with one data block, then `change` applied to its file; the checker's answer.
    func damagedChild(_ change: (FileHandle, VHDImage, String) throws -> Void) throws -> [String] {
        let scratch = try EngineScratch()
        try scratch.create("base.vhd", size: 4 << 20)
        let child = try scratch.create("child.vhd", size: 4 << 20, parent: "base.vhd")
        try child.write(at: 0, bytes: bytes(4096, seed: 3))
        let path = scratch.path("child.vhd")
        #expect(VHDChecker.problems(ofFile: path).isEmpty)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try change(handle, child, path)
        try handle.close()
        return VHDChecker.problems(ofFile: path)
    }

    /// Rewrites the dynamic header with `change` applied to its bytes, checksum recomputed.
    func rewriteHeader(_ handle: FileHandle, _ change: (inout [UInt8]) -> Void) throws {
        try handle.seek(toOffset: 512)
        var raw = [UInt8](try #require(try handle.read(upToCount: 1024)))
        change(&raw)
        raw.setBigEndian32(raw.vhdChecksum(excludingFieldAt: 36), at: 36)
        try handle.seek(toOffset: 512)
        try handle.write(contentsOf: raw)
    }

    /// Rewrites both footer copies with `change` applied, checksum recomputed.
    func rewriteFooters(_ handle: FileHandle, _ change: (inout [UInt8]) -> Void) throws {
        try handle.seek(toOffset: 0)
        var raw = [UInt8](try #require(try handle.read(upToCount: 512)))
        change(&raw)
        raw.setBigEndian32(raw.vhdChecksum(excludingFieldAt: 64), at: 64)
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: raw)
        try handle.seek(toOffset: try handle.seekToEnd() - 512)
        try handle.write(contentsOf: raw)
    }

    /// What blktap's `vhd-util check` rejects, the checker rejects too: a block before a parent
    /// locator (the layout an old resize left: "block clobbers headers"), a locator reaching into
    /// the footer, locator reserved bits, a platform code twice, a misaligned locator, stray bytes
    /// in an unused locator slot or in a base disk's parent name, unknown footer features, a
    /// saved-state flag above 1 and a parent timestamp in the future.
    @Test func rejectsWhatBlktapRejects() throws {
        let locator0 = 576
        let behindBlock = try damagedChild { handle, image, _ in
            // Locator 0's data moved to where the footer was, the footer one sector further on.
            let footerOffset = try handle.seekToEnd() - 512
            let locator = image.header.parentLocators[0]
            try handle.seek(toOffset: locator.dataOffset)
            let data = try #require(try handle.read(upToCount: 512))
            try handle.seek(toOffset: footerOffset)
            try handle.write(contentsOf: data)
            try handle.write(contentsOf: image.footer.bytes)
            try rewriteHeader(handle) { $0.setBigEndian64(footerOffset, at: locator0 + 16) }
        }
        #expect(behindBlock.contains { $0.contains("clobbers headers") }, "\(behindBlock)")
        let intoFooter = try damagedChild { handle, _, _ in
            let footerOffset = try handle.seekToEnd() - 512
            try rewriteHeader(handle) { $0.setBigEndian64(footerOffset, at: locator0 + 16) }
        }
        #expect(intoFooter.contains { $0.contains("overlaps") && $0.contains("footer") }, "\(intoFooter)")
        let reserved = try damagedChild { handle, _, _ in try rewriteHeader(handle) { $0[locator0 + 15] = 1 } }
        #expect(reserved.contains { $0.contains("reserved bits") }, "\(reserved)")
        let duplicate = try damagedChild { handle, _, _ in
            try rewriteHeader(handle) { $0.setBigEndian32(VHDParentLocator.w2ku, at: locator0 + 2 * 24) }
        }
        #expect(duplicate.contains { $0.contains("duplicate platform code") }, "\(duplicate)")
        let misaligned = try damagedChild { handle, image, _ in
            let offset = image.header.parentLocators[2].dataOffset + 8
            try rewriteHeader(handle) { $0.setBigEndian64(offset, at: locator0 + 2 * 24 + 16) }
        }
        #expect(misaligned.contains { $0.contains("not sector aligned") }, "\(misaligned)")
        let strayLocator = try damagedChild { handle, _, _ in try rewriteHeader(handle) { $0[locator0 + 5 * 24 + 13] = 1 } }
        #expect(strayLocator.contains { $0.contains("unused parent locator 5") }, "\(strayLocator)")
        let future = try damagedChild { handle, _, _ in
            try rewriteHeader(handle) { $0.setBigEndian32(VHDTime.now() + 86_400, at: 56) }
        }
        #expect(future.contains { $0.contains("parent timestamp") && $0.contains("future") }, "\(future)")
        let features = try damagedChild { handle, _, _ in try rewriteFooters(handle) { $0.setBigEndian32(0x6, at: 8) } }
        #expect(features.contains { $0.contains("features") }, "\(features)")
        let saved = try damagedChild { handle, _, _ in try rewriteFooters(handle) { $0[84] = 2 } }
        #expect(saved.contains { $0.contains("saved-state") }, "\(saved)")
        let strayName = try damaged { handle, _ in try rewriteHeader(handle) { $0[64 + 300] = 0x41 } }
        #expect(strayName.contains { $0.contains("parent fields") }, "\(strayName)")
    }

    /// Garbage of any size never traps the checker.
    @Test func survivesGarbage() throws {
        let scratch = try EngineScratch()
        for (index, size) in [0, 511, 2048, 70_000].enumerated() {
            let path = scratch.path("garbage\(index).vhd")
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes(size, seed: UInt8(index))))
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
        var entry: IntentEntry? = try journal.begin(IntentRecord(operation: .snapshot, fields: ["source": "a", "x": "1=2"]))
        #expect(!journal.isEmpty)
        #expect(journal.claimAbandoned().entries.isEmpty)
        #expect(journal.records().first?.live == true)
        entry = nil
        let claimed = journal.claimAbandoned().entries
        #expect(claimed.count == 1)
        #expect(
            claimed.first?.record
                == IntentRecord(
                    operation: .snapshot,
                    fields: [
                        "source": "a", "x": "1=2", "host": "host-a", "pid": String(getpid())
                    ]))
        try claimed.first?.finish()
        #expect(journal.isEmpty)
        _ = entry
    }
}
