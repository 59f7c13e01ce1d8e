import SMCore
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

    /// The hosts other than `hostID` listed under this lock space in `output`; nil when the lock
    /// space is not listed (not started on this host).
    public func otherHosts(in output: String, excluding hostID: Int) -> [Host]? {
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
                  let id = Int(words[1]), let timestamp = UInt64(words[5]) else { continue }
            if id != hostID { hosts.append(Host(id: id, timestamp: timestamp, state: words[6])) }
        }
        return found ? hosts : nil
    }

    /// EBUSY, naming the hosts, while another host may still use the lock space (see the type's
    /// comment); EIO when sanlock cannot be asked or does not list the lock space.
    public func requireNoOtherHosts(hostID: Int) throws(StorageError) {
        let output = try ExternalCommand.run("sanlock", ["client", "gets", "-h", "1"])
        guard let hosts = otherHosts(in: output.standardOutput, excluding: hostID) else {
            throw .io("sanlock does not list lock space \(name) on this host")
        }
        let using = hosts.filter(\.mayBeUsing)
        guard using.isEmpty else {
            let named = using.map { "host id \($0.id) (\($0.state))" }.joined(separator: ", ")
            throw .lockspaceInUseElsewhere(name, hosts: named)
        }
    }
}
