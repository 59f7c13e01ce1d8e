import SystemPackage

/// A failure as the caller sees it: one of the spec's errno values and a one-line reason, plus
/// (as NIOFileSystem's `FileSystemError` keeps its `cause`) what lay beneath when the message
/// alone would lose it: the system call and its errno, or the broken rule of a file format.
///
/// The exit status of a driver is `code.rawValue`; the last stderr line is
/// `"\(code.symbolicName): \(message)"`. The cause is for callers that branch on it and for tests;
/// it never changes the line.
public struct StorageError: Error, Equatable, CustomStringConvertible, Sendable {
    public var code: Errno
    public var message: String
    public var cause: Cause?

    public init(code: Errno, message: String, cause: Cause? = nil) {
        self.code = code
        // One line, whatever a substrate handed us.
        self.message = message.split(whereSeparator: \.isNewline).map(String.init).joinedText(separator: " ")
        self.cause = cause
    }

    public var description: String { "\(code.symbolicName): \(message)" }

    /// What lay beneath a failure.
    public enum Cause: Equatable, Sendable {
        /// A system call (named as in its man page) failed with this errno. The errno is kept
        /// even where the spec's codes have no place for it and `code` says EIO.
        case systemCall(String, Errno)
        /// A file breaks a rule of its on-disk format (a damaged or hostile VHD); `code` is EIO.
        case malformed
    }

    /// The errno of the failed system call beneath, if that is what failed.
    public var systemErrno: Errno? {
        if case .systemCall(_, let errno) = cause { return errno }
        return nil
    }

    /// The same failure (code and cause kept) told in other words, e.g. "VDI … cannot be
    /// attached: <what the VHD engine said>; run sr_check".
    public func reworded(_ message: String) -> StorageError {
        StorageError(code: code, message: message, cause: cause)
    }
}

extension Errno {
    /// ENODEV (19). swift-system names it `operationNotSupportedByDevice`; the spec means
    /// "no such SR, VDI or device", so this name reads right at the call sites.
    public static var noSuchDevice: Errno { .operationNotSupportedByDevice }

    /// The errno values the spec allows a driver to return.
    public static let specified: [Errno] = [
        .notPermitted, .ioError, .resourceBusy, .fileExists, .noSuchDevice,
        .invalidArgument, .noSpace, .noLocks, .noFunction
    ]

    /// The C constant's name, e.g. `ENODEV`.
    public var symbolicName: String {
        switch self {
        case .notPermitted: return "EPERM"
        case .noSuchFileOrDirectory: return "ENOENT"
        case .ioError: return "EIO"
        case .resourceBusy: return "EBUSY"
        case .fileExists: return "EEXIST"
        case .noSuchDevice: return "ENODEV"
        case .invalidArgument: return "EINVAL"
        case .noSpace: return "ENOSPC"
        case .noLocks: return "ENOLCK"
        case .noFunction: return "ENOSYS"
        case .permissionDenied: return "EACCES"
        case .notDirectory: return "ENOTDIR"
        case .isDirectory: return "EISDIR"
        case .readOnlyFileSystem: return "EROFS"
        case .resourceTemporarilyUnavailable: return "EAGAIN"
        case .directoryNotEmpty: return "ENOTEMPTY"
        case .fileTooLarge: return "EFBIG"
        case .diskQuotaExceeded: return "EDQUOT"
        default: return "errno \(rawValue)"
        }
    }

    /// Maps `ENODEV` (or `enodev`) back to the value; used by tests and `help`.
    public init?(symbolicName: String) {
        guard let match = Errno.specified.first(where: { $0.symbolicName == symbolicName.uppercased() })
        else { return nil }
        self = match
    }
}
