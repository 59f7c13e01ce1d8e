import SystemPackage

/// The status numbers of the persistent-lock protocol, as `lock-util` prints them and as the
/// historical implementation defines them (LOCK-UTIL.md). Other programs parse these numbers, so
/// the raw values are part of the contract.
public enum LockStatus: Int, Sendable, CustomStringConvertible {
    /// The lock was taken.
    case acquired = 0
    /// The caller already held it: its lock file was refreshed and the stored lease returned.
    case reasserted = 1
    /// A parameter (file, id, lease) cannot be used.
    case badParameter = -1
    /// Out of memory (never produced here; kept for the table's sake).
    case noMemory = -2
    /// A lock file or the mutex could not be examined.
    case statFailed = -3
    /// Another holder has a writer lock.
    case heldByWriter = -4
    /// Other holders have reader locks and a writer lock was asked for.
    case heldByReaders = -5
    /// The mutex or the server-clock file could not be created.
    case openFailed = -6
    /// The short-term mutex stayed taken through every retry.
    case mutexUnavailable = -7
    /// The mutex's contents could not be written.
    case mutexWriteFailed = -8
    /// The hard-link test did not show that the mutex is ours.
    case inodeCheckFailed = -9
    /// The lock file could not be written.
    case updateFailed = -10
    /// The directory could not be listed.
    case directoryReadFailed = -11
    /// A lock file could not be removed.
    case removeFailed = -12
    /// There is no lock (unlock, delta).
    case noLock = -13
    /// The command line was not understood.
    case usage = -14

    /// True for the statuses that report a failure of the machinery rather than an answer
    /// (held, no lock and usage are answers).
    public var isFailure: Bool {
        switch self {
        case .acquired, .reasserted, .heldByWriter, .heldByReaders, .mutexUnavailable, .noLock, .usage: return false
        default: return true
        }
    }

    public var description: String {
        switch self {
        case .acquired: return "acquired"
        case .reasserted: return "reasserted"
        case .badParameter: return "bad parameter"
        case .noMemory: return "out of memory"
        case .statFailed: return "stat failed"
        case .heldByWriter: return "held by a writer"
        case .heldByReaders: return "held by readers"
        case .openFailed: return "open failed"
        case .mutexUnavailable: return "mutex unavailable"
        case .mutexWriteFailed: return "mutex write failed"
        case .inodeCheckFailed: return "inode check failed"
        case .updateFailed: return "update failed"
        case .directoryReadFailed: return "directory read failed"
        case .removeFailed: return "remove failed"
        case .noLock: return "no lock"
        case .usage: return "usage"
        }
    }
}

/// Reader or writer: many readers or one writer.
public enum LockMode: Sendable, Equatable, CustomStringConvertible {
    case reader
    case writer

    /// `r` is a reader; anything else is a writer (LOCK-UTIL.md).
    public init(argument: String) {
        self = argument == "r" ? .reader : .writer
    }

    /// The letter used in file names: `r` or `w`.
    public var letter: String { self == .reader ? "r" : "w" }

    public var description: String { self == .reader ? "reader" : "writer" }
}

/// What one protocol call did: the status, the lease to print, and for anything that is not
/// plainly "acquired" a sentence an administrator can act on.
public struct LockOutcome: Error, Sendable, Equatable {
    public var status: LockStatus
    /// The lease in seconds; -1 whenever the status is negative.
    public var lease: Int
    /// The system error behind a failure status (`lock-util` exits with it), nil otherwise.
    public var errno: Errno?
    /// One line for stderr; empty when there is nothing to say.
    public var message: String
    /// The other holders' lock files that a forced lock removed.
    public var tookOver: [LockHolder]
    /// The holders that made the lock refuse (-4, -5).
    public var heldBy: [LockHolder]

    public init(
        status: LockStatus, lease: Int, errno: Errno? = nil, message: String = "", tookOver: [LockHolder] = [],
        heldBy: [LockHolder] = []
    ) {
        self.status = status
        self.lease = status.rawValue < 0 ? -1 : lease
        self.errno = errno
        self.message = message
        self.tookOver = tookOver
        self.heldBy = heldBy
    }
}

/// What `delta` found: the age of the most recently refreshed lock file and the longest lease.
public struct LockDelta: Sendable, Equatable {
    /// `.acquired` (0) when lock files exist, `.noLock` when none, or a failure status.
    public var status: LockStatus
    /// Whole seconds since the newest refresh (server time, floored at 0); -13 when unlocked.
    public var age: Int
    /// The largest lease among the lock files; -1 when unlocked.
    public var maximumLease: Int
    public var errno: Errno?
    public var message: String

    public init(status: LockStatus, age: Int, maximumLease: Int, errno: Errno? = nil, message: String = "") {
        self.status = status
        self.age = age
        self.maximumLease = maximumLease
        self.errno = errno
        self.message = message
    }
}
