import SMCore

/// Where and as whom RBDSR reaches a Ceph cluster: the dconf keys, validated before anything
/// is touched. The secret (`key`) is held here and handed only to librados
/// (`rados_conf_set("key")`) and to the kernel's rbd driver (a sysfs write); it is never
/// printed, logged or put in a message.
public struct CephCredentials: Sendable {
    /// `monitors` is required unless `conf` names them (checked in `init`).
    public static let requiredKeys = ["pool", "user"]
    public static let optionalKeys = ["monitors", "keyring", "key", "namespace", "conf", "timeout"]
    /// Seconds librados may wait for a monitor or an OSD before the verb fails, unless dconf `timeout` says otherwise.
    public static let defaultTimeout = 10

    /// Monitor addresses as given (`host:port`, optionally `v1:`/`v2:` prefixed), comma-separated;
    /// empty when dconf `conf` gives them (its `mon host`).
    public let monitors: [String]
    public let pool: String
    /// The cephx id without `client.`.
    public let user: String
    public let keyring: String?
    let key: String?
    /// The RBD namespace holding the SR; nil means "named by the SR UUID".
    public let namespace: String?
    public let configurationFile: String?
    public let timeout: Int

    public init(configuration: DeviceConfiguration) throws(StorageError) {
        if let list = configuration["monitors"], !list.isEmpty {
            monitors = try Self.monitors(list)
        } else if configuration["conf"].map({ !$0.isEmpty }) ?? false {
            monitors = []
        } else {
            throw .invalid("dconf needs 'monitors' (the monitor addresses), or a 'conf' that names them")
        }
        pool = try Self.name(try configuration.required("pool"), key: "pool")
        var user = try configuration.required("user")
        if user.hasPrefix("client.") { user.removeFirst("client.".count) }
        self.user = try Self.name(user, key: "user")
        let keyring = configuration["keyring"].flatMap { $0.isEmpty ? nil : $0 }
        let key = configuration["key"].flatMap { $0.isEmpty ? nil : $0 }
        switch (keyring, key) {
        case (nil, nil): throw .invalid("dconf needs one of 'keyring' (a keyring file) or 'key' (the cephx secret)")
        case (.some, .some): throw .invalid("dconf has both 'keyring' and 'key'; give one")
        default: break
        }
        if let keyring {
            guard keyring.hasPrefix("/") else {
                throw .invalid("dconf keyring '\(ArgumentParsing.printable(keyring))' is not an absolute path")
            }
            guard Syscall.exists(keyring) else { throw .invalid("dconf keyring '\(ArgumentParsing.printable(keyring))' does not exist") }
        }
        if let key { try Self.checkSecret(key) }
        self.keyring = keyring
        self.key = key
        if let name = configuration["namespace"], !name.isEmpty {
            namespace = try Self.name(name, key: "namespace")
        } else {
            namespace = nil
        }
        if let conf = configuration["conf"], !conf.isEmpty {
            guard conf.hasPrefix("/"), Syscall.exists(conf), !Syscall.isDirectory(conf) else {
                throw .invalid("dconf conf '\(ArgumentParsing.printable(conf))' is not an existing absolute path to a file")
            }
            configurationFile = conf
        } else {
            configurationFile = nil
        }
        if let text = configuration["timeout"] {
            guard let seconds = ArgumentParsing.boundedDecimal(text, in: 1...300) else {
                throw .invalid("dconf timeout '\(ArgumentParsing.printable(text))' must be 1 to 300 seconds")
            }
            timeout = seconds
        } else {
            timeout = Self.defaultTimeout
        }
    }

