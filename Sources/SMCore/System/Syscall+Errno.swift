import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The system calls of the lock protocol (Locking/): it answers each errno with its own outcome
/// (EEXIST: the mutex is taken; ENOENT: released meanwhile; ...), so these hand the `Errno`
/// back instead of throwing a `StorageError`. EINTR is retried as everywhere in System/.
extension Syscall {
    /// Opens `path` with swift-system, close-on-exec; the errno handed back. `permissions` apply
    /// to a file created (`.create` among the options).
    public static func openOrErrno(
        _ path: String, _ mode: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions,
        permissions: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead]
    ) -> Result<FileDescriptor, Errno> {
        do {
            let descriptor = try path.withCString {
                try FileDescriptor.open(
                    $0, mode, options: options.union(.closeOnExec),
                    permissions: options.contains(.create) ? permissions : nil)
            }
            return .success(descriptor)
        } catch {
            return .failure(error as? Errno ?? .ioError)
        }
    }

    /// Creates `path`, which must not exist (O_CREAT | O_EXCL), open for writing.
    public static func createExclusively(_ path: String) -> Result<FileDescriptor, Errno> {
        openOrErrno(path, .writeOnly, options: [.create, .exclusiveCreate])
    }

    /// unlink(2).
    public static func remove(_ path: String) -> Result<Void, Errno> {
        attempt { Glibc.unlink(path) }.map { _ in () }
    }

    /// link(2): a second name `link` for the file `existing`.
    public static func link(_ existing: String, _ link: String) -> Result<Void, Errno> {
        attempt { Glibc.link(existing, link) }.map { _ in () }
    }

    /// lstat(2): the status of `path` itself, a symbolic link not followed.
    public static func linkStatus(_ path: String) -> Result<stat, Errno> {
        var status = stat()
        return attempt { lstat(path, &status) }.map { _ in status }
    }

    /// The names in a directory, `.` and `..` included; the errno of opendir or readdir.
    public static func listDirectory(_ path: String) -> Result<[String], Errno> {
        listDirectoryWithTypes(path).map { $0.map(\.name) }
    }

    /// `listDirectory` with each entry's type as readdir gives it (`DT_REG`, `DT_DIR`, ...;
    /// `DT_UNKNOWN` where the filesystem does not say): a hint taken at the listing, which the
    /// file may no longer match when it is opened.
    public static func listDirectoryWithTypes(_ path: String) -> Result<[(name: String, type: UInt8)], Errno> {
        guard let handle = opendir(path) else { return .failure(Errno(rawValue: errno)) }
        defer { closedir(handle) }
        var entries: [(name: String, type: UInt8)] = []
        while true {
            errno = 0
            guard let entry = readdir(handle) else {
                let code = errno
                return code == 0 ? .success(entries) : .failure(Errno(rawValue: code))
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            entries.append((name, entry.pointee.d_type))
        }
    }

    /// Whether process `pid` of this host is gone (kill(pid, 0) answers ESRCH). A process that
    /// exists but belongs to another user (EPERM) is not gone.
    public static func processIsGone(_ pid: Int32) -> Bool {
        Glibc.kill(pid, 0) != 0 && errno == ESRCH
    }

    /// Ends this process at once with SIGKILL: what a crash looks like (fault points).
    public static func killSelf() -> Never {
        Glibc.kill(getpid(), SIGKILL)
        // SIGKILL cannot be caught or blocked; should it not arrive, exit as abruptly.
        _exit(137)
    }

    /// Sleeps `seconds` (nanosleep, resumed after a signal for what remains).
    public static func sleep(seconds: Double) {
        guard seconds > 0, seconds.isFinite else { return }
        let whole = min(seconds.rounded(.down), Double(Int32.max))
        var request = timespec(tv_sec: Int(whole), tv_nsec: Int((seconds - whole) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

extension FileDescriptor {
    /// fstat(2), the errno handed back.
    public func status() -> Result<stat, Errno> {
        do throws(Errno) { return .success(try stat().rawValue) } catch { return .failure(error) }
    }

    /// Sets the access and modification times to now (futimens with no times): on NFS, the
    /// server's now, which is what the lock protocol reads as the server's clock.
    @discardableResult
    public func touch() -> Result<Void, Errno> {
        Syscall.attempt { futimens(rawValue, nil) }.map { _ in () }
    }

    /// fchmod(2).
    @discardableResult
    public func setPermissions(_ permissions: FilePermissions) -> Result<Void, Errno> {
        Syscall.attempt { fchmod(rawValue, permissions.rawValue) }.map { _ in () }
    }

    /// fsync(2), the errno handed back.
    public func sync() -> Result<Void, Errno> {
        Syscall.attempt { Glibc.fsync(rawValue) }.map { _ in () }
    }

    /// close(2), the errno handed back: on NFS, close reports write-back errors. EINTR is not
    /// retried (the descriptor is gone either way on Linux) and not a failure.
    public func closeReportingErrors() -> Result<Void, Errno> {
        do {
            try close()
            return .success(())
        } catch {
            let code = error as? Errno ?? .ioError
            return code == .interrupted ? .success(()) : .failure(code)
        }
    }
}
