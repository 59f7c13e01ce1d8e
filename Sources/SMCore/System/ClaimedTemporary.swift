import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Files written under a temporary name and then renamed or linked into place (intent records,
/// new VHDs, attribute files). Their creator holds an exclusive flock on the file for its whole
/// life, so a sweeper can tell a file being written (lock held) from one left by a killed
/// process (lock free) and remove only the latter.
///
/// The protocol, for creator C and sweeper S:
/// 1. C: `open(O_CREAT|O_EXCL)`, then `flock(LOCK_EX)` (blocking).
/// 2. S: `open`, `flock(LOCK_EX|LOCK_NB)`; only if that succeeds and the file still has a link
///    does S unlink it, then closes (which releases the lock).
/// 3. C, once its flock returns: if the file has no link any more, S removed it between C's open
///    and C's flock; C closes it and starts again at 1. Otherwise no sweeper can remove it until
///    C closes it (after its rename, link or unlink).
public enum ClaimedTemporary {
    static let attempts = 8

    /// Creates `path` (which must not exist) and returns its descriptor, open read-write and held.
    public static func create(_ path: String, mode: mode_t = 0o644) throws(StorageError) -> FileDescriptor {
        for _ in 0..<attempts {
            let descriptor = try Syscall.open(
                path, .readWrite, options: [.create, .exclusiveCreate],
                permissions: FilePermissions(rawValue: mode))
            do throws(StorageError) {
                if case .failure(let code) = Syscall.flock(descriptor, LOCK_EX) { throw .system(code, "flock", path: path) }
                if try descriptor.status(path: path).st_nlink > 0 { return descriptor }
            } catch {
                descriptor.closeIgnoringErrors()
                try? Syscall.unlinkIfPresent(path)
                throw error
            }
            // A sweeper took it in the instant between open and flock: it is gone; try again.
            descriptor.closeIgnoringErrors()
        }
        throw .io("could not claim temporary file \(path): removed \(attempts) times while being created")
    }

    /// Removes `path` if its creator is gone (nobody holds its lock); true when it was removed.
    /// Never opens anything but a regular file, never blocks. (Read-write: over NFS an exclusive
    /// flock is a POSIX write lock, which a read-only descriptor cannot take.)
    @discardableResult
    public static func removeIfAbandoned(_ path: String) -> Bool {
        guard let status = Syscall.lstatus(path), (status.st_mode & S_IFMT) == S_IFREG,
            let descriptor = try? Syscall.open(path, .readWrite, options: [.noFollow, .nonBlocking])
        else { return false }
        defer { descriptor.closeIgnoringErrors() }
        guard case .success = Syscall.flock(descriptor, LOCK_EX | LOCK_NB),
            let held = try? descriptor.status(path: path), held.st_nlink > 0,
            (try? Syscall.unlinkIfPresent(path)) != nil
        else { return false }
        return true
    }
}
