import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A powercutfs mount (Tests/powerloss/powercutfs.py): a FUSE filesystem that keeps in memory
/// everything not yet fsynced and loses it when its process dies, so killing it is a power cut.
/// The durable image lives in `backing`; `restart()` mounts it again after a cut.
///
/// This stands in for a disk losing power because the host cannot cut power to a real one
/// (device-mapper, which dm-log-writes/dm-flakey would need, is not available on the host).
final class PowerCutMount {
    static let python = "/usr/bin/python3"
    static let daemon = Product.packageRoot.appendingPathComponent("Tests/powerloss/powercutfs.py").path

    let backing: String
    let mountpoint: String
    let log: String
    private var process: Process?

    init(scratch: Scratch) throws {
        backing = scratch.path("durable")
        mountpoint = scratch.path("powercut")
        log = scratch.path("powercutfs.log")
        try FileManager.default.createDirectory(atPath: backing, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try start()
    }

    deinit { stop() }

    private func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = [Self.daemon, backing, mountpoint]
        if !FileManager.default.fileExists(atPath: log) { #expect(FileManager.default.createFile(atPath: log, contents: nil)) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardError = handle
        process.standardOutput = handle
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(20)
        while !isMounted {
            guard process.isRunning, Date() < deadline else {
                throw StorageTestError(
                    "powercutfs did not mount \(mountpoint): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
            usleep(10_000)
        }
    }

    /// The mount is listed and its daemon answers (statvfs reaches the daemon; ENOTCONN once it died).
    var isAlive: Bool {
        var status = statvfs()
        return isMounted && statvfs(mountpoint, &status) == 0
    }

    private var isMounted: Bool {
        guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        return table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4] == mountpoint
        }
    }

    /// Sends one command line to the daemon through its hidden control file.
    @discardableResult
    func control(_ command: String) -> Bool {
        let descriptor = open("\(mountpoint)/.powercut", O_WRONLY)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let line = Array((command + "\n").utf8)
        return write(descriptor, line, line.count) == line.count
    }

    /// Cuts power at the `count`-th fsync or fsyncdir from now (see powercutfs.py for the modes).
    func arm(atSync count: Int, torn: Bool, writeback: Double, seed: UInt64) {
        control("arm \(count) \(torn ? "torn" : "before") \(writeback) \(seed)")
    }

    /// Cuts power now, letting each dirty page reach the disk with probability `writeback`.
    func cut(writeback: Double, seed: UInt64) {
        control("cut \(writeback) \(seed)")
        waitForDeath()
    }

    /// The daemon's counters (fsyncs, fsyncdirs, writes, written_bytes).
    func counters() throws -> [String: Int] {
        let path = "\(backing).report"
        guard control("report \(path)") else { throw StorageTestError("powercutfs did not answer") }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONSerialization.jsonObject(with: data) as? [String: Int] ?? [:]
    }

    /// After a cut: waits for the daemon to be gone, detaches the dead mount, mounts the durable image.
    func restart() throws {
        waitForDeath()
        try start()
    }

    private func waitForDeath() {
        if let process {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        process = nil
        if isMounted { _ = umount2(mountpoint, Int32(MNT_DETACH)) }
    }

    /// Kills the daemon (if still running) and detaches the mount.
    func stop() { waitForDeath() }
}

struct StorageTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
