import SMCore
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The kernel's RBD client (krbd) through sysfs, without the `rbd` command: a map is one write
/// of `<monitors> name=<user>,secret=<key>,... <pool> <image> [<snapshot>]` to
/// `/sys/bus/rbd/add_single_major`, an unmap one write of the device id to
/// `remove_single_major`. The secret goes from this process to the kernel in that write: no
/// argv, no environment, no file. (The kernel keeps the string in the device's `config_info`,
/// readable by root only, as it does for `rbd device map`.)
enum KernelRBD {
    static var busDirectory: String { Syscall.environment("SM_RBD_SYSFS") ?? "/sys/bus/rbd" }

    struct Mapping: Equatable {
        var id: String
        var pool: String
        var namespace: String
        var image: String
        /// `-` for the image itself.
        var snapshot: String
        var device: String { "/dev/rbd\(id)" }
    }

    /// Loads the rbd module when the bus is missing (modprobe; nothing secret on its command line).
    static func ensureAvailable() throws(StorageError) {
        if Syscall.isDirectory(busDirectory) { return }
        _ = try? ExternalCommand.runAllowingFailure("modprobe", ["rbd"])
        guard Syscall.isDirectory(busDirectory) else {
            throw StorageError(
                code: .noSuchDevice,
                message: "this kernel has no RBD client (\(busDirectory) is missing and "
                    + "'modprobe rbd' did not load it); vdi_attach needs the rbd kernel module")
        }
    }

    /// Every mapped RBD device on this host.
    static func mappings() -> [Mapping] {
        let devices = "\(busDirectory)/devices"
        guard let names = try? Syscall.directoryEntries(devices) else { return [] }
        return names.compactMap { id in
            func attribute(_ name: String) -> String {
                (try? Syscall.readFile("\(devices)/\(id)/\(name)", limit: 4096))
                    .map { String(decoding: $0, as: UTF8.self).trimmingWhitespace() } ?? ""
            }
            guard id.allSatisfy(\.isNumber) else { return nil }
            return Mapping(
                id: id, pool: attribute("pool"), namespace: attribute("pool_ns"), image: attribute("name"),
                snapshot: attribute("current_snap"))
        }
    }

    static func find(pool: String, namespace: String, image: String, snapshot: String?) -> Mapping? {
        mappings().first { mapping in
            mapping.pool == pool && mapping.namespace == namespace && mapping.image == image
                && mapping.snapshot == (snapshot ?? "-")
        }
    }

    /// Maps `pool/namespace/image[@snapshot]` (read-only for a snapshot) and returns the mapping.
    /// `monitors`: the kernel's list (`CephCredentials.kernelMonitors`).
    static func map(
        credentials: CephCredentials, monitors: String, namespace: String, image: String,
        snapshot: String?
    ) throws(StorageError) -> Mapping {
        try ensureAvailable()
        if let existing = find(pool: credentials.pool, namespace: namespace, image: image, snapshot: snapshot) {
            return existing
        }
        var options = "name=\(credentials.user),secret=\(try credentials.secret()),_pool_ns=\(namespace),ms_mode=prefer-crc"
        if snapshot != nil { options += ",ro" }
        var line = "\(monitors) \(options) \(credentials.pool) \(image)"
        if let snapshot { line += " \(snapshot)" }
        let what = "\(credentials.pool)/\(namespace)/\(image)\(snapshot.map { "@\($0)" } ?? "")"
        try write(line, to: "\(busDirectory)/add_single_major", what: "mapping \(what)")
        guard let mapping = find(pool: credentials.pool, namespace: namespace, image: image, snapshot: snapshot) else {
            throw .io("mapping \(what): the kernel accepted the map but no device appeared under \(busDirectory)/devices")
        }
        return mapping
    }

    /// Unmaps; EBUSY while the device is open.
    static func unmap(_ mapping: Mapping) throws(StorageError) {
        try write(mapping.id, to: "\(busDirectory)/remove_single_major", what: "unmapping \(mapping.device)")
    }

    /// One write(2) of `text` to a sysfs file; the kernel's errno becomes the error (never the text).
    private static func write(_ text: String, to path: String, what: String) throws(StorageError) {
        let descriptor = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .system(Errno(rawValue: errno), "\(what): opening", path: path) }
        defer { Glibc.close(descriptor) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            let code = Errno(rawValue: written < 0 ? errno : EIO)
            switch code {
            case .resourceBusy: throw StorageError(code: .resourceBusy, message: "\(what): the device is open (EBUSY)")
            case .noSuchFileOrDirectory:
                throw StorageError(code: .noSuchDevice, message: "\(what): the kernel found no such image (ENOENT)")
            default: throw .io("\(what): the kernel refused (\(code.symbolicName) \(code)); see dmesg")
            }
        }
    }
}
