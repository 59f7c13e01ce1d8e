#if canImport(Glibc)
    import Glibc
#endif

/// The login of this host to one iSCSI target, shared by every SR on it: ISCSISR, and the LUNs
/// under LVMoISCSISR and EXToISCSISR. A driver opens it in sr_attach and closes it in sr_detach;
/// sr_create and sr_delete borrow it with `withSession`.
///
/// - **Discovery**: sendtargets against `target:port`; the record used is the one at `target`
///   itself, or the `usediscoverynumber`-th record for `targetIQN` (0 = the first listed).
/// - **Initiator name**: with `localIQN`, an iscsiadm interface `sm-<hash>` whose
///   `iface.initiatorname` is `localIQN` carries the login; without it the `default` interface
///   (the host's /etc/iscsi/initiatorname.iscsi).
/// - **CHAP**: written into the node record file (`<iscsi_node_dir>/<IQN>/<addr>,<port>,<tag>/<iface>`,
///   default `/etc/iscsi/nodes`) with file I/O, mode 0600, after discovery and before login;
///   without CHAP the record says `authmethod = None` and holds no credentials. The password is
///   never in an argv, a log line or a message.
/// - **An existing session proves nothing about the dconf**: iscsiadm answers "already logged
///   in" whatever credentials the node record holds. So before anything is run or written, the
///   dconf's CHAP user and password are compared with those of this host's live sessions to the
///   target through the same interface (the kernel's copy in `<iscsi_session_dir>/sessionN/`,
///   default `/sys/class/iscsi_session`; the node records' where the kernel shows none); a
///   difference is the EPERM a refused login gets, with nothing changed.
/// - **Sharing**: each SR using the session is a file `<run_dir>/iscsi/<key>/<SR-UUID>`; logout
///   happens when the last one closes, and never while a LUN is open exclusively (mounted, held by
///   device-mapper): EBUSY.
/// - **Serialisation**: an exclusive host lock per target IQN (`<lock_dir>/iscsi/<hash>`) around
///   every open, close and borrowed session.
public struct ISCSISession {
    public let target: ISCSITarget
    let host: HostEnvironment

    /// How long to wait for a LUN's block device to appear after login.
    public static let deviceTimeout = 30.0

    public init(target: ISCSITarget, host: HostEnvironment) {
        self.target = target
        self.host = host
    }

    var nodeDirectory: String { Self.nodeDirectory(host) }
    static func nodeDirectory(_ host: HostEnvironment) -> String { host.settings["iscsi_node_dir"] ?? "/etc/iscsi/nodes" }
    var byPathDirectory: String { host.settings["iscsi_by_path_dir"] ?? "/dev/disk/by-path" }
    var sessionDirectory: String { host.settings["iscsi_session_dir"] ?? "/sys/class/iscsi_session" }

    /// The iscsiadm interface carrying the login.
    var interface: String {
        guard let initiator = target.initiatorIQN else { return "default" }
        return "sm-" + String(Self.hexDigest(initiator).prefix(12))
    }

    func registration(_ sr: CanonicalUUID) -> String { "\(host.runDirectory)/\(sr)/iscsi-session" }

    func usersDirectory(_ portal: ISCSIPortal) -> String {
        "\(host.runDirectory)/iscsi/" + Self.hexDigest("\(target.iqn) \(portal.text),\(portal.groupTag) \(interface)").prefix(16)
    }

    // MARK: Opening and closing

