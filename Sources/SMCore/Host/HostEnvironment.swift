/// Where this host keeps its state, and the host-wide settings.
///
/// Defaults are DESIGN.md's host layout. Each can be moved by an environment variable, or by a
/// `key = value` line in the config file (`SM_CONFIG`, default `/etc/sm/sm.conf`); the
/// environment wins. Tests use this to run without touching the host's real state.
///
/// | key (file)   | environment      | default             |
/// |--------------|------------------|---------------------|
/// | run_dir      | SM_RUN_DIR       | /run/sm             |
/// | lock_dir     | SM_LOCK_DIR      | /run/lock/sm        |
/// | log_file     | SM_LOG_FILE      | /var/log/SMlog      |
/// | mount_dir    | SM_MOUNT_DIR     | /run/sr-mount       |
/// | lock_timeout | SM_LOCK_TIMEOUT  | 120 (seconds)       |
/// | lvm_config   | SM_LVM_CONFIG    | (empty)             |
/// | host_id      | SM_HOST_ID       | the short host name |
/// | claim_lease  | SM_CLAIM_LEASE   | 30 (seconds)        |
/// | sanlock_host_id | SM_SANLOCK_HOST_ID | none (LVMoISCSISR needs it: 1 to 2000) |
public struct HostEnvironment: Sendable {
    public var runDirectory: String
    public var lockDirectory: String
    public var logFile: String
    public var mountDirectory: String
    /// Seconds to wait for a host-local lock before answering EBUSY.
    public var lockTimeout: Double
    /// Extra LVM configuration (`--config` text) for LVM-based drivers; empty by default.
    public var lvmConfiguration: String
    /// Every setting read, for drivers with their own keys.
    public var settings: [String: String]
    /// Which host of a pool this is: in every journal record and every claim on shared storage
    /// (Docs/pools.md). Letters, digits, `-` and `_`, at most 64; unique in the pool.
    public var identity: String = LockOwner.shortHostName()
    /// The lease of claims on shared storage, in seconds: a claim whose holder is on another host
    /// and has not refreshed it for this long has lapsed.
    public var claimLease: Int = 30

    public static let defaultConfigFile = "/etc/sm/sm.conf"

    public init(
        runDirectory: String = "/run/sm", lockDirectory: String = "/run/lock/sm",
        logFile: String = "/var/log/SMlog", mountDirectory: String = "/run/sr-mount",
        lockTimeout: Double = 120, lvmConfiguration: String = "", settings: [String: String] = [:]
    ) {
        self.runDirectory = runDirectory
        self.lockDirectory = lockDirectory
        self.logFile = logFile
        self.mountDirectory = mountDirectory
        self.lockTimeout = lockTimeout
        self.lvmConfiguration = lvmConfiguration
        self.settings = settings
    }

    /// Reads the config file (if any) and the environment.
    public static func current() throws(StorageError) -> HostEnvironment {
        let configPath = Syscall.environment("SM_CONFIG") ?? defaultConfigFile
        var settings: [String: String] = [:]
        if Syscall.exists(configPath) {
            let file = KeyValueLines(try Syscall.readFile(configPath, limit: 1 << 16), trimming: true, comments: true)
            if let line = file.firstLineWithoutValue {
                throw .invalid("\(configPath) line \(line.number): expected 'key = value'")
            }
            settings = file.dictionary
        }
        let keys: [(file: String, variable: String)] = [
            ("run_dir", "SM_RUN_DIR"), ("lock_dir", "SM_LOCK_DIR"), ("log_file", "SM_LOG_FILE"),
            ("mount_dir", "SM_MOUNT_DIR"), ("lock_timeout", "SM_LOCK_TIMEOUT"), ("lvm_config", "SM_LVM_CONFIG"),
            ("host_id", "SM_HOST_ID"), ("claim_lease", "SM_CLAIM_LEASE"), ("sanlock_host_id", "SM_SANLOCK_HOST_ID")
        ]
        for key in keys {
            if let value = Syscall.environment(key.variable) { settings[key.file] = value }
        }
        var environment = HostEnvironment(settings: settings)
        for key in ["run_dir", "lock_dir", "mount_dir"] {
            if let value = settings[key], !value.hasPrefix("/") {
                throw .invalid("host setting \(key) must be an absolute path, got '\(value)'")
            }
        }
        if let value = settings["run_dir"] { environment.runDirectory = value }
        if let value = settings["lock_dir"] { environment.lockDirectory = value }
        if let value = settings["log_file"] { environment.logFile = value }
        if let value = settings["mount_dir"] { environment.mountDirectory = value }
        if let value = settings["lvm_config"] { environment.lvmConfiguration = value }
        if let value = settings["lock_timeout"] {
            guard let seconds = Double(value), seconds >= 0 else {
                throw .invalid("host setting lock_timeout must be a number of seconds, got '\(value)'")
            }
            environment.lockTimeout = seconds
        }
        if let value = settings["host_id"] {
            guard Self.isValidIdentity(value) else {
                throw .invalid(
                    "host setting host_id must be 1 to 64 letters, digits, '-' or '_', got '\(ArgumentParsing.printable(value))'")
            }
            environment.identity = value
        }
        if let value = settings["claim_lease"] {
            guard let seconds = ArgumentParsing.boundedDecimal(value, in: 1...3600) else {
                throw .invalid(
                    "host setting claim_lease must be a whole number of seconds from 1 to 3600, got '\(ArgumentParsing.printable(value))'")
            }
            environment.claimLease = Int(seconds)
        }
        return environment
    }

    static func isValidIdentity(_ value: String) -> Bool {
        (1...64).contains(value.utf8.count)
            && value.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D
                    || byte == 0x5F
            }
    }

    /// The mount point of a mounted SR.
    public func mountPoint(for sr: CanonicalUUID) -> String { "\(mountDirectory)/\(sr)" }
}
