import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// How long and how often a caller waits for the short-term mutex (LOCK-UTIL.md: 16 retries with
/// random sleeps of up to 0.5 s, then a mutex older than 30 s on the server is removed).
public struct MutexPolicy: Sendable, Equatable {
    public var retries: Int
    public var maximumSleep: Double
    public var staleAge: Double
    /// Whether a mutex whose contents name a process of the caller's host (an id `sm-<pid>`)
    /// that no longer exists is removed at once: that process was killed while it held the
    /// mutex, and nobody else will release it before it is `staleAge` old. Only for files no
    /// other program locks (`SharedClaim`'s): lock-util's callers choose their ids freely.
    public var removesMutexesOfGoneProcesses = false

    public init(retries: Int = 16, maximumSleep: Double = 0.5, staleAge: Double = 30) {
        self.retries = retries
        self.maximumSleep = maximumSleep
        self.staleAge = staleAge
    }

    public static let standard = MutexPolicy()
}

/// The server's clock: the mtime of a file just created beside the target
/// (`<file>.xen<8 digits>.tmp`, removed at once). Never the local clock, which may disagree
/// with the server's and with every other host's.
public enum ServerClock {
    public static func now(beside target: LockTarget) -> Result<Double, LockOutcome> {
        var lastPath = ""
        for _ in 0..<8 {
            let number = String(UInt32.random(in: 0...99_999_999))
            let path = "\(target.path).xen\(String(repeating: "0", count: 8 - number.count))\(number).tmp"
            lastPath = path
            switch Syscall.createExclusively(path) {
            case .success(let descriptor):
                defer {
                    descriptor.closeIgnoringErrors()
                    _ = Syscall.remove(path)
                }
                // An exclusive create on NFSv3 may park its verifier in the times; set them to the
                // server's time explicitly.
                descriptor.touch()
                switch descriptor.status() {
                case .success(let status): return .success(status.modificationTime)
                case .failure(let code):
                    return .failure(.failure(.statFailed, "cannot read the server's time from \(path): \(errnoText(code))", errno: code))
                }
            case .failure(.fileExists):
                continue
            case .failure(let code):
                return .failure(.failure(.openFailed, "cannot create \(path) to read the server's time: \(errnoText(code))", errno: code))
            }
        }
        return .failure(.failure(.openFailed, "cannot create a unique file like \(lastPath) to read the server's time"))
    }
}

/// The short-term mutex `<file>.xenlk`, held for the few file operations of one call.
///
/// Taken by creating it with O_EXCL, writing the link name into it, hard-linking it to
/// `<file>.xenlk.<host>.<id>.x<r|w>` and checking that the link's inode is the inode this process
/// created (O_EXCL alone is not atomic on old NFS; link is). Released by unlinking it, and only
/// while the name still refers to that inode: a caller never removes another caller's mutex
/// except one older than `staleAge` seconds of server time.
final class LockMutex {
    let target: LockTarget
    /// The mutex file, open until released.
    private var descriptor: FileDescriptor?
    private let device: UInt64
    private let inode: UInt64

    private init(target: LockTarget, descriptor: FileDescriptor, device: UInt64, inode: UInt64) {
        self.target = target
        self.descriptor = descriptor
        self.device = device
        self.inode = inode
    }

    deinit { _ = release() }

