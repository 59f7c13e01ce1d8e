import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The NFS-safe persistent lock of LOCK-UTIL.md: lock files beside a target that every host
/// sharing the directory honours, whichever implementation it runs. `lock-util` and the
/// file-based drivers both use this type; nothing else implements the protocol.
///
/// One call of `lock`:
/// 1. takes the short-term mutex `<file>.xenlk` (`LockMutex`: O_EXCL, hard link, inode test;
///    16 retries, then a mutex older than 30 s of server time is removed);
/// 2. lists the real lock files `<file>.xenlk.<host>.<id>.f<r|w>` (look-alikes are ignored);
/// 3. decides: writers first (-4), then readers when a writer is wanted (-5); with force, the
///    conflicting holders' lock files are removed instead;
/// 4. writes (truncating) our lock file `<its path>.<lease>`, mode 0644; its mtime starts the lease;
/// 5. if something was taken over, waits one lease holding (and refreshing) the mutex, so that
///    a holder that was cut off notices before we return;
/// 6. removes the mutex, if it is still ours.
///
/// Crash behaviour: a caller killed between 1 and 6 leaves the mutex, which others remove once it
/// is 30 s old; a caller killed inside 4 leaves a lock file that may be empty, which still counts as
/// a lock (of unknown lease) until unlocked or forced.
public struct PersistentLock: Sendable {
    public let target: LockTarget
    public let owner: LockOwner
    public var policy: MutexPolicy
    /// Whether a lock file is fsynced when written (true: a persistent lock survives a power cut).
    /// Claims (`SharedClaim`) need not: a claim lost in a power cut belonged to a process that
    /// is gone anyway, and NFS's close-to-open makes the file visible to other hosts on close.
    public var durableLockFiles = true

    public init(target: LockTarget, owner: LockOwner, policy: MutexPolicy = .standard) {
        self.target = target
        self.owner = owner
        self.policy = policy
    }

    /// The largest lease accepted, in seconds.
    public static let maximumLease = Int(Int32.max)

    // MARK: lock

    /// Takes (or reasserts) the lock for `owner`. `lease` is in whole seconds.
    public func lock(mode: LockMode, force: Bool, lease: Int) -> LockOutcome {
        if let problem = owner.problem(for: target) { return .failure(.badParameter, problem) }
        guard (0...Self.maximumLease).contains(lease) else {
            return .failure(.badParameter, "the lease must be a whole number of seconds from 0 to \(Self.maximumLease), got \(lease)")
        }
        let mutex: LockMutex
        switch LockMutex.acquire(target, owner: owner, mode: mode, force: force, policy: policy) {
        case .success(let taken): mutex = taken
        case .failure(let outcome): return outcome
        }
        var outcome = decide(mode: mode, force: force, lease: lease, mutex: mutex)
        if let warning = mutex.release() {
            outcome.message = outcome.message.isEmpty ? warning : outcome.message + "; " + warning
        }
        return outcome
    }

    /// Steps 2 to 5, with the mutex held.
    private func decide(mode: LockMode, force: Bool, lease: Int, mutex: LockMutex) -> LockOutcome {
        let holders: [LockHolder]
        switch target.holders() {
        case .success(let found): holders = found
        case .failure(let outcome): return outcome
        }
        let mine = holders.filter { $0.owner == owner }
        let others = holders.filter { $0.owner != owner }
        let writers = others.filter { $0.mode == .writer }
        let readers = others.filter { $0.mode == .reader }

        var tookOver: [LockHolder] = []
        if force {
            for holder in mode == .writer ? others : writers {
                switch Syscall.remove(holder.path) {
                case .success, .failure(.noSuchFileOrDirectory):
                    tookOver.append(holder)
                case .failure(let code):
                    return .failure(
                        .removeFailed, "cannot remove \(holder)'s lock file \(holder.path) to force the lock: \(errnoText(code))",
                        errno: code)
                }
            }
        } else if !writers.isEmpty {
            return LockOutcome(
                status: .heldByWriter, lease: -1,
                message: "\(target.path) is locked by writer \(Self.list(writers)); use force to take it over",
                heldBy: writers)
        } else if mode == .writer && !readers.isEmpty {
            return LockOutcome(
                status: .heldByReaders, lease: -1,
                message:
                    "\(target.path) is locked by reader\(readers.count == 1 ? "" : "s") \(Self.list(readers)); use force to take it over",
                heldBy: readers)
        }

        let previous = mine.first { $0.mode == mode }
        let status: LockStatus = previous == nil ? .acquired : .reasserted
        let recordedLease: Int
        if let previous {
            recordedLease = previous.lease ?? lease
        } else if mode == .reader, let adopted = readers.compactMap(\.lease).max() {
            recordedLease = adopted
        } else {
            recordedLease = lease
        }
        let path = target.lockPath(owner, mode: mode)
        if let failure = Self.writeLockFile(path, lease: recordedLease, isNew: previous == nil, durable: durableLockFiles) {
            return failure
        }
        // A holder changing mode keeps one lock file: the new one is written first, so a failure
        // here leaves the old mode in place.
        for stale in mine where stale.mode != mode {
            if case .failure(let code) = Syscall.remove(stale.path), code != .noSuchFileOrDirectory {
                _ = Syscall.remove(path)
                return .failure(
                    .removeFailed, "cannot remove the \(stale.mode) lock file \(stale.path) to change to \(mode): \(errnoText(code))",
                    errno: code)
            }
        }

        var message = ""
        if !tookOver.isEmpty {
            let start = Syscall.monotonicNow()
            Self.waitOneLease(Double(lease), refreshing: mutex)
            message =
                "took over from \(Self.list(tookOver)); waited \(Self.seconds(Syscall.monotonicNow() - start)) s (one lease) so that the previous holder could notice"
        }
        return LockOutcome(status: status, lease: recordedLease, message: message, tookOver: tookOver)
    }