    /// sr_attach: logs in (idempotent) and records `sr` as a user of the session. When the records
    /// cannot be written, the login is undone unless an SR on this host (this one, attached
    /// before, or another) uses the session.
    @discardableResult
    public func open(for sr: CanonicalUUID) throws(StorageError) -> ISCSIPortal {
        let lock = try lockTarget()
        defer { lock.release() }
        let portal = try login()
        let users = usersDirectory(portal)
        let wasUser = Syscall.exists("\(users)/\(sr)")
        do throws(StorageError) {
            try Syscall.makeDirectories(users)
            try Syscall.writeFileAtomically("\(users)/\(sr)", [])
            try Syscall.makeDirectories(Syscall.parentDirectory(of: registration(sr)))
            try Syscall.writeFileAtomically(registration(sr), Array("\(portal.address)\n\(portal.port)\n\(portal.groupTag)\n".utf8))
        } catch {
            if !wasUser { try? Syscall.unlinkIfPresent("\(users)/\(sr)") }
            if ((try? Syscall.directoryEntries(users)) ?? []).allSatisfy({ CanonicalUUID($0) == nil }) {
                do throws(StorageError) {
                    try logout(portal)
                } catch let logoutError {
                    Diagnostics.debug("logout after a failed attach: \(logoutError)")
                }
            }
            throw error
        }
        return portal
    }

    /// sr_attach of a driver on this session: `open(for:)`, then `body` with the portal; when
    /// `body` fails, the session is closed again (logged out unless another SR uses it).
    public func open(for sr: CanonicalUUID, then body: (ISCSIPortal) throws -> Void) throws {
        let portal = try open(for: sr)
        do {
            try body(portal)
        } catch {
            try? close(for: sr)
            throw error
        }
    }

    /// sr_detach: idempotent. Forgets `sr` as a user; the last user logs out, EBUSY (and nothing
    /// changed) while one of the target's LUNs is in use.
    public func close(for sr: CanonicalUUID) throws(StorageError) {
        let lock = try lockTarget()
        defer { lock.release() }
        guard let portal = attachedPortal(for: sr) else { return }
        let users = usersDirectory(portal)
        let others = ((try? Syscall.directoryEntries(users)) ?? []).filter { $0 != sr.string && CanonicalUUID($0) != nil }
        if others.isEmpty { try logout(portal) }
        try Syscall.unlinkIfPresent("\(users)/\(sr)")
        try Syscall.unlinkIfPresent(registration(sr))
    }

    /// For sr_create and sr_delete: runs `body` with the target logged in, then logs out again
    /// unless an SR on this host uses the session. An SR deleted while attached here (its host
    /// state, which names the session, went with it) no longer counts as a user.
    public func withSession<T>(for sr: CanonicalUUID, _ body: (ISCSIPortal) throws -> T) throws -> T {
        let lock = try lockTarget()
        defer { lock.release() }
        let portal = try attachedPortal(for: sr) ?? login()
        let result = Result { try body(portal) }
        if case .success = result, attachedPortal(for: sr) == nil {
            try? Syscall.unlinkIfPresent("\(usersDirectory(portal))/\(sr)")
        }
        let users = ((try? Syscall.directoryEntries(usersDirectory(portal))) ?? []).filter { CanonicalUUID($0) != nil }
        if users.isEmpty {
            do throws(StorageError) {
                try logout(portal)
            } catch {
                if case .success = result { throw error }
                Diagnostics.debug("logout after a failed call: \(error)")
            }
        }
        return try result.get()
    }

    /// The portal `open(for:)` logged in to for `sr`; nil when this host has not attached it.
    public func attachedPortal(for sr: CanonicalUUID) -> ISCSIPortal? {
        guard let bytes = try? Syscall.readFile(registration(sr), limit: 4096) else { return nil }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        guard lines.count == 3, let port = UInt16(lines[1]) else { return nil }
        return ISCSIPortal(address: lines[0], port: port, groupTag: lines[2])
    }

    /// The portal `open(for:)` logged in to for `sr`, or the dconf's target itself when this host
    /// has no record: for verbs that only name the LUNs' links and never open them (sr_detach).
    public func attachedPortalOrTarget(for sr: CanonicalUUID) -> ISCSIPortal {
        attachedPortal(for: sr) ?? ISCSIPortal(address: target.address, port: target.port, groupTag: "1")
    }

    // MARK: LUNs

