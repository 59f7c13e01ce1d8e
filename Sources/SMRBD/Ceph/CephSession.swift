import CRBD
import SMCore
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// One connection to the cluster (`rados_t`) and an I/O context on the dconf's pool, freed in
/// `close()`; the only place that connects. Callers never see a raw pointer.
///
/// Configuration is set option by option (`rados_conf_set`), never read from
/// /etc/ceph/ceph.conf unless dconf `conf` names a file: `mon_host`, `keyring` or `key`,
/// `client_mount_timeout`, `rados_mon_op_timeout` and `rados_osd_op_timeout` (without the first,
/// `rados_connect` ignores every other timeout and waits 300 s on a dead monitor), logging off.
/// While the session is open, standard error points at /dev/null: librados prints to it whatever
/// its logging settings say (among it a malformed key, verbatim), and nothing of that may reach
/// the caller's error line or SMlog.
public final class CephSession {
    let cluster: rados_t
    /// The pool's I/O context, switched to the SR's namespace by `use(namespace:)`.
    let ioContext: rados_ioctx_t
    public let credentials: CephCredentials
    private var diversion: StandardErrorDiversion?
    /// The namespace the I/O context is in (nil: the pool's default one).
    private(set) var namespace: String?
    private var closed = false
    /// Omap values read ahead by `readObjectAndMap(keys:)`, by object then key (nil: known absent);
    /// `mapValue` answers from here, the writers forget what they change.
    private var mapCache: [String: [String: String?]] = [:]
    /// Images opened through this session and not yet closed (`RBDImage` counts them).
    var openImages = 0

    /// Set by an executable that ends with `_exit` right after its verb (RBDSR's main): `close()`
    /// then leaves the connection to the process's exit instead of `rados_shutdown`, whose
    /// teardown (joining librados' threads, freeing its maps) is several milliseconds of every
    /// verb and changes nothing on the cluster: the OSDs and monitors drop a client's sessions
    /// when its sockets close, as they do after a shutdown. Only when every image is closed
    /// (watches and exclusive locks released); otherwise `close()` shuts down as usual.
    public nonisolated(unsafe) static var leaveConnectionToProcessExit = false

