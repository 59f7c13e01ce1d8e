import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Opening files whose names come from an SR's contents (VHD files, parents named by locators,
/// per-VDI attributes): anyone who can write into the SR chooses what sits under those names.
/// Only a regular file is ever opened. A FIFO opened for reading blocks until a writer appears
/// (forever, while the caller holds the SR lock), a device may act on being opened, and a
/// symbolic link may lead out of the SR.
extension Syscall {
    /// Opens `path`, which must be a regular file, with `flags` (no O_CREAT). In order:
    /// 1. lstat: anything but a regular file is refused without being opened (a device's open
    ///    may have side effects; a symbolic link is refused even when it leads to a regular file);
    /// 2. open with O_NOFOLLOW and O_NONBLOCK, so that whatever replaced the file since the
    ///    lstat is not followed (a link) and does not block (a FIFO);
    /// 3. fstat the descriptor: not a regular file, it is closed and refused;
    /// 4. for a descriptor that may write, O_NONBLOCK is cleared again, so that it is exactly what
    ///    a plain open returns. A read-only one keeps it: Linux reads of a regular file ignore it
    ///    (only RWF_NOWAIT makes a read not wait; mandatory locks, the one exception, are gone
    ///    since 5.15), and sr_scan opens every VHD of the SR read-only: two system calls less each.
    /// A refusal is EIO naming what the path is; a missing file is EIO from open as before.
    public static func openRegularFile(_ path: String, _ mode: FileDescriptor.AccessMode) throws(StorageError) -> FileDescriptor {
        try openRegularFileWithStatus(path, mode).descriptor
    }

    /// `openRegularFile`, with the descriptor's status from step 3 (a caller that needs it does
    /// not ask the kernel again).
    /// `listedRegular`: the caller's directory listing (readdir's type) just said it is a regular
    /// file, so step 1 is skipped (sr_scan: one system call less a VDI). What steps 2 and 3 guard
    /// against is unchanged; the one difference is for a file replaced by a device between the
    /// listing and the open, the same race the lstat leaves between itself and the open.
    public static func openRegularFileWithStatus(
        _ path: String, _ mode: FileDescriptor.AccessMode, listedRegular: Bool = false
    ) throws(StorageError) -> (descriptor: FileDescriptor, status: stat) {
        if !listedRegular, let status = lstatus(path), let kind = nonRegularKind(status.st_mode) {
            throw .io("\(path) is \(kind), not a regular file")
        }
        let descriptor: FileDescriptor
        do {
            descriptor = try path.withCString { try FileDescriptor.open($0, mode, options: [.closeOnExec, .noFollow, .nonBlocking]) }
        } catch Errno.tooManySymbolicLinkLevels {
            throw .io("\(path) is a symbolic link, not a regular file")
        } catch {
            throw .system(error as? Errno ?? .ioError, "open", path: path)
        }
        do throws(StorageError) {
            let status = try descriptor.status(path: path)
            if let kind = nonRegularKind(status.st_mode) { throw .io("\(path) is \(kind), not a regular file") }
            if mode != .readOnly {
                let current = try retrying("fcntl", path: path) { fcntl(descriptor.rawValue, F_GETFL) }
                try retrying("fcntl", path: path) { fcntl(descriptor.rawValue, F_SETFL, current & ~O_NONBLOCK) }
            }
            return (descriptor, status)
        } catch {
            descriptor.closeIgnoringErrors()
            throw error
        }
    }

    /// Reads a whole (small) file that must be a regular file (`openRegularFile`), up to `limit` bytes.
    public static func readRegularFile(_ path: String, limit: Int = 1 << 20) throws(StorageError) -> [UInt8] {
        let descriptor = try openRegularFile(path, .readOnly)
        defer { descriptor.closeIgnoringErrors() }
        return try descriptor.read(count: limit, at: 0, path: path)
    }

    /// What a file of this mode is, in words, when it is not a regular file; nil for a regular file.
    public static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFLNK: return "a symbolic link"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFDIR: return "a directory"
        case S_IFSOCK: return "a socket"
        default: return "a file of type \(String(mode & S_IFMT, radix: 8))"
        }
    }
}