    /// The prefix of the target's LUN links in /dev/disk/by-path.
    func byPathPrefix(_ portal: ISCSIPortal) -> String { "ip-\(portal.text)-iscsi-\(target.iqn)-lun-" }

    /// The by-path link of one LUN (whether or not it exists).
    public func lunPath(_ lun: Int, portal: ISCSIPortal) -> String { "\(byPathDirectory)/\(byPathPrefix(portal))\(lun)" }

    /// The target's LUNs that have a block device on this host, by LUN number.
    public func lunDevices(_ portal: ISCSIPortal) -> [Int: String] {
        let prefix = byPathPrefix(portal)
        var found: [Int: String] = [:]
        for name in (try? Syscall.directoryEntries(byPathDirectory)) ?? [] where name.hasPrefix(prefix) {
            let suffix = name.dropFirst(prefix.count)
            guard !suffix.isEmpty, suffix.utf8.count <= 5, suffix.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let lun = Int(suffix)
            else { continue }
            found[lun] = "\(byPathDirectory)/\(name)"
        }
        return found
    }

    /// The devices of `luns`, waiting up to `deviceTimeout` for udev to make them; ENODEV naming
    /// the LUNs that did not appear and the ones the target has.
    public func waitForLUNs(_ luns: [Int], portal: ISCSIPortal) throws(StorageError) -> [String] {
        let deadline = Syscall.monotonicNow() + Self.deviceTimeout
        while true {
            let devices = lunDevices(portal)
            let missing = luns.filter { devices[$0] == nil }
            if missing.isEmpty { return luns.map { devices[$0]! } }
            if Syscall.monotonicNow() >= deadline {
                throw .lunsMissing(missing, iqn: target.iqn, portal: portal.text, present: devices.keys.sorted())
            }
            Syscall.sleep(seconds: 0.1)
        }
    }

    /// The LUN's SCSI identifier (VPD page 0x83, as udev's `scsi_id -g -u` prints it).
    public static func scsiIdentifier(of device: String) throws(StorageError) -> String {
        guard let program = ["/lib/udev/scsi_id", "/usr/lib/udev/scsi_id"].first(where: Syscall.exists) else {
            throw .io("udev's scsi_id is not installed (looked in /lib/udev and /usr/lib/udev)")
        }
        let identifier = try ExternalCommand.run(program, ["-g", "-u", "-d", device]).standardOutput.trimmingWhitespace()
        guard !identifier.isEmpty, !identifier.contains("\n") else { throw .io("scsi_id reports no identifier for \(device)") }
        return identifier
    }

    // MARK: iscsiadm

    /// Credentials check against an existing session, interface, discovery, node record, login
    /// (an existing session is then success), udev settle.
    func login() throws(StorageError) -> ISCSIPortal {
        try verifyExistingSessions()
        try prepareInterface()
        let portal = try discover()
        try writeNodeAuthentication(portal)
        try ISCSIAdm.run(
            ["-m", "node", "-T", target.iqn, "-p", portal.text, "-I", interface, "--login"],
            accepting: [.sessionExists], what: "login to \(target.iqn) at \(portal.text)")
        _ = try? ExternalCommand.runAllowingFailure("udevadm", ["settle", "--timeout=30"])
        return portal
    }

    /// Logs out (no session is success), after checking that no LUN is in use.
    func logout(_ portal: ISCSIPortal) throws(StorageError) {
        for (lun, path) in lunDevices(portal).sorted(by: { $0.key < $1.key }) {
            guard let device = try? BlockDevice(path: path) else { continue }
            do throws(StorageError) {
                try device.open(.readOnly, exclusive: true).closeIgnoringErrors()
            } catch  where error.code == .resourceBusy {
                throw .lunInUse(lun, iqn: target.iqn, device: path)
            } catch {
                Diagnostics.debug("LUN \(lun): \(error)")
            }
        }
        try ISCSIAdm.run(
            ["-m", "node", "-T", target.iqn, "-p", portal.text, "-I", interface, "--logout"],
            accepting: [.noObjects], what: "logout from \(target.iqn) at \(portal.text)")
        _ = try? ExternalCommand.runAllowingFailure("udevadm", ["settle", "--timeout=30"])
    }