    /// Takes the mutex, retrying and recovering a stale one as `policy` says. With `force`, a
    /// stale mutex is removed at the first refusal instead of after the retries; a fresh one never is.
    static func acquire(
        _ target: LockTarget, owner: LockOwner, mode: LockMode, force: Bool,
        policy: MutexPolicy
    ) -> Result<LockMutex, LockOutcome> {
        let path = target.mutexPath
        var attempt = 0
        var removedStale = false
        var removedGone = false
        while true {
            switch Syscall.createExclusively(path) {
            case .success(let descriptor):
                return claim(target, descriptor: descriptor, owner: owner, mode: mode)
            case .failure(.fileExists):
                break
            case .failure(let code):
                return .failure(.failure(.openFailed, "cannot create the lock mutex \(path): \(errnoText(code))", errno: code))
            }
            if policy.removesMutexesOfGoneProcesses && !removedGone && removeIfTakerGone(target, host: owner.host) {
                removedGone = true
                continue
            }
            if (force && attempt == 0 || attempt >= policy.retries) && !removedStale {
                switch removeIfStale(target, policy: policy) {
                case .success(true):
                    removedStale = true
                    continue
                case .success(false):
                    break
                case .failure(let outcome):
                    return .failure(outcome)
                }
            }
            if attempt >= policy.retries {
                return .failure(.failure(.mutexUnavailable, busyMessage(target, policy: policy)))
            }
            attempt += 1
            Syscall.sleep(seconds: Double.random(in: 0.001...min(max(policy.maximumSleep, 0.001), 60)))
        }
    }

    /// After a successful O_EXCL create: contents, link, inode test, link removed.
    private static func claim(
        _ target: LockTarget, descriptor: FileDescriptor, owner: LockOwner,
        mode: LockMode
    ) -> Result<LockMutex, LockOutcome> {
        let path = target.mutexPath
        let link = target.linkPath(owner, mode: mode)
        let created: stat
        switch descriptor.status() {
        case .success(let status): created = status
        case .failure(let code):
            descriptor.closeIgnoringErrors()
            _ = Syscall.remove(path)
            return .failure(.failure(.statFailed, "cannot examine the lock mutex \(path): \(errnoText(code))", errno: code))
        }
        let mutex = LockMutex(
            target: target, descriptor: descriptor, device: UInt64(created.st_dev),
            inode: UInt64(created.st_ino))
        do throws(StorageError) {
            try descriptor.writeAll(link.utf8, at: 0, path: path)
        } catch {
            _ = mutex.release()
            return .failure(
                .failure(
                    .mutexWriteFailed, "cannot write the lock mutex \(path): \(error.message)",
                    errno: error.systemErrno ?? .ioError))
        }
        var linkResult = Syscall.link(path, link)
        if case .failure(.fileExists) = linkResult {
            // Only the mutex holder makes links, so this is the leftover of a killed caller with
            // our host and id.
            _ = Syscall.remove(link)
            linkResult = Syscall.link(path, link)
        }
        // On NFS a retransmitted link can report failure after succeeding: the inodes decide.
        let linkStatus = Syscall.linkStatus(link)
        defer { _ = Syscall.remove(link) }
        guard case .success(let linked) = linkStatus, UInt64(linked.st_ino) == mutex.inode, UInt64(linked.st_dev) == mutex.device
        else {
            _ = mutex.release()
            let reason: String
            if case .failure(let code) = linkResult {
                reason = "link to \(link) failed: \(errnoText(code))"
            } else {
                reason = "\(link) does not refer to the mutex this process created"
            }
            let code: Errno? = if case .failure(let code) = linkResult { code } else { nil }
            return .failure(.failure(.inodeCheckFailed, "could not prove ownership of the lock mutex \(path): \(reason)", errno: code))
        }
        return .success(mutex)
    }

    /// Removes the mutex if it is older than `policy.staleAge` seconds of server time; true when removed.
    private static func removeIfStale(_ target: LockTarget, policy: MutexPolicy) -> Result<Bool, LockOutcome> {
        let path = target.mutexPath
        let seen: stat
        switch Syscall.linkStatus(path) {
        case .success(let status): seen = status
        case .failure(.noSuchFileOrDirectory): return .success(true)  // released meanwhile: try again
        case .failure(let code):
            return .failure(.failure(.statFailed, "cannot examine the lock mutex \(path): \(errnoText(code))", errno: code))
        }
        let now: Double
        switch ServerClock.now(beside: target) {
        case .success(let value): now = value
        case .failure(let outcome): return .failure(outcome)
        }
        guard now - seen.modificationTime > policy.staleAge else { return .success(false) }
        // Remove exactly the mutex judged stale, not one another caller made since.
        switch removeIfUnchanged(path, seen: seen) {
        case .changed:
            return .success(true)
        case .removed:
            Diagnostics.debug("removed stale lock mutex \(path) (\(wholeSeconds(now - seen.modificationTime)) s old)")
            return .success(true)
        case .failed(let code):
            return .failure(.failure(.removeFailed, "cannot remove the stale lock mutex \(path): \(errnoText(code))", errno: code))
        }
    }

