import Foundation
import SystemPackage
import Testing

@testable import SMCore

@Suite struct StorageErrorTests {
    /// A failed system call keeps its errno as the cause; the exit code is the errno itself where
    /// the spec has it with that meaning, ENOSPC for the out-of-space family, EIO otherwise.
    @Test func systemCallKeepsItsErrno() {
        for kept in [Errno.notPermitted, .resourceBusy, .noSuchDevice, .noLocks] {
            let error = StorageError.system(kept, "open", path: "/x")
            #expect(error.code == kept && error.systemErrno == kept, "\(error)")
        }
        for full in [Errno.noSpace, .diskQuotaExceeded, .fileTooLarge] {
            #expect(StorageError.system(full, "write", path: "/x").code == .noSpace)
        }
        // EINVAL, EEXIST and ENOSYS mean bad input, an existing SR/VDI, an unimplemented verb to a
        // caller: a system call failing with them is EIO, its errno still the cause.
        for other in [Errno.permissionDenied, .invalidArgument, .fileExists, .noFunction, .noSuchFileOrDirectory] {
            let error = StorageError.system(other, "rename", path: "/a -> /b")
            #expect(error.code == .ioError && error.systemErrno == other, "\(error)")
            #expect(error.message == "rename /a -> /b: \(other.symbolicName) \(other)")
        }
    }

    /// The VHD engine throws StorageError: damage is EIO with the `malformed` cause, a file that
    /// cannot be opened keeps the errno of its open.
    @Test func vhdFailuresCarryTheirCause() throws {
        let scratch = try EngineScratch()
        let missing = scratch.path("missing.vhd")
        do throws(StorageError) {
            _ = try VHDImage.open(missing)
            Issue.record("opened a missing file")
        } catch {
            #expect(error.code == .ioError && error.systemErrno == .noSuchFileOrDirectory, "\(error)")
            #expect(error.message.hasPrefix("open \(missing): ENOENT"), "\(error)")
        }
        var footer = VHDFooter(size: 2 << 20, diskType: .dynamic, uniqueID: CanonicalUUID.random().bytes).bytes
        footer[0] = 0
        do throws(StorageError) {
            _ = try VHDFooter(bytes: footer)
            Issue.record("parsed a damaged footer")
        } catch {
            #expect(error == .malformed("footer cookie is not 'conectix'") && error.cause == .malformed)
        }
        let reworded = StorageError.system(.resourceBusy, "open", path: "/x").reworded("VDI v cannot be attached: busy")
        #expect(
            reworded.code == .resourceBusy && reworded.systemErrno == .resourceBusy && reworded.message == "VDI v cannot be attached: busy")
    }

    /// Positioned reads through swift-system fill the buffer unless the file ends; writes land at
    /// their offset without moving the file offset.
    @Test func positionedReadsAndWrites() throws {
        let scratch = try EngineScratch()
        let path = scratch.path("file")
        let descriptor = try Syscall.open(path, .readWrite, options: [.create, .exclusiveCreate])
        defer { descriptor.closeIgnoringErrors() }
        try descriptor.writeAll(bytes(10_000, seed: 3), at: 512, path: path)
        #expect(try descriptor.size(path: path) == 10_512)
        #expect(try descriptor.read(count: 100, at: 512, path: path) == Array(bytes(10_000, seed: 3).prefix(100)))
        #expect(try descriptor.read(count: 1_000, at: 10_000, path: path).count == 512)
        #expect(try descriptor.read(count: 10, at: 20_000, path: path).isEmpty)
        try descriptor.resize(to: 1024, path: path)
        #expect(try descriptor.size(path: path) == 1024)
        #expect(throws: StorageError.self) { try Syscall.open(path, .readWrite, options: [.create, .exclusiveCreate]) }
    }
}