    /// sendtargets discovery; the record `usediscoverynumber` names, or the one at `target`.
    func discover() throws(StorageError) -> ISCSIPortal {
        let endpoint = ISCSIPortal(address: target.address, port: target.port, groupTag: "1").text
        let output = try ISCSIAdm.run(
            ["-m", "discovery", "-t", "sendtargets", "-p", endpoint, "-I", interface],
            what: "discovery at \(endpoint)")
        let records = output.standardOutput.split(whereSeparator: \.isNewline)
            .compactMap { ISCSIPortal.parseDiscovery(String($0)) }.filter { $0.iqn == target.iqn }.map(\.portal)
        guard !records.isEmpty else {
            throw .targetNotAdvertised(target.iqn, endpoint: endpoint)
        }
        if let number = target.discoveryNumber {
            guard number < records.count else {
                throw .discoveryRecordMissing(number, iqn: target.iqn, endpoint: endpoint, records: records.count)
            }
            return records[number]
        }
        return records.first { $0.address == target.address && $0.port == target.port } ?? records[0]
    }

    /// How a session authenticates: what the dconf asks for, and what a live session used.
    enum Authentication: Equatable {
        case none
        case chap(ISCSITarget.Credentials)

        init(_ chap: ISCSITarget.Credentials?) { self = chap.map { .chap($0) } ?? .none }

        init(user: String?, password: String?) {
            if let user, let password, !user.isEmpty, user != Self.unset {
                self = .chap(.init(user: user, password: password))
            } else {
                self = .none
            }
        }

        /// What the kernel shows for a parameter iscsid never set.
        static let unset = "(null)"
    }

    /// EPERM, before anything is run or written, when this host already has a session to the
    /// target through `interface` that was logged in with other credentials than the dconf's:
    /// iscsiadm's login would answer "session exists" and the wrong password would pass.
    func verifyExistingSessions() throws(StorageError) {
        let wanted = Authentication(target.chap)
        for session in liveSessions() {
            let used = kernelAuthentication(session).map { [$0] } ?? nodeRecordAuthentications()
            guard !used.isEmpty, used.allSatisfy({ $0 == wanted }) else {
                throw .chapRefused(
                    "\(target.iqn) (\(session), interface \(interface))",
                    reason: "this host is already logged in to it with other CHAP credentials than the dconf's, "
                        + "so the dconf's are not known to be right; nothing was changed")
            }
        }
    }

    /// This host's sessions (`sessionN`) to the target through `interface`.
    func liveSessions() -> [String] {
        ((try? Syscall.directoryEntries(sessionDirectory)) ?? []).sorted().filter { name in
            guard name.hasPrefix("session"), let iqn = sessionAttribute(name, "targetname"), iqn == target.iqn else { return false }
            return (sessionAttribute(name, "ifacename") ?? "default") == interface
        }
    }

    /// The credentials the kernel holds for a session (root-only sysfs attributes); nil when it
    /// does not show them.
    func kernelAuthentication(_ session: String) -> Authentication? {
        guard let user = sessionAttribute(session, "username") else { return nil }
        if user.isEmpty || user == Authentication.unset { return Authentication.none }
        guard let password = sessionAttribute(session, "password") else { return nil }
        return Authentication(user: user, password: password)
    }

