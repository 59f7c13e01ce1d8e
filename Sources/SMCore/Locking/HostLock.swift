import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A host-local `flock` under `<lock_dir>/<SR-UUID>/`, held until `release()` or process exit.
///
/// Lock files are never removed (removing a lock file others wait on is a race); they live on
/// tmpfs and vanish at reboot.
public final class HostLock {
    public enum Mode { case shared, exclusive }

    private var descriptor: FileDescriptor?
    public let path: String

    private init(descriptor: FileDescriptor, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { release() }

    /// The locked descriptor, for `ExternalCommand.run(holding:)`: a child given it shares the
    /// lock until it exits. Nil once released.
    var descriptorForChildren: FileDescriptor? { descriptor }

    public func release() {
        descriptor?.closeIgnoringErrors()
        descriptor = nil
    }

    /// The other processes that have the lock file open, as `name (pid N)`, for an EBUSY message
    /// (a child run `holding:` the lock outlives a killed parent, and is then the one named).
    /// Found by reading the links in `/proc/<pid>/fd` (never by stat, which would reach into other
    /// processes' files, a hung NFS mount's say); processes whose descriptors cannot be read are
    /// skipped.
    static func processes(holding descriptor: FileDescriptor) -> [String] {
        guard let file = Syscall.symbolicLinkTarget("/proc/self/fd/\(descriptor.rawValue)") else { return [] }
        let ownPID = getpid()
        var found: [String] = []
        for entry in (try? Syscall.directoryEntries("/proc")) ?? [] {
            guard let pid = Int32(entry), pid != ownPID,
                let descriptors = try? Syscall.directoryEntries("/proc/\(pid)/fd")
            else { continue }
            let holds = descriptors.contains { Syscall.symbolicLinkTarget("/proc/\(pid)/fd/\($0)") == file }
            guard holds else { continue }
            let command =
                (try? Syscall.readFile("/proc/\(pid)/comm", limit: 64))
                .map { String(decoding: $0, as: UTF8.self).trimmingWhitespace() } ?? "?"
            found.append("\(ArgumentParsing.printable(command)) (pid \(pid))")
            if found.count == 8 { break }
        }
        return found
    }

    /// Waits up to `timeout` seconds for the lock; EBUSY naming the lock, and the processes that
    /// hold it open, after that.
    public static func acquire(_ path: String, mode: Mode, timeout: Double) throws(StorageError) -> HostLock {
        try Syscall.makeDirectories(Syscall.parentDirectory(of: path))
        let descriptor = try Syscall.open(path, .readWrite, options: .create, permissions: [.ownerReadWrite])
        let operation = (mode == .shared ? LOCK_SH : LOCK_EX) | LOCK_NB
        let deadline = Syscall.monotonicNow() + timeout
        var delay: UInt32 = 1_000
        while true {
            switch Syscall.flock(descriptor, operation) {
            case .success:
                return HostLock(descriptor: descriptor, path: path)
            case .failure(.wouldBlock):
                if Syscall.monotonicNow() >= deadline {
                    // Who holds it is worth a walk through /proc only for a caller that waited.
                    let holders = timeout > 0 ? processes(holding: descriptor) : []
                    descriptor.closeIgnoringErrors()
                    throw .hostLockHeld(path, waited: Int(timeout), holders: holders)
                }
                Syscall.sleep(seconds: Double(delay) / 1_000_000)
                delay = min(delay * 2, 50_000)
            case .failure(let code):
                descriptor.closeIgnoringErrors()
                throw .system(code, "flock", path: path)
            }
        }
    }
}
