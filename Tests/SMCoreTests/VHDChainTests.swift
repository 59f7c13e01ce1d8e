import Foundation
import Testing

@testable import SMCore

/// A temporary directory for engine-level tests, removed at the end.
final class EngineScratch {
    let directory: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sm-engine-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// A base disk, or a child of `parent` (a file in this directory).
    @discardableResult
    func create(_ name: String, size: UInt64, parent: String? = nil) throws -> VHDImage {
        var setup: VHDImage.DifferencingSetup?
        if let parent {
            let image = try VHDImage.open(path(parent))
            let time = try image.modificationTime()
            setup = VHDImage.DifferencingSetup(
                parentUniqueID: image.footer.uniqueID,
                parentTimestamp: VHDTime.fromUnix(Int64(time.tv_sec)), parentFileName: parent)
        }
        return try VHDImage.create(at: path(name), size: size, uniqueID: CanonicalUUID.random().bytes, differencing: setup)
    }
}

func bytes(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 17 &+ ($0 >> 9)) }
}

@Suite struct VHDChainTests {
    /// Three levels with writes at odd offsets and lengths read back exactly through the chain;
    /// each level keeps reading what it had when its child was made.
    @Test func readsThroughAChainAtAnyAlignment() throws {
        let scratch = try EngineScratch()
        let size: UInt64 = 6 << 20
        var model = [UInt8](repeating: 0, count: Int(size))
        func write(_ name: String, _ offset: Int, _ data: [UInt8]) throws {
            try VHDChain.open(scratch.path(name), writable: true).write(at: UInt64(offset), bytes: data)
            model.replaceSubrange(offset..<offset + data.count, with: data)
        }
        try scratch.create("base.vhd", size: size)
        try write("base.vhd", 1, bytes(3 << 20, seed: 1))
        let baseModel = model
        try scratch.create("middle.vhd", size: size, parent: "base.vhd")
        try write("middle.vhd", 2_097_000, bytes(1000, seed: 2))
        let middleModel = model
        let leaf = try scratch.create("leaf.vhd", size: size, parent: "middle.vhd")
        try write("leaf.vhd", 511, bytes(3, seed: 3))
        try write("leaf.vhd", 5 << 20, bytes(70_000, seed: 4))
        // Without its chain a differencing disk refuses to guess its parent's bytes (a partial
        // sector in block 1, which the leaf does not hold).
        #expect(throws: StorageError.self) { try leaf.write(at: (3 << 20) + 1, bytes: [1]) }
        let chain = try VHDChain.open(scratch.path("leaf.vhd"))
        #expect(chain.length == 3)
        #expect(try chain.read(at: 0, count: Int(size)) == model)
        #expect(try chain.read(at: 510, count: 5) == Array(model[510..<515]))
        #expect(try VHDChain.open(scratch.path("middle.vhd")).read(at: 0, count: Int(size)) == middleModel)
        #expect(try VHDChain.open(scratch.path("base.vhd")).read(at: 0, count: Int(size)) == baseModel)
        for name in ["base.vhd", "middle.vhd", "leaf.vhd"] {
            #expect(VHDChecker.problems(ofFile: scratch.path(name)).isEmpty, "\(name)")
        }
    }

    /// A child larger than its parent (resized after the snapshot) reads zeros past the parent's end.
    @Test func childLargerThanParent() throws {
        let scratch = try EngineScratch()
        try scratch.create("parent.vhd", size: 2 << 20).write(at: 0, bytes: [UInt8](repeating: 0x5A, count: 2 << 20))
        let child = try scratch.create("child.vhd", size: 2 << 20, parent: "parent.vhd")
        try child.resize(to: 4 << 20)
        let chain = try VHDChain.open(scratch.path("child.vhd"))
        let read = try chain.read(at: (2 << 20) - 4, count: 8)
        #expect(read == [0x5A, 0x5A, 0x5A, 0x5A, 0, 0, 0, 0])
    }

    /// Absorbing a child into its parent makes the parent read exactly what the child read,
    /// growing it if needed, and leaves a sound file.
    @Test func absorbMergesTheChild() throws {
        let scratch = try EngineScratch()
        let parent = try scratch.create("parent.vhd", size: 4 << 20)
        try parent.write(at: 0, bytes: bytes(3 << 20, seed: 5))
        try scratch.create("child.vhd", size: 4 << 20, parent: "parent.vhd")
        let child = try VHDChain.open(scratch.path("child.vhd"), writable: true)
        try child.write(at: 1234, bytes: bytes(10_000, seed: 6))
        try child.leaf.resize(to: 8 << 20)
        try child.write(at: 6 << 20, bytes: bytes(4096, seed: 7))
        let expected = try VHDChain.open(scratch.path("child.vhd")).read(at: 0, count: 8 << 20)
        let target = try VHDImage.open(scratch.path("parent.vhd"), writable: true)
        try target.absorb(try VHDImage.open(scratch.path("child.vhd")))
        #expect(target.size == 8 << 20)
        #expect(try VHDImage.open(scratch.path("parent.vhd")).read(at: 0, count: 8 << 20) == expected)
        #expect(VHDChecker.problems(ofFile: scratch.path("parent.vhd")).isEmpty)
    }

    /// A tail left by an interrupted merge (blocks past the end, no footer there) is cut back.
    @Test func repairTailRestoresTheFooter() throws {
        let scratch = try EngineScratch()
        let image = try scratch.create("disk.vhd", size: 4 << 20)
        try image.write(at: 0, bytes: bytes(4096, seed: 8))
        let size = try image.fileSize()
        let handle = try #require(FileHandle(forWritingAtPath: scratch.path("disk.vhd")))
        try handle.seek(toOffset: size)
        try handle.write(contentsOf: [UInt8](repeating: 0x11, count: 3000))
        try handle.close()
        #expect(!VHDChecker.problems(ofFile: scratch.path("disk.vhd")).isEmpty)
        try VHDImage.open(scratch.path("disk.vhd"), writable: true).repairTail()
        #expect(VHDChecker.problems(ofFile: scratch.path("disk.vhd")).isEmpty)
        #expect(try VHDImage.open(scratch.path("disk.vhd")).read(at: 0, count: 4096) == bytes(4096, seed: 8))
    }

    /// Parents are found through the locators; a wrong unique id or a missing parent is an error.
    @Test func parentResolution() throws {
        let scratch = try EngineScratch()
        try scratch.create("parent.vhd", size: 2 << 20)
        let child = try scratch.create("child.vhd", size: 2 << 20, parent: "parent.vhd")
        #expect(try VHDChain.resolveParent(of: child) == scratch.path("parent.vhd"))
        #expect(
            VHDChain.decodeLocator(
                platformCode: VHDParentLocator.w2ku, Array(".\\p.vhd".utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }) == "p.vhd")
        try FileManager.default.removeItem(atPath: scratch.path("parent.vhd"))
        try scratch.create("parent.vhd", size: 2 << 20)
        #expect(throws: StorageError.self) { try VHDChain.open(scratch.path("child.vhd")) }
        #expect(!VHDChecker.parentProblems(child: child, parentPath: scratch.path("parent.vhd")).isEmpty)
        try FileManager.default.removeItem(atPath: scratch.path("parent.vhd"))
        #expect(throws: StorageError.self) { try VHDChain.open(scratch.path("child.vhd")) }
    }
}