    func sessionAttribute(_ session: String, _ name: String) -> String? {
        guard let bytes = try? Syscall.readFile("\(sessionDirectory)/\(session)/\(name)", limit: 4096) else { return nil }
        var text = String(decoding: bytes, as: UTF8.self)
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// The authentication of every node record of the target for `interface` (one per portal).
    func nodeRecordAuthentications() -> [Authentication] {
        let targetDirectory = "\(nodeDirectory)/\(target.iqn)"
        return ((try? Syscall.directoryEntries(targetDirectory)) ?? []).sorted().compactMap { portal in
            guard let bytes = try? Syscall.readFile("\(targetDirectory)/\(portal)/\(interface)") else { return nil }
            return Self.authentication(inRecord: String(decoding: bytes, as: UTF8.self))
        }
    }

    /// A node record's authentication lines read back (the inverse of `recordWithAuthentication`).
    static func authentication(inRecord record: String) -> Authentication {
        let values = KeyValueLines(Array(record.utf8), trimming: true).dictionary.filter {
            authenticationKeys.contains($0.key) && !$0.value.isEmpty
        }
        guard values["node.session.auth.authmethod"] == "CHAP" else { return .none }
        return Authentication(user: values["node.session.auth.username"], password: values["node.session.auth.password"])
    }

    /// With `localIQN`: the interface exists and carries that initiator name.
    func prepareInterface() throws(StorageError) {
        guard let initiator = target.initiatorIQN else { return }
        let shown = try ExternalCommand.runAllowingFailure(ISCSIAdm.program, ["-m", "iface", "-I", interface])
        if shown.status != 0 {
            try ISCSIAdm.run(["-m", "iface", "-I", interface, "-o", "new"], what: "creating iscsiadm interface \(interface)")
        }
        try ISCSIAdm.run(
            ["-m", "iface", "-I", interface, "-o", "update", "-n", "iface.initiatorname", "-v", initiator],
            what: "setting the initiator name of interface \(interface)")
    }

    /// The node record's authentication lines, rewritten with file I/O (mode 0600).
    func writeNodeAuthentication(_ portal: ISCSIPortal) throws(StorageError) {
        let path = "\(nodeDirectory)/\(target.iqn)/\(portal.address),\(portal.port),\(portal.groupTag)/\(interface)"
        guard let bytes = try? Syscall.readFile(path) else {
            throw .io(
                "iscsiadm made no node record at \(path) after discovery; cannot set authentication "
                    + "without a command line (set iscsi_node_dir in /etc/sm/sm.conf if records live elsewhere)")
        }
        let record = try Self.recordWithAuthentication(String(decoding: bytes, as: UTF8.self), chap: target.chap, path: path)
        try Syscall.writeFileAtomically(path, Array(record.utf8), mode: 0o600)
    }

    static let authenticationKeys: Set<String> = [
        "node.session.auth.authmethod", "node.session.auth.username", "node.session.auth.password",
        "node.session.auth.username_in", "node.session.auth.password_in"
    ]
    static let endOfRecord = "# END RECORD"

    /// A node record with its authentication lines replaced: CHAP with the credentials, or None.
    static func recordWithAuthentication(_ record: String, chap: ISCSITarget.Credentials?, path: String) throws(StorageError) -> String {
        var lines = record.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { line in
            let key = line.split(separator: "=", maxSplits: 1).first.map { String($0).trimmingWhitespace() } ?? ""
            return !authenticationKeys.contains(key)
        }
        guard let end = lines.firstIndex(where: { $0.trimmingWhitespace() == endOfRecord }) else {
            throw .io("node record \(path) has no '\(endOfRecord)' line; not changing it")
        }
        var authentication = ["node.session.auth.authmethod = \(chap == nil ? "None" : "CHAP")"]
        if let chap {
            authentication += ["node.session.auth.username = \(chap.user)", "node.session.auth.password = \(chap.password)"]
        }
        lines.insert(contentsOf: authentication, at: end)
        return lines.joinedText(separator: "\n")
    }

    // MARK: Pieces

    func lockTarget() throws(StorageError) -> HostLock {
        try HostLock.acquire(
            "\(host.lockDirectory)/iscsi/" + String(Self.hexDigest(target.iqn).prefix(16)), mode: .exclusive,
            timeout: host.lockTimeout)
    }

    static func hexDigest(_ text: String) -> String {
        let digits = Array("0123456789abcdef")
        return String(SHA1.digest(Array(text.utf8)).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]] })
    }
}