    /// Connects as `client.<user>` and opens the pool. ENODEV when no monitor answers within the
    /// timeout or the pool does not exist; EIO when cephx refuses the credentials.
    public init(credentials: CephCredentials) throws(StorageError) {
        self.credentials = credentials
        try CephLibrary.load()
        let diversion = StandardErrorDiversion()
        var handle: rados_t?
        var code = ceph.rados_create(&handle, credentials.user)
        guard code == 0, let handle else {
            diversion.restore()
            throw .ceph(code, "rados_create for client.\(credentials.user)")
        }
        var settings: [(String, String)] = [
            ("log_to_stderr", "false"), ("err_to_stderr", "false"), ("log_file", ""),
            ("log_to_syslog", "false"), ("admin_socket", ""),
            ("client_mount_timeout", "\(credentials.timeout)"),
            ("rados_mon_op_timeout", "\(credentials.timeout)"),
            ("rados_osd_op_timeout", "\(credentials.timeout * 3)"),
            // A Force that breaks a lock must not blocklist the owner's address (see RBDLocks).
            ("rbd_blocklist_on_break_lock", "false"),
            ("rbd_cache", "false"),
            ("ms_async_op_threads", "1"),
            ("auth_client_required", "cephx")
        ]
        if !credentials.monitors.isEmpty { settings.append(("mon_host", credentials.libradosMonitors)) }
        if let keyring = credentials.keyring { settings.append(("keyring", keyring)) }
        if let conf = credentials.configurationFile {
            code = ceph.rados_conf_read_file(handle, conf)
            if code != 0 {
                ceph.rados_shutdown(handle)
                diversion.restore()
                throw .invalid(
                    "librados could not read dconf conf \(conf) (\(Errno(rawValue: -code).symbolicName)); "
                        + "it must be a readable ceph.conf")
            }
        }
        for (option, value) in settings {
            code = ceph.rados_conf_set(handle, option, value)
            guard code == 0 else {
                ceph.rados_shutdown(handle)
                diversion.restore()
                throw .ceph(code, "setting librados option \(option)")
            }
        }
        if credentials.monitors.isEmpty {
            var buffer = [CChar](repeating: 0, count: 1024)
            let found = ceph.rados_conf_get(handle, "mon_host", &buffer, buffer.count) == 0 && buffer[0] != 0
            guard found else {
                ceph.rados_shutdown(handle)
                diversion.restore()
                throw .invalid("dconf has no monitors and dconf conf \(credentials.configurationFile ?? "") names none (mon host)")
            }
        }
        if let key = credentials.key {
            code = ceph.rados_conf_set(handle, "key", key)
            guard code == 0 else {
                ceph.rados_shutdown(handle)
                diversion.restore()
                throw .invalid("librados refused the dconf key (\(Errno(rawValue: -code).symbolicName))")
            }
        }
        let start = Syscall.monotonicNow()
        code = ceph.rados_connect(handle)
        let seconds = Syscall.monotonicNow() - start
        guard code == 0 else {
            ceph.rados_shutdown(handle)
            diversion.restore()
            let monitors =
                credentials.monitors.isEmpty
                ? "the monitors of \(credentials.configurationFile ?? "")"
                : credentials.monitors.joinedText(separator: ",")
            switch -code {
            case ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ENOENT:
                throw StorageError(
                    code: .noSuchDevice,
                    message: "no Ceph monitor at \(monitors) answered within \(credentials.timeout) s "
                        + "(\(-code == ETIMEDOUT ? "ETIMEDOUT" : Errno(rawValue: -code).symbolicName) after \(Double(Int(seconds * 10)) / 10) s); check dconf monitors"
                )
            case EACCES, EPERM:
                throw .io(
                    "the Ceph cluster at \(monitors) refused client.\(credentials.user) "
                        + "(\(Errno(rawValue: -code).symbolicName)); check dconf user and key or keyring")
            case EINVAL:
                throw .invalid("librados could not use the credentials of client.\(credentials.user) (EINVAL); check dconf key or keyring")
            default:
                throw .ceph(code, "connecting to the Ceph cluster at \(monitors)")
            }
        }
        var context: rados_ioctx_t?
        code = ceph.rados_ioctx_create(handle, credentials.pool, &context)
        guard code == 0, let context else {
            ceph.rados_shutdown(handle)
            diversion.restore()
            if code == -ENOENT {
                throw StorageError(
                    code: .noSuchDevice, message: "pool \(credentials.pool) does not exist on the Ceph cluster; check dconf pool")
            }
            throw .ceph(code, "opening pool \(credentials.pool)")
        }
        cluster = handle
        ioContext = context
        self.diversion = diversion
        Diagnostics.debug("connected to \(credentials.monitors) as client.\(credentials.user) in \(Int(seconds * 1000)) ms")
    }

    deinit { close() }

    /// Releases the pool and the connection, and gives standard error back. Idempotent.
    public func close() {
        guard !closed else { return }
        closed = true
        ceph.rados_ioctx_destroy(ioContext)
        if !Self.leaveConnectionToProcessExit || openImages > 0 {
            ceph.rados_shutdown(cluster)
        }
        diversion?.restore()
        diversion = nil
    }

    /// Points the I/O context (and every image opened through it) at `namespace`.
    func use(namespace: String) {
        ceph.rados_ioctx_set_namespace(ioContext, namespace)
        self.namespace = namespace
    }

    // MARK: Namespaces

    func namespaceExists(_ name: String) throws(StorageError) -> Bool {
        var exists = false
        let code = ceph.rbd_namespace_exists(ioContext, name, &exists)
        guard code == 0 else { throw .ceph(code, "looking up RBD namespace \(credentials.pool)/\(name)") }
        return exists
    }

    func createNamespace(_ name: String) throws(StorageError) {
        let code = ceph.rbd_namespace_create(ioContext, name)
        guard code == 0 else { throw .ceph(code, "creating RBD namespace \(credentials.pool)/\(name)") }
    }

    func removeNamespace(_ name: String) throws(StorageError) {
        let code = ceph.rbd_namespace_remove(ioContext, name)
        guard code == 0 || code == -ENOENT else { throw .ceph(code, "removing RBD namespace \(credentials.pool)/\(name)") }
    }

    // MARK: Objects

