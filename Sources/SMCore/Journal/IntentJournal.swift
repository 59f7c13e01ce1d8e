import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// What a multi-step operation is about to do, written and fsynced before its first step.
///
/// On disk: `<SR root>/.sm/journal/<id>.intent`, UTF-8 lines: `sm-intent 1`, then
/// `operation=<name>` and one `key=value` line per field (UUIDs, unique ids, times).
public struct IntentRecord: Equatable, Sendable {
    /// The operations that write a record; the raw values are the `operation=` names on disk.
    /// Recovery switches over every case (`VHDRepository.replay`), so an operation added here
    /// without its recovery does not compile.
    public enum Operation: String, CaseIterable, Sendable {
        case snapshot
        case clone
        case cloneChild = "clone-child"
        case delete
        case coalesce
        case resize
    }

    /// The `operation=` value as written. A record may name an operation this build does not
    /// know (a damaged record, another version's): it is read, kept, and left for sr_check.
    public var operationName: String
    public var fields: [String: String]

    public init(operation: Operation, fields: [String: String]) {
        self.operationName = operation.rawValue
        self.fields = fields
    }

    /// The record's operation; nil when the name is none this build knows.
    public var operation: Operation? { Operation(rawValue: operationName) }

    static let magic = "sm-intent 1"

    var bytes: [UInt8] {
        let lines = [Self.magic, "operation=\(operationName)"] + fields.keys.sorted().map { "\($0)=\(fields[$0] ?? "")" }
        return Array((lines.joinedText(separator: "\n") + "\n").utf8)
    }

    /// Reads what `bytes` wrote (`KeyValueLines`); nil unless the first line is the magic and
    /// every other line a `key=value` pair with an `operation`.
    init?(bytes: [UInt8]) {
        var lines = KeyValueLines(bytes).lines
        guard let first = lines.first, first.value == nil, first.key == Self.magic else { return nil }
        lines.removeFirst()
        var fields: [String: String] = [:]
        for line in lines {
            guard let value = line.value else { return nil }
            fields[line.key] = value
        }
        guard let operation = fields.removeValue(forKey: "operation") else { return nil }
        self.operationName = operation
        self.fields = fields
    }

    public subscript(key: String) -> String? { fields[key] }

    public func uuid(_ key: String) -> CanonicalUUID? { fields[key].flatMap { CanonicalUUID($0) } }
}

/// One record, held (flock) by the process carrying it out or recovering it. Another process
/// can tell a live operation (lock held) from a crashed one (lock free, record still there).
public final class IntentEntry {
    public let record: IntentRecord
    public let path: String
    private var descriptor: FileDescriptor?

    init(record: IntentRecord, path: String, descriptor: FileDescriptor) {
        self.record = record
        self.path = path
        self.descriptor = descriptor
    }

    deinit { descriptor?.closeIgnoringErrors() }

    /// The operation is complete (or rolled back): remove the record durably, then unlock.
    public func finish() throws(StorageError) {
        try Syscall.unlinkIfPresent(path)
        try Syscall.fsyncDirectory(Syscall.parentDirectory(of: path))
        descriptor?.closeIgnoringErrors()
        descriptor = nil
    }
}

/// The intent records of one SR.
public struct IntentJournal: Sendable {
    public let directory: String
    static let suffix = ".intent"
    static let temporaryPrefix = ".tmp-"

    /// Which host writes the records (`HostEnvironment.identity`).
    public let hostIdentity: String

    public init(srRoot: String, hostIdentity: String = LockOwner.shortHostName()) {
        directory = "\(srRoot)/.sm/journal"
        self.hostIdentity = hostIdentity
    }

    /// Writes `record` durably (temporary name, fsync, rename, fsync directory) and returns it held.
    /// The record says which host and process wrote it (`host`, `pid`): Docs/pools.md.
    public func begin(_ record: IntentRecord) throws(StorageError) -> IntentEntry {
        var record = record
        record.fields["host"] = hostIdentity
        record.fields["pid"] = String(getpid())
        if !Syscall.isDirectory(directory) {
            // A record counts only if recovery can find it: new directories durable in their parents too.
            try Syscall.makeDirectories(directory)
            let state = Syscall.parentDirectory(of: directory)
            try Syscall.fsyncDirectory(state)
            try Syscall.fsyncDirectory(Syscall.parentDirectory(of: state))
        }
        let id = CanonicalUUID.random().string
        let temporary = "\(directory)/\(Self.temporaryPrefix)\(id).\(hostIdentity)"
        let path = "\(directory)/\(id)\(Self.suffix)"
        // Held from its creation on (ClaimedTemporary): another process's recovery pass removes
        // only temporaries whose writer is gone, never this one while it is being written.
        let descriptor = try ClaimedTemporary.create(temporary, mode: 0o600)
        do throws(StorageError) {
            try descriptor.writeAll(record.bytes, at: 0, path: temporary)
            try descriptor.sync(path: temporary)
            try Syscall.rename(temporary, path)
            try Syscall.fsyncDirectory(directory)
        } catch {
            descriptor.closeIgnoringErrors()
            try? Syscall.unlinkIfPresent(temporary)
            throw error
        }
        return IntentEntry(record: record, path: path, descriptor: descriptor)
    }

