import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The names the protocol puts beside a target file `<file>` (LOCK-UTIL.md, "Files"):
///
/// | name | what |
/// |---|---|
/// | `<file>.xenlk` | the short-term mutex, created with O_EXCL |
/// | `<file>.xenlk.<host>.<id>.x<r\|w>` | transient hard link to the mutex (the NFS-safe test) |
/// | `<file>.xenlk.<host>.<id>.f<r\|w>` | a persistent lock, contents `<its own path>.<lease>` |
/// | `<file>.xen<8 digits>.tmp` | transient file whose mtime is the server's "now" |
///
/// Only names of exactly the lock form count as locks: `<file>.bak`, `<file>.xenlk.new` and the
/// like are neither counted nor ever removed (the historical implementation did both).
public struct LockTarget: Sendable, Equatable {
    /// The target as the caller named it.
    public let path: String
    /// The directory that holds the target and every protocol file.
    public let directory: String
    /// The target's last path component.
    public let baseName: String

    static let mutexSuffix = ".xenlk"

    /// Splits `path` into directory and name; nil for an empty path or one ending in `/`.
    public init?(_ path: String) {
        guard !path.isEmpty, !path.hasSuffix("/"), !path.utf8.contains(0) else { return nil }
        self.path = path
        if let slash = path.lastIndex(of: "/") {
            baseName = String(path[path.index(after: slash)...])
            let parent = String(path[..<slash])
            directory = parent.isEmpty ? "/" : parent
        } else {
            baseName = path
            directory = "."
        }
        guard baseName != ".", baseName != ".." else { return nil }
    }

    public var mutexPath: String { path + Self.mutexSuffix }

    /// `<file>.xenlk.<host>.<id>.<kind><r|w>` for kind `x` (link) or `f` (lock).
    func holderPath(_ owner: LockOwner, mode: LockMode, kind: Character) -> String {
        "\(path)\(Self.mutexSuffix).\(owner.host).\(owner.id).\(kind)\(mode.letter)"
    }

    public func lockPath(_ owner: LockOwner, mode: LockMode) -> String { holderPath(owner, mode: mode, kind: "f") }
    public func linkPath(_ owner: LockOwner, mode: LockMode) -> String { holderPath(owner, mode: mode, kind: "x") }

    /// The full path of a directory entry.
    func entryPath(_ name: String) -> String {
        directory == "/" ? "/" + name : "\(directory)/\(name)"
    }

    /// Parses a directory entry as a lock file of this target: `<base>.xenlk.<host>.<id>.f<r|w>`
    /// with a host free of dots and a non-empty id (kind `x`: a link's name). Anything else (the
    /// mutex, links, temporary files, `.bak`, `.new`, other targets) is nil.
    public func parseLockName(_ name: String, kind: Character = "f") -> (owner: LockOwner, mode: LockMode)? {
        // Bytes, not Characters: String comparison would equate canonically equivalent names.
        let bytes = Array(name.utf8)
        let prefix = Array((baseName + Self.mutexSuffix + ".").utf8)
        guard bytes.count > prefix.count + 3, bytes.starts(with: prefix) else { return nil }
        let suffix = bytes[(bytes.count - 3)...]
        let mode: LockMode
        if suffix.elementsEqual(".\(kind)w".utf8) {
            mode = .writer
        } else if suffix.elementsEqual(".\(kind)r".utf8) {
            mode = .reader
        } else {
            return nil
        }
        let middle = bytes[prefix.count..<(bytes.count - 3)]
        guard let dot = middle.firstIndex(of: UInt8(ascii: ".")) else { return nil }
        let host = String(decoding: middle[..<dot], as: UTF8.self)
        let id = String(decoding: middle[(dot + 1)...], as: UTF8.self)
        guard !host.isEmpty, !id.isEmpty else { return nil }
        return (LockOwner(host: host, id: id), mode)
    }
}

/// Who holds a lock: the host's short name and the caller's id string.
public struct LockOwner: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let id: String

    public init(host: String, id: String) {
        self.host = host
        self.id = id
    }

    /// The owner on this host.
    public init(id: String) {
        self.init(host: LockOwner.shortHostName(), id: id)
    }

    public var description: String { "'\(id)' on host \(host)" }

    /// The owner this product's own processes lock as (`sm-<pid>`), on `host`.
    public static func process(on host: String) -> LockOwner { LockOwner(host: host, id: "sm-\(getpid())") }

    /// The process an owner of the form `sm-<pid>` names; nil for any other id (lock-util's
    /// callers choose theirs freely).
    public var processID: Int32? { id.hasPrefix("sm-") ? Int32(id.dropFirst(3)) : nil }

    /// `gethostname()` up to the first dot ("the host's short name"); `localhost` if unset.
    public static func shortHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let short = name.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        return short.isEmpty ? "localhost" : short
    }

    /// Why this owner cannot be part of a file name, or nil when it can.
    func problem(for target: LockTarget) -> String? {
        func bad(_ text: String) -> Bool {
            text.unicodeScalars.contains { $0 == "/" || $0.properties.generalCategory == .control }
        }
        if id.isEmpty { return "the id must not be empty" }
        if bad(id) { return "the id must not contain '/' or control characters" }
        if host.isEmpty || host.contains(".") || bad(host) {
            return "the host name '\(host)' cannot be used in a lock file name"
        }
        let longest = target.baseName.utf8.count + LockTarget.mutexSuffix.utf8.count + host.utf8.count + id.utf8.count + 5
        if longest > Int(NAME_MAX) {
            return "the lock file name would be \(longest) bytes, more than the \(NAME_MAX) a file name may have; use a shorter id"
        }
        return nil
    }
}

