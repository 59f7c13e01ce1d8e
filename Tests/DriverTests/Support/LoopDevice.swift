import Foundation
import Testing

/// A loop device over a sparse file: a real block device for driver tests (needs root).
///
/// `release()` unmounts everything mounted from the device, detaches it and removes the file;
/// call it in a `defer` so that a failing test leaves nothing behind (`deinit` calls it too).
final class LoopDevice {
    struct SetupFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// `/dev/loopN`.
    let path: String
    let backingFile: String
    private var released = false
    private var ownsFile = true

    init(size: UInt64, in directory: String) throws {
        backingFile = "\(directory)/loop-\(UUID().uuidString.prefix(8)).img"
        guard FileManager.default.createFile(atPath: backingFile, contents: nil),
            let handle = FileHandle(forWritingAtPath: backingFile)
        else {
            throw SetupFailure(description: "cannot create \(backingFile)")
        }
        try handle.truncate(atOffset: size)
        try handle.close()
        let result = try Product.runProgram("losetup", ["--find", "--show", backingFile])
        guard result.status == 0 else {
            try? FileManager.default.removeItem(atPath: backingFile)
            throw SetupFailure(description: "losetup \(backingFile): \(result)")
        }
        path = result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A second loop device over `other`'s file: another block device with the same bytes, as a
    /// second host sees the same LUN. Its release leaves the file to `other`.
    init(sharing other: LoopDevice) throws {
        backingFile = other.backingFile
        ownsFile = false
        let result = try Product.runProgram("losetup", ["--find", "--show", backingFile])
        guard result.status == 0 else { throw SetupFailure(description: "losetup \(backingFile): \(result)") }
        path = result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit { release() }

    /// Where the device is mounted now, according to findmnt (not SMCore's own mount table).
    var mountPoints: [String] {
        let result = try? Product.runProgram("findmnt", ["--raw", "--noheadings", "--output", "TARGET", "--source", path])
        return (result?.standardOutput ?? "").split(separator: "\n").map(String.init)
    }

    func release() {
        guard !released else { return }
        released = true
        for mountPoint in mountPoints.reversed() {
            _ = try? Product.runProgram("umount", [mountPoint])
        }
        _ = try? Product.runProgram("losetup", ["--detach", path])
        if ownsFile { try? FileManager.default.removeItem(atPath: backingFile) }
    }
}