    /// True when no record (live or crashed) exists: the cheap test before every operation.
    public var isEmpty: Bool {
        guard let names = try? Syscall.directoryEntries(directory) else { return true }
        return names.isEmpty
    }

    /// Every record left by a process that may be gone: this host's records whose lock is free,
    /// each now held by the caller, and every record of another host, held or not. Records of
    /// this host's live operations (their lock is held) are skipped; unreadable ones are returned
    /// as `damaged`.
    ///
    /// Another host's record is returned even when its lock is held, because on shared storage
    /// that lock is the file server's, not the writer's: NFSv4 keeps a dead client's locks until
    /// its lease runs out on the server (90 s by default), NLM (NFSv3) until the dead host
    /// reboots and its statd tells the server. Whether another host's operation still runs is
    /// decided by its claims (`VHDRepository.recover`, Docs/pools.md), which lapse on our terms.
    public func claimAbandoned() -> (entries: [IntentEntry], damaged: [String]) {
        guard let names = try? Syscall.directoryEntries(directory) else { return ([], []) }
        var entries: [IntentEntry] = []
        var damaged: [String] = []
        for name in names.sorted() {
            let path = "\(directory)/\(name)"
            if name.hasPrefix(Self.temporaryPrefix) {
                // Never committed: its operation had not started. Gone, unless its writer lives,
                // which only a process of the same host can tell (its flock): another host's
                // temporaries are that host's to remove (`.tmp-<id>.<host>`).
                let host = name.split(separator: ".").dropFirst().first.map(String.init)
                if host == nil || host == hostIdentity { ClaimedTemporary.removeIfAbandoned(path) }
                continue
            }
            guard let descriptor = try? Syscall.openRegularFile(path, .readWrite) else { continue }
            let locked: Bool
            switch Syscall.flock(descriptor, LOCK_EX | LOCK_NB) {
            case .success: locked = true
            case .failure(.wouldBlock): locked = false
            case .failure:
                descriptor.closeIgnoringErrors()
                continue
            }
            guard let status = try? descriptor.status(path: path), status.st_nlink > 0 else {
                descriptor.closeIgnoringErrors()
                continue
            }
            guard name.hasSuffix(Self.suffix), let bytes = try? descriptor.read(count: 1 << 16, at: 0, path: path),
                let record = IntentRecord(bytes: bytes)
            else {
                // A damaged record held by a process of this host is being written or replayed.
                if locked { damaged.append(path) }
                descriptor.closeIgnoringErrors()
                continue
            }
            if !locked && !isForeign(record) {
                descriptor.closeIgnoringErrors()
                continue
            }
            entries.append(IntentEntry(record: record, path: path, descriptor: descriptor))
        }
        return (entries, damaged)
    }

    /// True when another host wrote the record (its `host` field names another identity).
    public func isForeign(_ record: IntentRecord) -> Bool {
        guard let writer = record["host"] else { return false }
        return writer != hostIdentity
    }

    /// Every committed record: whether its lock is held (for this host's records: whether its
    /// operation is running now; for another host's, see `claimAbandoned`) and its contents (nil
    /// when unreadable).
    public func records() -> [(path: String, intent: IntentRecord?, live: Bool)] {
        guard let names = try? Syscall.directoryEntries(directory) else { return [] }
        var result: [(path: String, intent: IntentRecord?, live: Bool)] = []
        for name in names.sorted() where name.hasSuffix(Self.suffix) {
            let path = "\(directory)/\(name)"
            guard let descriptor = try? Syscall.openRegularFile(path, .readOnly) else { continue }
            defer { descriptor.closeIgnoringErrors() }
            var live = false
            if case .failure(.wouldBlock) = Syscall.flock(descriptor, LOCK_SH | LOCK_NB) { live = true }
            let bytes = (try? descriptor.read(count: 1 << 16, at: 0, path: path)) ?? []
            result.append((path, IntentRecord(bytes: bytes), live))
        }
        return result
    }
}