/// One lock file found beside a target.
public struct LockHolder: Sendable, Equatable, CustomStringConvertible {
    public let owner: LockOwner
    public let mode: LockMode
    /// The lock file's full path.
    public let path: String
    /// Its mtime (seconds since the epoch, server clock): when the lease started.
    public let modified: Double
    /// The lease its contents record; nil when they cannot be read or parsed.
    public let lease: Int?

    public var description: String { "\(mode) \(owner)" }
}

/// Lock-file contents: `<path of the lock file>.<lease>`.
enum LockFileContents {
    static func render(path: String, lease: Int) -> [UInt8] { Array("\(path).\(lease)".utf8) }

    /// The lease from a lock file's contents, tolerating the stale tail bytes that the historical
    /// implementation leaves when it rewrites a file shorter (it never truncates): the digits right
    /// after the first `<name>.` are the lease; failing that, the digits after the last dot.
    static func lease(from bytes: [UInt8], name: String) -> Int? {
        let content = Array(bytes.prefix { $0 != 0 })
        let marker = Array((name + ".").utf8)
        func digits(from start: Int) -> Int? {
            guard start < content.count else { return nil }
            let run = content[start...].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            guard !run.isEmpty, run.count <= 10 else { return nil }
            return Int(String(decoding: run, as: UTF8.self))
        }
        if content.count > marker.count {
            for start in 0...(content.count - marker.count) where content[start..<start + marker.count].elementsEqual(marker) {
                if let value = digits(from: start + marker.count) { return value }
                break
            }
        }
        // Not written by a writer that used this name: the digits after the last dot, if that is all there is.
        guard let dot = content.lastIndex(of: UInt8(ascii: ".")) else { return nil }
        var tail = content[(dot + 1)...]
        while let last = tail.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: " ") { tail = tail.dropLast() }
        guard !tail.isEmpty, tail.count <= 10, tail.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return Int(String(decoding: tail, as: UTF8.self))
    }
}

extension LockTarget {
    /// Every real lock file of this target, sorted by name. Entries that vanish between the
    /// listing and the `lstat` (another caller unlocking) are skipped; anything that is not a
    /// regular file is not a lock.
    func holders() -> Result<[LockHolder], LockOutcome> {
        let names: [String]
        switch listDirectory() {
        case .success(let found): names = found
        case .failure(let code):
            return .failure(.failure(.directoryReadFailed, "cannot list \(directory): \(errnoText(code))", errno: code))
        }
        var holders: [LockHolder] = []
        for name in names.sorted() {
            guard let (owner, mode) = parseLockName(name) else { continue }
            let path = entryPath(name)
            let status: stat
            switch Syscall.linkStatus(path) {
            case .success(let found): status = found
            case .failure(.noSuchFileOrDirectory): continue
            case .failure(let code):
                return .failure(.failure(.statFailed, "cannot examine lock file \(path): \(errnoText(code))", errno: code))
            }
            guard (status.st_mode & S_IFMT) == S_IFREG else { continue }
            let lease = (try? Syscall.readRegularFile(path, limit: 4096)).flatMap { LockFileContents.lease(from: $0, name: name) }
            holders.append(LockHolder(owner: owner, mode: mode, path: path, modified: status.modificationTime, lease: lease))
        }
        return .success(holders)
    }
}

extension LockTarget {
    /// The names in the target's directory, or the errno of opendir/readdir.
    func listDirectory() -> Result<[String], Errno> { Syscall.listDirectory(directory) }
}

extension stat {
    /// st_mtim as seconds with fractions.
    var modificationTime: Double { Double(st_mtim.tv_sec) + Double(st_mtim.tv_nsec) / 1e9 }
}

/// Whole seconds of a difference between two times, clamped to what an Int32 holds.
func wholeSeconds(_ seconds: Double) -> Int {
    guard seconds.isFinite else { return 0 }
    return Int(min(max(seconds, -Double(Int32.max)), Double(Int32.max)).rounded(.down))
}

/// `No such file or directory (ENOENT)`, for messages.
func errnoText(_ code: Errno) -> String {
    "\(String(describing: code)) (\(code.symbolicName))"
}
