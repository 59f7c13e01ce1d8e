import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The one place system calls are made: files are opened, read, written, resized and closed
/// through swift-system's `FileDescriptor` (FileDescriptor+Storage.swift); what swift-system
/// lacks (fsync, flock, rename, link, statvfs, directories ...) is called here, EINTR retried.
/// Failures become `StorageError`s naming the operation and path, the errno kept
/// (`StorageError.system`).
public enum Syscall {
    /// Runs `body` until it does not fail with EINTR; returns its result or throws the errno.
    @discardableResult
    public static func retrying<T: BinaryInteger>(
        _ operation: String, path: String? = nil,
        _ body: () -> T
    ) throws(StorageError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = Errno(rawValue: errno)
            if code == .interrupted { continue }
            throw .system(code, operation, path: path)
        }
    }

    /// Like `retrying` but hands back the raw errno for callers that branch on it.
    public static func attempt<T: BinaryInteger>(_ body: () -> T) -> Result<T, Errno> {
        while true {
            let result = body()
            if result >= 0 { return .success(result) }
            let code = Errno(rawValue: errno)
            if code == .interrupted { continue }
            return .failure(code)
        }
    }

    /// Runs a swift-system call; the `Errno` it throws becomes `system(errno, operation, path)`
    /// (swift-system retries EINTR itself). The one place its untyped errors are converted.
    @inline(__always)
    static func call<T>(_ operation: String, path: String?, _ body: () throws -> T) throws(StorageError) -> T {
        do { return try body() } catch { throw .system(error as? Errno ?? .ioError, operation, path: path) }
    }

    /// Opens `path` with swift-system, always close-on-exec. `permissions` apply to a file created
    /// (`.create` among the options).
    public static func open(
        _ path: String, _ mode: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions = [],
        permissions: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead]
    ) throws(StorageError) -> FileDescriptor {
        // The C-string overload: a FilePath would be built and normalised on every open, which a
        // walk through thousands of VHDs (sr_scan of a 10,000-deep chain) pays for visibly.
        try call("open", path: path) {
            try path.withCString {
                try FileDescriptor.open(
                    $0, mode, options: options.union(.closeOnExec),
                    permissions: options.contains(.create) ? permissions : nil)
            }
        }
    }

    /// Reads standard input until end of file or `limit` bytes.
    public static func readStandardInput(limit: Int) throws(StorageError) -> [UInt8] {
        try FileDescriptor.standardInput.readToEnd(limit: limit, path: "stdin")
    }

    /// flock(2) on an open file (swift-system has no call for it), EINTR retried; the errno is
    /// handed back for callers that branch on it (EWOULDBLOCK with LOCK_NB).
    public static func flock(_ descriptor: FileDescriptor, _ operation: Int32) -> Result<Void, Errno> {
        attempt { lockFile(descriptor.rawValue, operation) }.map { _ in () }
    }

    /// Makes a directory entry change (create, rename, unlink) durable.
    public static func fsyncDirectory(_ path: String) throws(StorageError) {
        let descriptor = try open(path, .readOnly, options: .directory)
        defer { descriptor.closeIgnoringErrors() }
        try descriptor.sync(path: path)
    }

    public static func fileStatus(_ path: String) -> stat? {
        var status = stat()
        guard case .success = attempt({ stat(path, &status) }) else { return nil }
        return status
    }

    public static func exists(_ path: String) -> Bool { fileStatus(path) != nil }

    /// The target of a symbolic link (readlink(2)), nil when `path` is not one or cannot be read.
    /// For `/proc/<pid>/fd/<n>` this names the open file without touching its filesystem.
    public static func symbolicLinkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = buffer.withUnsafeMutableBufferPointer { readlink(path, $0.baseAddress!, Int(PATH_MAX)) }
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func isDirectory(_ path: String) -> Bool {
        guard let status = fileStatus(path) else { return false }
        return (status.st_mode & S_IFMT) == S_IFDIR
    }

    public static func fileSystemStatus(_ path: String) throws(StorageError) -> statvfs {
        var status = statvfs()
        try retrying("statvfs", path: path) { statvfs(path, &status) }
        return status
    }

    /// Creates a directory (and missing parents) with `mode`; existing directories are fine.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(StorageError) {
        if isDirectory(path) { return }
        var prefix = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/"
            prefix += String(component)
            if isDirectory(prefix) { continue }
            switch attempt({ Glibc.mkdir(prefix, mode) }) {
            case .success, .failure(.fileExists): continue
            case .failure(let code): throw .system(code, "mkdir", path: prefix)
            }
        }
    }

    public static func rename(_ from: String, _ to: String) throws(StorageError) {
        try retrying("rename", path: "\(from) -> \(to)") { Glibc.rename(from, to) }
    }

    /// Removes a file; a missing file is fine.
    public static func unlinkIfPresent(_ path: String) throws(StorageError) {
        switch attempt({ Glibc.unlink(path) }) {
        case .success, .failure(.noSuchFileOrDirectory): return
        case .failure(let code): throw .system(code, "unlink", path: path)
        }
    }

    /// Removes an empty directory; a missing one is fine.
    public static func removeDirectoryIfPresent(_ path: String) throws(StorageError) {
        switch attempt({ Glibc.rmdir(path) }) {
        case .success, .failure(.noSuchFileOrDirectory): return
        case .failure(let code): throw .system(code, "rmdir", path: path)
        }
    }

    /// Removes a directory tree (no symlinks followed); a missing one is fine.
    public static func removeTree(_ path: String) throws(StorageError) {
        guard let status = lstatus(path) else { return }
        if (status.st_mode & S_IFMT) == S_IFDIR {
            for entry in try directoryEntries(path) { try removeTree(path + "/" + entry) }
            try removeDirectoryIfPresent(path)
        } else {
            try unlinkIfPresent(path)
        }
    }

    public static func lstatus(_ path: String) -> stat? {
        var status = stat()
        guard case .success = attempt({ lstat(path, &status) }) else { return nil }
        return status
    }

    /// The names in a directory, without `.` and `..`. A failed readdir is an error, not the end
    /// of a shorter listing.
    public static func directoryEntries(_ path: String) throws(StorageError) -> [String] {
        switch listDirectory(path) {
        case .success(let names): return names.filter { $0 != "." && $0 != ".." }
        case .failure(let code): throw .system(code, "readdir", path: path)
        }
    }

    /// Reads a whole (small) file.
    public static func readFile(_ path: String, limit: Int = 1 << 20) throws(StorageError) -> [UInt8] {
        let descriptor = try open(path, .readOnly)
        defer { descriptor.closeIgnoringErrors() }
        return try descriptor.read(count: limit, at: 0, path: path)
    }

    /// Writes a small file atomically and durably: a claimed temporary (`<path>.tmp.<random>`,
    /// see `ClaimedTemporary`) written and fsynced, renamed over `path`, the directory fsynced. A
    /// crash leaves the old or the new contents, plus at most a temporary file that
    /// `ClaimedTemporary.removeIfAbandoned` can sweep. The temporary is created with `mode`
    /// (O_EXCL), so a secret written with 0600 is never readable by others, not even for an instant.
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(StorageError) {
        let directory = parentDirectory(of: path)
        let temporary = path + temporarySuffix + String(CanonicalUUID.random().string.prefix(8))
        let descriptor = try ClaimedTemporary.create(temporary, mode: mode)
        defer { descriptor.closeIgnoringErrors() }
        do throws(StorageError) {
            try descriptor.writeAll(bytes, at: 0, path: temporary)
            try descriptor.sync(path: temporary)
            try rename(temporary, path)
        } catch {
            try? unlinkIfPresent(temporary)
            throw error
        }
        try fsyncDirectory(directory)
    }

    /// What `writeFileAtomically` puts between a file's name and the random part of its temporary.
    public static let temporarySuffix = ".tmp."

    public static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }

    /// Seconds since the Unix epoch, with fractions.
    public static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    public static func monotonicNow() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    public static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

/// glibc's flock(2), named apart from `Syscall.flock` (inside `Syscall`, `Glibc.flock` names the struct).
private func lockFile(_ descriptor: Int32, _ operation: Int32) -> Int32 { flock(descriptor, operation) }