    /// Writes `<path>.<lease>` into the lock file, truncating whatever was there, mode 0644. A new
    /// file that could not be written is removed; an existing one stays (it is still a lock).
    static func writeLockFile(_ path: String, lease: Int, isNew: Bool, durable: Bool = true) -> LockOutcome? {
        let descriptor: FileDescriptor
        switch Syscall.openOrErrno(path, .writeOnly, options: [.create, .truncate]) {
        case .success(let opened): descriptor = opened
        case .failure(let code):
            return .failure(.updateFailed, "cannot create the lock file \(path): \(errnoText(code))", errno: code)
        }
        var failure: Errno?
        descriptor.setPermissions([.ownerReadWrite, .groupRead, .otherRead])
        do throws(StorageError) {
            try descriptor.writeAll(LockFileContents.render(path: path, lease: lease), at: 0, path: path)
        } catch {
            failure = error.systemErrno ?? .ioError
        }
        if failure == nil, durable, case .failure(let code) = descriptor.sync() { failure = code }
        // On NFS, close reports write-back errors.
        if case .failure(let code) = descriptor.closeReportingErrors(), failure == nil { failure = code }
        if let failure {
            if isNew { _ = Syscall.remove(path) }
            return .failure(.updateFailed, "cannot write the lock file \(path): \(errnoText(failure))", errno: failure)
        }
        return nil
    }

    /// Sleeps `seconds`, touching the mutex every second so that waiters do not judge it stale.
    static func waitOneLease(_ seconds: Double, refreshing mutex: LockMutex) {
        let deadline = Syscall.monotonicNow() + seconds
        while true {
            let remaining = deadline - Syscall.monotonicNow()
            if remaining <= 0 { return }
            mutex.refresh()
            Syscall.sleep(seconds: min(remaining, 1))
        }
    }

    // MARK: unlock

    /// Removes `owner`'s lock file of `mode`. 0 when removed, -13 when there was none.
    /// It needs no mutex: removing one's own file is a single atomic unlink.
    public func unlock(mode: LockMode) -> LockOutcome {
        if let problem = owner.problem(for: target) { return .failure(.badParameter, problem) }
        let path = target.lockPath(owner, mode: mode)
        switch Syscall.remove(path) {
        case .success:
            return LockOutcome(status: .acquired, lease: 0)
        case .failure(.noSuchFileOrDirectory):
            var message = "\(owner) holds no \(mode) lock on \(target.path) (no file \(path))"
            if case .success(let holders) = target.holders(), !holders.isEmpty {
                message += "; it is held by \(Self.list(holders))"
            }
            return .failure(.noLock, message)
        case .failure(let code):
            return .failure(.removeFailed, "cannot remove the lock file \(path): \(errnoText(code))", errno: code)
        }
    }

    // MARK: delta and inspection

    /// The age of the most recently refreshed lock file (server time) and the largest lease.
    public static func delta(_ target: LockTarget) -> LockDelta {
        let holders: [LockHolder]
        switch target.holders() {
        case .success(let found): holders = found
        case .failure(let outcome):
            return LockDelta(
                status: outcome.status, age: outcome.status.rawValue, maximumLease: -1,
                errno: outcome.errno, message: outcome.message)
        }
        guard let newest = holders.map(\.modified).max() else {
            return LockDelta(
                status: .noLock, age: LockStatus.noLock.rawValue, maximumLease: -1,
                message: "\(target.path) is not locked (no lock files beside it)")
        }
        let now: Double
        switch ServerClock.now(beside: target) {
        case .success(let value): now = value
        case .failure(let outcome):
            return LockDelta(
                status: outcome.status, age: outcome.status.rawValue, maximumLease: -1,
                errno: outcome.errno, message: outcome.message)
        }
        let age = max(0, wholeSeconds(now - newest))
        return LockDelta(status: .acquired, age: age, maximumLease: holders.compactMap(\.lease).max() ?? 0)
    }

    /// The real lock files of `target`; EIO naming the directory when it cannot be read.
    public static func holders(of target: LockTarget) throws(StorageError) -> [LockHolder] {
        switch target.holders() {
        case .success(let holders): return holders
        case .failure(let outcome): throw .io(outcome.message)
        }
    }

    public static func list(_ holders: [LockHolder]) -> String {
        holders.map(\.owner.description).joinedText(separator: ", ")
    }

    static func seconds(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

extension LockOutcome {
    static func failure(_ status: LockStatus, _ message: String, errno: Errno? = nil) -> LockOutcome {
        LockOutcome(status: status, lease: -1, errno: errno, message: message)
    }
}
