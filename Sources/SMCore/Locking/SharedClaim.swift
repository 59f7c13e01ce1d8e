import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A claim one process of one host of a pool holds on part of a shared SR (its collector, a VDI
/// an operation is changing), kept on the shared storage itself so that every host sees it, and
/// leased so that it lapses when its host dies. Docs/pools.md has the whole model.
///
/// Built on the NFS-safe lock protocol (`PersistentLock`, LOCK-UTIL.md): the claim on `name` is a
/// writer lock on `<SR root>/.sm/claims/<name>` whose owner is `<host identity>` /
/// `sm-<pid>`, with the lease of the host configuration (`claim_lease`, 30 s).
///
/// - Taking: a writer lock. Held by someone else, the holder is judged:
///   - a process of this host that no longer exists: gone; its lock file is removed at once;
///   - a process of another host: gone only once its lock file has not been refreshed for more
///     than one lease (server time). It is then taken over with the protocol's force, which
///     waits one more lease before returning, so that a holder that was merely cut off notices
///     and stops (below). A live holder is never taken over.
/// - Holding: a keeper thread reasserts every claim this process holds each third of a lease.
///   If a claim was taken over, or cannot be refreshed for a whole lease, the process stops at
///   once (`_exit(EIO)`, after its `EIO:` line): every operation that holds claims is
///   crash-safe, and stopping is the only way to be sure it no longer writes what another host
///   now owns.
/// - Releasing: the lock file is removed. A killed process's claims stay until judged gone; a
///   short-term mutex it held (killed inside a take or a refresh) is removed by the next taker
///   at once when it names a process of this host that no longer exists (`MutexPolicy`).
public final class SharedClaim: @unchecked Sendable {
    public let name: String
    let lock: PersistentLock
    let lease: Int
    /// Released (true) or kept; refreshing and releasing take turns under it, so that a refresh
    /// can never bring back a lock file that `release` removed.
    private let released = Mutex(false)

    init(name: String, lock: PersistentLock, lease: Int) {
        self.name = name
        self.lock = lock
        self.lease = lease
    }

    /// The directory of an SR's claims.
    public static func directory(srRoot: String) -> String { "\(srRoot)/.sm/claims" }

    /// This process's owner name on `host`.
    static func owner(_ host: HostEnvironment) -> LockOwner { LockOwner.process(on: host.identity) }

    /// Takes the claim on `name`, or answers nil when a live holder has it (who, in `holder`).
    /// EIO when the shared storage cannot be used.
    public static func tryAcquire(
        _ name: String, srRoot: String, host: HostEnvironment,
        holder: inout String
    ) throws(StorageError) -> SharedClaim? {
        let directory = directory(srRoot: srRoot)
        if !Syscall.isDirectory(directory) { try Syscall.makeDirectories(directory) }
        guard let target = LockTarget("\(directory)/\(name)") else { throw .io("bad claim name \(name)") }
        let lease = host.claimLease
        var lock = PersistentLock(target: target, owner: owner(host))
        lock.durableLockFiles = false
        // A process of this host killed while it held the claim's mutex: removed at once.
        lock.policy.removesMutexesOfGoneProcesses = true
        for _ in 0..<3 {
            let outcome = lock.lock(mode: .writer, force: false, lease: lease)
            switch outcome.status {
            case .acquired, .reasserted:
                let claim = SharedClaim(name: name, lock: lock, lease: lease)
                ClaimKeeper.keep(claim)
                return claim
            case .heldByWriter, .heldByReaders:
                if outcome.heldBy.isEmpty { continue }  // released meanwhile: ask again
                holder = PersistentLock.list(outcome.heldBy)
                switch judge(outcome.heldBy, target: target, host: host) {
                case .live:
                    return nil
                case .deadHere(let files):
                    // A process of this host that no longer exists: nobody can be cut off.
                    for path in files { _ = Syscall.remove(path) }
                    continue
                case .lapsed:
                    // Logged when decided (the forcing then waits one lease): when and from whom
                    // is what an operator, and the VM lane's nfs-host-death, judge takeovers by.
                    OperationLog.note(host: host, "claim \(target.path) of \(holder) has lapsed; taking it over")
                    let forced = lock.lock(mode: .writer, force: true, lease: lease)
                    guard forced.status == .acquired || forced.status == .reasserted else {
                        throw .io("cannot take over the lapsed claim \(target.path): \(forced.message)")
                    }
                    let claim = SharedClaim(name: name, lock: lock, lease: lease)
                    ClaimKeeper.keep(claim)
                    return claim
                }
            case .mutexUnavailable:
                holder = "another process (its short-term mutex stayed taken)"
                return nil
            default:
                throw .claimFailed(target.path, outcome.message, errno: outcome.errno)
            }
        }
        return nil
    }

    /// Waits up to `timeout` seconds for the claim; EBUSY naming its holder after that.
    public static func acquire(
        _ name: String, srRoot: String, host: HostEnvironment,
        what: String
    ) throws(StorageError) -> SharedClaim {
        let deadline = Syscall.monotonicNow() + host.lockTimeout
        var holder = ""
        while true {
            if let claim = try tryAcquire(name, srRoot: srRoot, host: host, holder: &holder) { return claim }
            if Syscall.monotonicNow() >= deadline {
                throw .claimHeld(what, by: holder, waited: Int(host.lockTimeout))
            }
            Syscall.sleep(seconds: 0.2)
        }
    }

    /// Who holds the claim on `name` and is alive (as `tryAcquire` would judge), nil when nobody
    /// does; takes nothing. For reports (sr_scan's `gc_running`), never for decisions.
    public static func liveHolder(_ name: String, srRoot: String, host: HostEnvironment) -> String? {
        guard let target = LockTarget("\(directory(srRoot: srRoot))/\(name)"),
            let holders = try? PersistentLock.holders(of: target), !holders.isEmpty
        else { return nil }
        return judge(holders, target: target, host: host) == .live ? PersistentLock.list(holders) : nil
    }

    enum Judgement: Equatable {
        case live
        case deadHere([String])
        case lapsed
    }

    /// Whether the holders of a claim are alive (see the type's documentation).
    static func judge(_ holders: [LockHolder], target: LockTarget, host: HostEnvironment) -> Judgement {
        let here = holders.filter { $0.owner.host == host.identity }
        if here.count == holders.count {
            let dead = here.filter { holder in
                guard let pid = holder.owner.processID else { return false }
                return Syscall.processIsGone(pid)
            }
            return dead.count == holders.count ? .deadHere(dead.map(\.path)) : .live
        }
        let delta = PersistentLock.delta(target)
        guard delta.status == .acquired else { return .live }
        return delta.age > max(delta.maximumLease, host.claimLease) ? .lapsed : .live
    }

    /// Refreshes the lease; `held` false when the claim is no longer this process's.
    func refresh() -> (held: Bool, refreshed: Bool) {
        released.withLock { released in
            if released { return (true, true) }
            let outcome = lock.lock(mode: .writer, force: false, lease: lease)
            switch outcome.status {
            case .reasserted: return (true, true)
            case .acquired, .heldByWriter, .heldByReaders: return (false, false)  // it had been taken from us
            default: return (true, false)
            }
        }
    }

    /// Gives the claim up. Idempotent.
    public func release() {
        released.withLock { released in
            guard !released else { return }
            released = true
            _ = ClaimKeeper.forget(self)
            _ = lock.unlock(mode: .writer)
        }
    }
}

/// The thread that keeps this process's claims alive (see `SharedClaim`).
enum ClaimKeeper {
    struct State {
        var claims: [ObjectIdentifier: (claim: SharedClaim, refreshed: Double)] = [:]
        var started = false
    }

    static let state = Mutex(State())

    static func keep(_ claim: SharedClaim) {
        let start = state.withLock { state -> Bool in
            state.claims[ObjectIdentifier(claim)] = (claim, Syscall.monotonicNow())
            defer { state.started = true }
            return !state.started
        }
        if start {
            var thread = pthread_t()
            _ = pthread_create(
                &thread, nil,
                { _ in
                    ClaimKeeper.run()
                    return nil
                }, nil)
            pthread_detach(thread)
        }
    }

    /// True when the claim was kept (and is now forgotten).
    @discardableResult
    static func forget(_ claim: SharedClaim) -> Bool {
        state.withLock { $0.claims.removeValue(forKey: ObjectIdentifier(claim)) != nil }
    }

    static func run() {
        while true {
            // The shortest lease without copying anything: a thread's first allocation makes
            // glibc a heap of its own (a 64 MiB reservation and its page faults), which a verb of
            // a few milliseconds, over before the first refresh, need not pay.
            let shortest = state.withLock { state in
                state.claims.values.reduce(Int.max) { min($0, $1.claim.lease) }
            }
            Syscall.sleep(seconds: Double(max(1, shortest == .max ? 30 : shortest)) / 3)
            for (claim, refreshed) in state.withLock({ Array($0.claims.values) }) {
                let result = claim.refresh()
                let now = Syscall.monotonicNow()
                if !result.held || (!result.refreshed && now - refreshed > Double(claim.lease)) {
                    // Another host owns it now (or may, any moment): stop writing at once, with
                    // EIO as the answer (no cleanup runs: what was under way is crash-safe).
                    Diagnostics.writeStandardError(
                        "EIO: lost the claim \(claim.name) on shared storage; stopped at once "
                            + "(the operation is left for recovery)\n")
                    _exit(EIO)
                }
                if result.refreshed {
                    state.withLock { state in
                        if state.claims[ObjectIdentifier(claim)] != nil { state.claims[ObjectIdentifier(claim)]?.refreshed = now }
                    }
                }
            }
        }
    }
}