    /// The secret for the kernel client: the dconf `key`, or the one the keyring holds for this user.
    func secret() throws(StorageError) -> String {
        if let key { return key }
        guard let keyring else { throw .invalid("dconf has no key") }
        let text = String(decoding: try Syscall.readFile(keyring, limit: 64 * 1024), as: UTF8.self)
        var inSection = false
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = String(raw).trimmingWhitespace()
            if line.hasPrefix("[") {
                inSection = line == "[client.\(user)]"
            } else if inSection, line.hasPrefix("key") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2, String(parts[0]).trimmingWhitespace() == "key" {
                    let value = String(parts[1]).trimmingWhitespace()
                    try Self.checkSecret(value, source: "the keyring's key for client.\(user)")
                    return value
                }
            }
        }
        throw .invalid("keyring \(keyring) holds no key for client.\(user)")
    }

    /// A cephx secret is base64 (a 16-byte AES key plus header: 40 characters). Refused without
    /// echoing it: librados would print a malformed key on stderr.
    static func checkSecret(_ value: String, source: String = "dconf key") throws(StorageError) {
        let alphabet = value.utf8.allSatisfy { byte in
            (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57)
                || byte == 43 || byte == 47 || byte == 61
        }
        guard alphabet, value.utf8.count >= 16, value.utf8.count <= 256, value.utf8.count % 4 == 0 else {
            throw .invalid("\(source) is not a cephx secret (base64, as `ceph auth get-key` prints it)")
        }
    }

    /// Pool, user and namespace names: letters, digits, `-`, `_`, `.`; 1 to 128 characters.
    static func name(_ value: String, key: String) throws(StorageError) -> String {
        let allowed = value.utf8.allSatisfy { byte in
            (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57)
                || byte == 45 || byte == 95 || byte == 46
        }
        guard allowed, !value.isEmpty, value.utf8.count <= 128, value.first != "." else {
            throw .invalid("dconf \(key) '\(ArgumentParsing.printable(value))' must be 1 to 128 letters, digits, '-', '_' or '.'")
        }
        return value
    }

    /// `host:port[,host:port...]`, each optionally `v1:`/`v2:` prefixed, an IPv6 host in brackets.
    static func monitors(_ value: String) throws(StorageError) -> [String] {
        let entries = value.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
        guard entries.count <= 16 else { throw .invalid("dconf monitors lists more than 16 addresses") }
        for entry in entries {
            let allowed = entry.utf8.allSatisfy { byte in
                (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 58)
                    || byte == 45 || byte == 46 || byte == 91 || byte == 93
            }
            guard allowed, !entry.isEmpty, entry.utf8.count <= 300 else {
                throw .invalid("dconf monitors entry '\(ArgumentParsing.printable(entry))' is not an address (host:port)")
            }
        }
        return entries
    }

    /// The monitors for librados: an entry without a `v1:`/`v2:` prefix is taken as messenger v2
    /// (Nautilus and later), unless its port is 6789, v1's. Left bare, librados tries both
    /// protocols on the one port and, refused by cephx, hunts on until its timeout instead of
    /// answering EACCES at once.
    var libradosMonitors: String {
        monitors.map { entry in
            if entry.hasPrefix("v1:") || entry.hasPrefix("v2:") { return entry }
            return entry.hasSuffix(":6789") ? "v1:\(entry)" : "v2:\(entry)"
        }.joinedText(separator: ",")
    }

    /// The monitors for the kernel client: without the `v1:`/`v2:` prefixes.
    var kernelMonitors: String {
        monitors.map { entry in
            entry.hasPrefix("v1:") || entry.hasPrefix("v2:") ? String(entry.dropFirst(3)) : entry
        }.joinedText(separator: ",")
    }

    /// The kernel client's monitor list from librados' `mon_host` (as a ceph.conf gives it:
    /// `[v2:a:3300,v1:a:6789],b:6789`, ...): the v2 addresses when there are any (the map asks for
    /// messenger v2), else all; without prefixes and nonces.
    static func kernelMonitors(fromMonitorHost value: String) -> String {
        let entries = value.split { $0 == "," || $0 == " " || $0 == "[" || $0 == "]" || $0 == ";" }.map { entry in
            String(entry.split(separator: "/").first ?? entry)
        }
        let v2 = entries.filter { $0.hasPrefix("v2:") }
        return (v2.isEmpty ? entries : v2).map { entry in
            entry.hasPrefix("v1:") || entry.hasPrefix("v2:") ? String(entry.dropFirst(3)) : entry
        }.joinedText(separator: ",")
    }
}
