import SMCore

#if canImport(Glibc)
    import Glibc
#endif
/// What this host's sanlock daemon knows about the other hosts in a shared volume group's lock
/// space, read with `sanlock client gets -h 1`.
///
/// Why: vgremove asks lvmlockd whether other hosts still use the group, and lvmlockd (2.03.16,
/// `lm_hosts_sanlock`) counts only hosts sanlock reports LIVE. Right after this host has joined
/// the lock space, sanlock reports every other host UNKNOWN until it has watched their delta
/// leases for a while, so a vgremove right after `vgchange --lockstart` removes a group another
/// host has attached (seen in the VM lane). sr_delete therefore also refuses while any other host
/// has a delta lease that sanlock does not know to be FREE (left cleanly: timestamp 0) or DEAD
/// (not renewed for sanlock's host_dead_seconds).
///
/// sanlock judges another host by what this host has watched since it joined the lock space
/// (sanlock's `get_host_flag`: times are this daemon's, kept per joined lock space and dropped at
/// lockstop): a host whose lease it has not yet seen renewed is UNKNOWN for 8 × that host's
/// io_timeout, then FAIL, then DEAD once host_dead_seconds (8 × io_timeout + 60 s) have passed
/// since the first read; a renewal makes it LIVE. sr_delete joins the lock space afresh, so a
/// host that died is never DEAD at once, and an EBUSY retried later joins afresh again: it
/// stayed UNKNOWN forever (the VM lane's `lvm-shared` failed so in CI; it passed when its check
/// hit the moment before sanlock's first read, when `gets` lists no host at all, "hosts not
/// ready", which this check then took for "nobody"). So the check waits, in the one joining,
/// until every other host is LIVE (EBUSY at once), FREE or DEAD (go on), polling every
/// `pollSeconds`, at most `decisionSeconds`.
public struct SanlockLockspace: Sendable, Equatable {
    /// The lock space's name: `lvm_<VG>`, cut to sanlock's 48 bytes (lvmlockd's rule).
    public let name: String

    /// sanlock's limit on lock space names (SANLK_NAME_LEN).
    static let maximumNameLength = 48

    public init(volumeGroup: String) {
        name = String(decoding: Array("lvm_\(volumeGroup)".utf8).prefix(Self.maximumNameLength), as: UTF8.self)
    }

    /// A host as `sanlock client gets -h 1` lists it: `h <id> gen <gen> timestamp <t> <STATE>`.
    public struct Host: Sendable, Equatable {
        public var id: Int
        public var timestamp: UInt64
        public var state: String

        /// Whether the host may still use the lock space: a lease that is held (timestamp not 0)
        /// and not known dead.
        public var mayBeUsing: Bool { timestamp != 0 && state != "FREE" && state != "DEAD" }
    }

    /// Every host listed under this lock space in `output`, this one included; nil when the lock
    /// space is not listed (not started on this host). Empty while sanlock has not yet read the
    /// leases since joining ("hosts not ready": a ready answer lists at least this host's own).
    public func hosts(in output: String) -> [Host]? {
        var inside = false
        var found = false
        var hosts: [Host] = []
        for line in output.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ").map(String.init)
            guard let kind = words.first else { continue }
            if kind == "s" {
                inside = words.count > 1 && words[1].split(separator: ":").first.map(String.init) == name
                found = found || inside
                continue
            }
            guard inside, kind == "h", words.count >= 7, words[2] == "gen", words[4] == "timestamp",
                let id = Int(words[1]), let timestamp = UInt64(words[5])
            else { continue }
            hosts.append(Host(id: id, timestamp: timestamp, state: words[6]))
        }
        return found ? hosts : nil
    }

    /// The hosts this host's sanlock lists under the lock space now (`hosts(in:)`); EIO when
    /// sanlock cannot be asked.
    public func currentHosts() throws(StorageError) -> [Host]? {
        hosts(in: try ExternalCommand.run("sanlock", ["client", "gets", "-h", "1"]).standardOutput)
    }

    /// The hosts other than `hostID` listed under this lock space in `output`; nil when the lock
    /// space is not listed (not started on this host).
    public func otherHosts(in output: String, excluding hostID: Int) -> [Host]? {
        hosts(in: output).map { $0.filter { $0.id != hostID } }
    }

    /// What one answer of sanlock says about sr_delete: go on (no other host may use the lock
    /// space), busy (another host is LIVE), or not yet known (sanlock has not read the leases yet,
    /// or another host is UNKNOWN or FAIL: it becomes LIVE or, by host_dead_seconds, DEAD).
    public enum Decision: Equatable {
        case clear
        case busy([Host])
        case undecided([Host])
    }

    /// The decision for `output` (nil: the lock space is not listed).
    public func decision(in output: String, hostID: Int) -> Decision? {
        guard let all = hosts(in: output) else { return nil }
        guard !all.isEmpty else { return .undecided([]) }
        let using = all.filter { $0.id != hostID && $0.mayBeUsing }
        if using.isEmpty { return .clear }
        return using.contains { $0.state == "LIVE" } ? .busy(using) : .undecided(using)
    }

    /// How long sr_delete waits for sanlock to decide: host_dead_seconds with sanlock's default
    /// io_timeout (8 × 10 + 60 = 140 s) counts from sanlock's first read after joining; the rest
    /// covers a later first read and the hosts' renewal interval. A host that still is UNKNOWN or
    /// FAIL then (an io_timeout above 17 s) makes sr_delete EBUSY.
    static let decisionSeconds = 200.0
    static let pollSeconds: UInt32 = 2

    /// Returns once no other host may still use the lock space; EBUSY, naming the hosts, as soon
    /// as one is LIVE, or when sanlock has not decided within `decisionSeconds` (see the type's
    /// comment); EIO when sanlock cannot be asked or does not list the lock space.
    public func requireNoOtherHosts(hostID: Int) throws(StorageError) {
        let deadline = Syscall.monotonicNow() + Self.decisionSeconds
        while true {
            let output = try ExternalCommand.run("sanlock", ["client", "gets", "-h", "1"])
            let using: [Host]
            switch decision(in: output.standardOutput, hostID: hostID) {
            case nil: throw .io("sanlock does not list lock space \(name) on this host")
            case .clear: return
            case .busy(let hosts): using = hosts
            case .undecided(let hosts):
                guard Syscall.monotonicNow() >= deadline else {
                    Syscall.sleep(seconds: Double(Self.pollSeconds))
                    continue
                }
                using = hosts
            }
            let named =
                using.isEmpty
                ? "sanlock has not read the other hosts' leases"
                : using.map { "host id \($0.id) (\($0.state))" }.joinedText(separator: ", ")
            throw .lockspaceInUseElsewhere(name, hosts: named)
        }
    }
}