    /// The whole object, nil when it does not exist.
    func readObject(_ name: String, limit: Int = 4096) throws(StorageError) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: limit)
        let count = buffer.withUnsafeMutableBufferPointer { pointer in
            pointer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: limit) { ceph.rados_read(ioContext, name, $0, limit, 0) }
        }
        if count == -ENOENT { return nil }
        guard count >= 0 else { throw .ceph(count, "reading object \(name)") }
        return Array(buffer.prefix(Int(count)))
    }

    func writeObject(_ name: String, _ bytes: [UInt8]) throws(StorageError) {
        let code = bytes.withUnsafeBufferPointer { pointer in
            pointer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                ceph.rados_write_full(ioContext, name, $0, bytes.count)
            }
        }
        guard code == 0 else { throw .ceph(code, "writing object \(name)") }
    }

    func removeObject(_ name: String) throws(StorageError) {
        let code = ceph.rados_remove(ioContext, name)
        guard code == 0 || code == -ENOENT else { throw .ceph(code, "removing object \(name)") }
    }

    // MARK: Object maps (omap)

    /// Sets `key` to `value` in the omap of `object` (created if absent).
    func setMapValue(_ key: String, _ value: String, in object: String) throws(StorageError) {
        mapCache[object]?[key] = nil
        let operation = ceph.rados_create_write_op()
        defer { ceph.rados_release_write_op(operation) }
        let code = key.withCString { keyPointer in
            value.withCString { valuePointer -> Int32 in
                var keys: [UnsafePointer<CChar>?] = [keyPointer]
                var values: [UnsafePointer<CChar>?] = [valuePointer]
                var keyLengths = [key.utf8.count]
                var valueLengths = [value.utf8.count]
                ceph.rados_write_op_omap_set2(operation, &keys, &values, &keyLengths, &valueLengths, 1)
                return ceph.rados_write_op_operate(operation, ioContext, object, nil, 0)
            }
        }
        guard code == 0 else { throw .ceph(code, "writing \(key) in the omap of \(object)") }
    }

    /// Removes `key` from the omap of `object`; success when it is not there.
    func removeMapValue(_ key: String, in object: String) throws(StorageError) {
        mapCache[object]?[key] = nil
        let operation = ceph.rados_create_write_op()
        defer { ceph.rados_release_write_op(operation) }
        let code = key.withCString { keyPointer -> Int32 in
            var keys: [UnsafePointer<CChar>?] = [keyPointer]
            var keyLengths = [key.utf8.count]
            ceph.rados_write_op_omap_rm_keys2(operation, &keys, &keyLengths, 1)
            return ceph.rados_write_op_operate(operation, ioContext, object, nil, 0)
        }
        guard code == 0 || code == -ENOENT else { throw .ceph(code, "removing \(key) from the omap of \(object)") }
    }

    /// The value of `key` in the omap of `object`, nil when absent.
    func mapValue(_ key: String, in object: String) throws(StorageError) -> String? {
        if let cached = mapCache[object]?[key] { return cached }
        let operation = ceph.rados_create_read_op()
        defer { ceph.rados_release_read_op(operation) }
        var iterator: rados_omap_iter_t?
        var status: Int32 = 0
        let code = key.withCString { keyPointer -> Int32 in
            var keys: [UnsafePointer<CChar>?] = [keyPointer]
            var keyLengths = [key.utf8.count]
            ceph.rados_read_op_omap_get_vals_by_keys2(operation, &keys, 1, &keyLengths, &iterator, &status)
            return ceph.rados_read_op_operate(operation, ioContext, object, 0)
        }
        defer { if let iterator { ceph.rados_omap_get_end(iterator) } }
        if code == -ENOENT { return nil }
        guard code == 0 else { throw .ceph(code, "reading \(key) from the omap of \(object)") }
        guard status == 0 else { throw .ceph(status, "reading \(key) from the omap of \(object)") }
        guard let iterator else { return nil }
        var name: UnsafeMutablePointer<CChar>?
        var value: UnsafeMutablePointer<CChar>?
        var nameLength = 0
        var valueLength = 0
        guard ceph.rados_omap_get_next2(iterator, &name, &value, &nameLength, &valueLength) == 0, name != nil, let value else {
            return nil
        }
        return String(decoding: UnsafeRawBufferPointer(start: value, count: valueLength), as: UTF8.self)
    }

    /// Sets several keys of the omap of `object` (created if absent) in one atomic write.
    func setMapValues(_ pairs: [(key: String, value: String)], in object: String) throws(StorageError) {
        for pair in pairs { mapCache[object]?[pair.key] = nil }
        let operation = ceph.rados_create_write_op()
        defer { ceph.rados_release_write_op(operation) }
        let keys = pairs.map { strdup($0.key) }
        let values = pairs.map { strdup($0.value) }
        defer { (keys + values).forEach { free($0) } }
        var keyPointers = keys.map { UnsafePointer<CChar>($0) }
        var valuePointers = values.map { UnsafePointer<CChar>($0) }
        var keyLengths = pairs.map { $0.key.utf8.count }
        var valueLengths = pairs.map { $0.value.utf8.count }
        ceph.rados_write_op_omap_set2(operation, &keyPointers, &valuePointers, &keyLengths, &valueLengths, pairs.count)
        let code = ceph.rados_write_op_operate(operation, ioContext, object, nil, 0)
        guard code == 0 else { throw .ceph(code, "writing \(pairs.map(\.key)) in the omap of \(object)") }
    }

    /// Removes several keys from the omap of `object` in one write; success when absent.
    func removeMapValues(_ keys: [String], in object: String) throws(StorageError) {
        for key in keys { mapCache[object]?[key] = nil }
        let operation = ceph.rados_create_write_op()
        defer { ceph.rados_release_write_op(operation) }
        let copies = keys.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        var pointers = copies.map { UnsafePointer<CChar>($0) }
        var lengths = keys.map { $0.utf8.count }
        ceph.rados_write_op_omap_rm_keys2(operation, &pointers, &lengths, keys.count)
        let code = ceph.rados_write_op_operate(operation, ioContext, object, nil, 0)
        guard code == 0 || code == -ENOENT else { throw .ceph(code, "removing \(keys) from the omap of \(object)") }
    }

    // MARK: Operations issued without waiting (librados aio)

    /// Starts setting `key` to `value` in the omap of `object`; `wait()` answers 0 or a negative errno.
    func startSettingMapValue(_ key: String, _ value: String, in object: String) -> PendingOperation {
        mapCache[object]?[key] = nil
        let pending = PendingOperation()
        let operation = ceph.rados_create_write_op()
        pending.writeOperation = operation
        key.withCString { keyPointer in
            value.withCString { valuePointer in
                var keys: [UnsafePointer<CChar>?] = [keyPointer]
                var values: [UnsafePointer<CChar>?] = [valuePointer]
                var keyLengths = [key.utf8.count]
                var valueLengths = [value.utf8.count]
                // librados copies keys and values into the operation here.
                ceph.rados_write_op_omap_set2(operation, &keys, &values, &keyLengths, &valueLengths, 1)
            }
        }
        pending.start { ceph.rados_aio_write_op_operate(operation, ioContext, $0, object, nil, 0) }
        return pending
    }

    /// Starts a stat of `object`; `wait()` answers 0, -ENOENT when it does not exist, or an errno.
    func startStat(_ object: String) -> PendingOperation {
        let pending = PendingOperation()
        pending.start { ceph.rados_aio_stat(ioContext, object, $0, pending.size, pending.modified) }
        return pending
    }

    /// Starts reading whether `key` is in the omap of `object`; `wait()` answers 0 (then
    /// `foundKey` says) or a negative errno (-ENOENT: no such object).
    func startReadingMapKey(_ key: String, in object: String) -> PendingOperation {
        let pending = PendingOperation()
        let operation = ceph.rados_create_read_op()
        pending.readOperation = operation
        key.withCString { keyPointer in
            var keys: [UnsafePointer<CChar>?] = [keyPointer]
            var keyLengths = [key.utf8.count]
            ceph.rados_read_op_omap_get_vals_by_keys2(operation, &keys, 1, &keyLengths, pending.iterator, pending.status)
        }
        pending.start { ceph.rados_aio_read_op_operate(operation, ioContext, $0, object, 0) }
        return pending
    }

    /// The content of `object` and the omap entries whose keys begin with `prefix`, in one read
    /// (one round trip); nil when the object does not exist. The values of `keys` are read in the
    /// same operation and kept for `mapValue`.
    func readObjectAndMap(
        _ object: String, prefix: String, keys: [String] = [],
        limit: Int = 4096
    ) throws(StorageError) -> (content: [UInt8], map: [String: String])? {
        let operation = ceph.rados_create_read_op()
        defer { ceph.rados_release_read_op(operation) }
        var buffer = [UInt8](repeating: 0, count: limit)
        var bytesRead = 0
        var readStatus: Int32 = 0
        var mapStatus: Int32 = 0
        var keysStatus: Int32 = 0
        var iterator: rados_omap_iter_t?
        var keysIterator: rados_omap_iter_t?
        var more: UInt8 = 0
        let copies = keys.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        var keyPointers = copies.map { UnsafePointer<CChar>($0) }
        var keyLengths = keys.map { $0.utf8.count }
        let code = buffer.withUnsafeMutableBufferPointer { pointer -> Int32 in
            pointer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: limit) { bytes in
                ceph.rados_read_op_read(operation, 0, limit, bytes, &bytesRead, &readStatus)
                ceph.rados_read_op_omap_get_vals2(operation, "", prefix, 1024, &iterator, &more, &mapStatus)
                if !keys.isEmpty {
                    ceph.rados_read_op_omap_get_vals_by_keys2(operation, &keyPointers, keys.count, &keyLengths, &keysIterator, &keysStatus)
                }
                return ceph.rados_read_op_operate(operation, ioContext, object, 0)
            }
        }
        defer {
            if let iterator { ceph.rados_omap_get_end(iterator) }
            if let keysIterator { ceph.rados_omap_get_end(keysIterator) }
        }
        if code == -ENOENT { return nil }
        guard code >= 0 else { throw .ceph(code, "reading object \(object)") }
        guard readStatus >= 0 else { throw .ceph(readStatus, "reading object \(object)") }
        guard mapStatus >= 0, keysStatus >= 0 else { throw .ceph(min(mapStatus, keysStatus), "reading the omap of \(object)") }
        let map = Self.entries(iterator)
        if !keys.isEmpty {
            let found = Self.entries(keysIterator)
            for key in keys { mapCache[object, default: [:]][key] = .some(found[key]) }
        }
        return (Array(buffer.prefix(bytesRead)), map)
    }

    private static func entries(_ iterator: rados_omap_iter_t?) -> [String: String] {
        var map: [String: String] = [:]
        guard let iterator else { return map }
        while true {
            var name: UnsafeMutablePointer<CChar>?
            var value: UnsafeMutablePointer<CChar>?
            var nameLength = 0
            var valueLength = 0
            guard ceph.rados_omap_get_next2(iterator, &name, &value, &nameLength, &valueLength) == 0, let name else { break }
            map[String(decoding: UnsafeRawBufferPointer(start: name, count: nameLength), as: UTF8.self)] =
                value.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: valueLength), as: UTF8.self) } ?? ""
        }
        return map
    }

    /// librados' value of a configuration option after the conf file and dconf were applied.
    func configurationValue(_ option: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard ceph.rados_conf_get(cluster, option, &buffer, buffer.count) == 0 else { return nil }
        return RBDImage.text(buffer)
    }

    // MARK: Monitor commands

    /// Runs a read-only monitor command (JSON in, JSON out).
    func monitorCommand(_ json: String) throws(StorageError) -> String {
        var output: UnsafeMutablePointer<CChar>?
        var outputLength = 0
        var status: UnsafeMutablePointer<CChar>?
        var statusLength = 0
        let code = json.withCString { command -> Int32 in
            var commands: [UnsafePointer<CChar>?] = [command]
            return commands.withUnsafeMutableBufferPointer { list in
                ceph.rados_mon_command(cluster, list.baseAddress, 1, nil, 0, &output, &outputLength, &status, &statusLength)
            }
        }
        defer {
            if let output { ceph.rados_buffer_free(output) }
            if let status { ceph.rados_buffer_free(status) }
        }
        guard code == 0 else { throw .ceph(code, "monitor command \(json)") }
        guard let output else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: output, count: outputLength), as: UTF8.self)
    }

    /// The pool's byte quota (`ceph osd pool set-quota <pool> max_bytes`), nil when none is set.
    /// Read from the OSD map's pools (`osd pool ls detail`, answered by the monitors; its reply
    /// grows with the pools, where `osd dump`'s grows with the OSDs too): `osd pool get-quota`
    /// also reports usage, which needs a manager, and fails without one.
    func poolByteQuota() throws(StorageError) -> UInt64? {
        let reply = Array(try monitorCommand(#"{"prefix":"osd pool ls","detail":"detail","format":"json"}"#).utf8)
        guard let pool = Self.find(Array(#""pool_name":"\#(credentials.pool)""#.utf8), in: reply, from: 0),
            let field = Self.find(Array(#""quota_max_bytes":"#.utf8), in: reply, from: pool)
        else { return nil }
        let digits = String(decoding: reply[field...].prefix { $0 >= 48 && $0 <= 57 }, as: UTF8.self)
        guard let value = UInt64(digits), value > 0 else { return nil }
        return value
    }

    /// The index just past the first `needle` in `haystack` at or after `start`.
    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        for index in start...(haystack.count - needle.count) where haystack[index..<(index + needle.count)].elementsEqual(needle) {
            return index + needle.count
        }
        return nil
    }
}

extension StorageError {
    /// A negative errno from librados or librbd, mapped onto the spec's codes: ENOSPC for a full
    /// pool or quota, EEXIST, EBUSY, ENODEV for something absent, EIO with the errno's name
    /// otherwise (a timeout says so). `what` names the operation.
    static func ceph(_ code: Int32, _ what: String) -> StorageError {
        let errno = Errno(rawValue: code < 0 ? -code : code)
        switch errno {
        case .noSpace, .diskQuotaExceeded:
            return StorageError(code: .noSpace, message: "\(what): the pool is full or over its quota (\(errno.symbolicName))")
        case .fileExists: return StorageError(code: .fileExists, message: "\(what): already exists")
        case .resourceBusy: return StorageError(code: .resourceBusy, message: "\(what): in use (EBUSY)")
        case .noSuchFileOrDirectory: return StorageError(code: .noSuchDevice, message: "\(what): does not exist")
        case .timedOut: return .io("\(what): the cluster did not answer in time (ETIMEDOUT)")
        case .permissionDenied, .notPermitted:
            return .io("\(what): refused by the cluster (\(errno.symbolicName)); check the caps of the dconf user")
        default: return .io("\(what) failed: \(errno.symbolicName) \(errno)")
        }
    }
}

/// One librados operation issued without waiting. `wait()` waits for it (once) and answers its
/// return code; what it wrote (stat, omap read) lives here until then. Waited for in `deinit` too,
/// so that no operation outlives its buffers.
final class PendingOperation {
    private var completion: rados_completion_t?
    private var code: Int32?
    var writeOperation: rados_write_op_t?
    var readOperation: rados_read_op_t?
    let size = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    let modified = UnsafeMutablePointer<time_t>.allocate(capacity: 1)
    let iterator = UnsafeMutablePointer<rados_omap_iter_t?>.allocate(capacity: 1)
    let status = UnsafeMutablePointer<Int32>.allocate(capacity: 1)

    init() {
        iterator.initialize(to: nil)
        status.initialize(to: 0)
    }

    /// Runs `issue` with a new completion; a refusal to issue is the answer.
    func start(_ issue: (rados_completion_t?) -> Int32) {
        var created: rados_completion_t?
        guard ceph.rados_aio_create_completion2(nil, nil, &created) == 0, let created else {
            code = -ENOMEM
            return
        }
        let issued = issue(created)
        if issued < 0 {
            ceph.rados_aio_release(created)
            code = issued
        } else {
            completion = created
        }
    }

    @discardableResult func wait() -> Int32 {
        if let code { return code }
        guard let completion else { return -EINVAL }
        _ = ceph.rados_aio_wait_for_complete(completion)
        var result = ceph.rados_aio_get_return_value(completion)
        ceph.rados_aio_release(completion)
        self.completion = nil
        if result >= 0, readOperation != nil, status.pointee < 0 { result = status.pointee }
        code = result
        return result
    }

    /// An omap key read's value (waits for it); nil when the key or the object is absent or the
    /// read failed (`wait()` tells which).
    var foundValue: String? {
        guard wait() >= 0, let iterator = iterator.pointee else { return nil }
        var name: UnsafeMutablePointer<CChar>?
        var value: UnsafeMutablePointer<CChar>?
        var nameLength = 0
        var valueLength = 0
        guard ceph.rados_omap_get_next2(iterator, &name, &value, &nameLength, &valueLength) == 0, name != nil else { return nil }
        guard let value else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: value, count: valueLength), as: UTF8.self)
    }

    deinit {
        wait()
        if let iterator = iterator.pointee { ceph.rados_omap_get_end(iterator) }
        if let writeOperation { ceph.rados_release_write_op(writeOperation) }
        if let readOperation { ceph.rados_release_read_op(readOperation) }
        size.deallocate()
        modified.deallocate()
        iterator.deallocate()
        status.deallocate()
    }
}

/// Points standard error at /dev/null until `restore()`; librados writes there regardless of
/// its settings. Buffered stdio is flushed both ways.
final class StandardErrorDiversion {
    private var saved: Int32 = -1

    init() {
        fflush(nil)
        let null = Glibc.open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard null >= 0 else { return }
        defer { Glibc.close(null) }
        let copy = fcntl(2, F_DUPFD_CLOEXEC, 3)
        guard copy >= 0 else { return }
        if dup2(null, 2) >= 0 { saved = copy } else { Glibc.close(copy) }
    }

    func restore() {
        guard saved >= 0 else { return }
        fflush(nil)
        _ = dup2(saved, 2)
        Glibc.close(saved)
        saved = -1
    }
}