    /// Removes the mutex if its contents (the taker's link path, `<mutex>.<host>.sm-<pid>.x<r|w>`,
    /// written right after its creation) name a process of `host` that no longer exists; true
    /// when removed. Empty contents (a taker between its create and its write) or any other id
    /// are left alone.
    private static func removeIfTakerGone(_ target: LockTarget, host: String) -> Bool {
        let path = target.mutexPath
        guard case .success(let seen) = Syscall.linkStatus(path), (seen.st_mode & S_IFMT) == S_IFREG,
            let bytes = try? Syscall.readRegularFile(path, limit: 4096)
        else { return false }
        let contents = String(decoding: bytes, as: UTF8.self)
        let name = contents.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        guard let (owner, mode) = target.parseLockName(name, kind: "x"), contents == target.linkPath(owner, mode: mode),
            owner.host == host, let pid = owner.processID, pid > 0, Syscall.processIsGone(pid),
            case .removed = removeIfUnchanged(path, seen: seen)
        else { return false }
        Diagnostics.debug("removed lock mutex \(path) of process \(pid) of this host, which no longer exists")
        return true
    }

    private enum Removal {
        case removed, changed
        case failed(Errno)
    }

    /// Removes `path` only if it is still the file `seen` described (device, inode, mtime), not
    /// one another caller made since.
    private static func removeIfUnchanged(_ path: String, seen: stat) -> Removal {
        guard case .success(let again) = Syscall.linkStatus(path),
            again.st_ino == seen.st_ino, again.st_dev == seen.st_dev,
            again.modificationTime == seen.modificationTime
        else { return .changed }
        switch Syscall.remove(path) {
        case .success, .failure(.noSuchFileOrDirectory): return .removed
        case .failure(let code): return .failed(code)
        }
    }

    private static func busyMessage(_ target: LockTarget, policy: MutexPolicy) -> String {
        let path = target.mutexPath
        // Only a regular file is read: a FIFO planted under the mutex's name would block here.
        let holder = (try? Syscall.readRegularFile(path, limit: 4096)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        var text = "the lock mutex \(path) stayed taken through \(policy.retries) retries"
        if !holder.isEmpty { text += " (taken for \(holder))" }
        if let status = Syscall.fileStatus(path), case .success(let now) = ServerClock.now(beside: target) {
            text += "; it is \(max(0, wholeSeconds(now - status.modificationTime))) s old"
        }
        return text + "; a mutex older than \(Int(policy.staleAge)) s is removed automatically, try again later"
    }

    /// Sets the mutex's mtime to the server's now, so that waiters do not judge it stale while
    /// a forced lock waits out a lease.
    func refresh() {
        descriptor?.touch()
    }

    /// Unlinks the mutex if the name still refers to the file this process created. Returns a
    /// sentence when it could not be removed.
    func release() -> String? {
        guard let descriptor else { return nil }
        descriptor.closeIgnoringErrors()
        self.descriptor = nil
        let path = target.mutexPath
        guard case .success(let current) = Syscall.linkStatus(path),
            UInt64(current.st_ino) == inode, UInt64(current.st_dev) == device
        else {
            return nil
        }
        switch Syscall.remove(path) {
        case .success, .failure(.noSuchFileOrDirectory): return nil
        case .failure(let code):
            return
                "could not remove the lock mutex \(path) (\(errnoText(code))); others wait until it is \(Int(MutexPolicy.standard.staleAge)) s old"
        }
    }
}
