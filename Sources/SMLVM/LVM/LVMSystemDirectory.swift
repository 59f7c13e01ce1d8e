import SMCore
#if canImport(Glibc)
import Glibc
#endif

/// The LVM system directory the drivers run liblvm2cmd with: the host's (`LVM_SYSTEM_DIR`,
/// default `/etc/lvm`) seen through an overlay in `<run_dir>/lvm`, where `lvm.conf` is the
/// host's text followed by `driverSettings`, and every other entry (`lvmlocal.conf`, `archive`,
/// `backup`, `profile`, `devices`, tag files) is a symlink to the host's own.
///
/// Why: liblvm2cmd reads `global/use_aio` from `lvm.conf` once, when the handle is created, and
/// ignores it in `--config`. With asynchronous I/O every command ends in `io_destroy`, which
/// waits for an RCU grace period (about 30 ms here) and is most of the cost of a command. A
/// driver touches one SR's handful of devices, so synchronous I/O is the faster choice. Metadata
/// backups and archives still go to the host's directories through the symlinks, and any
/// setting the host makes stays in force, except `use_aio`.
struct LVMSystemDirectory {
    /// What the overlay appends to the host's `lvm.conf`. A later duplicate key wins in LVM's
    /// configuration syntax (LVM warns "Ignoring duplicate config value" if the host set it too).
    static let driverSettings = """

        # Appended by the SM LVM drivers (Docs/LVMSR.md): synchronous I/O, because liblvm2cmd
        # spends ~30 ms per command tearing down an asynchronous I/O context.
        global {
            use_aio = 0
        }

        """

    /// Subdirectories LVM creates under its system directory when they are missing; they are
    /// created in the host's directory so that what LVM writes there survives a reboot.
    static let persistentSubdirectories = ["archive", "backup"]

    let source: String
    let overlay: String

    /// The host's directory (the environment's `LVM_SYSTEM_DIR` if set) and the overlay path.
    init(host: HostEnvironment) {
        let configured = Syscall.environment("LVM_SYSTEM_DIR") ?? ""
        source = configured.isEmpty ? "/etc/lvm" : configured
        overlay = "\(host.runDirectory)/lvm"
    }

    /// Brings the overlay up to date with the host's directory and returns its path. Cheap when
    /// nothing changed: one read of each `lvm.conf` and a directory listing.
    func prepare() throws(StorageError) -> String {
        try Syscall.makeDirectories(overlay, mode: 0o700)
        let hostConfiguration = Syscall.exists("\(source)/lvm.conf") ? try Syscall.readFile("\(source)/lvm.conf") : []
        let wanted = hostConfiguration + Array(Self.driverSettings.utf8)
        let current = (try? Syscall.readFile("\(overlay)/lvm.conf", limit: wanted.count + 1)) ?? []
        if current != wanted {
            try Syscall.writeFileAtomically("\(overlay)/lvm.conf", wanted)
        }
        if Syscall.isDirectory(source) {
            for name in Self.persistentSubdirectories where !Syscall.exists("\(source)/\(name)") {
                try Syscall.makeDirectories("\(source)/\(name)", mode: 0o700)
            }
        }
        let hostEntries = Syscall.isDirectory(source) ? Set(try Syscall.directoryEntries(source)) : []
        for name in hostEntries where name != "lvm.conf" {
            try link(name)
        }
        for name in try Syscall.directoryEntries(overlay) where name != "lvm.conf" && !hostEntries.contains(name) {
            if let status = Syscall.lstatus("\(overlay)/\(name)"), (status.st_mode & S_IFMT) == S_IFLNK {
                try Syscall.unlinkIfPresent("\(overlay)/\(name)")
            }
        }
        return overlay
    }

    /// Makes `<overlay>/<name>` a symlink to `<source>/<name>`, replacing a wrong symlink.
    private func link(_ name: String) throws(StorageError) {
        let path = "\(overlay)/\(name)", target = "\(source)/\(name)"
        if let status = Syscall.lstatus(path) {
            guard (status.st_mode & S_IFMT) == S_IFLNK else {
                Diagnostics.debug("LVM overlay: \(path) is not a symlink; left alone")
                return
            }
            if readLink(path) == target { return }
            try Syscall.unlinkIfPresent(path)
        }
        switch Syscall.attempt({ symlink(target, path) }) {
        case .success, .failure(.fileExists): return
        case .failure(let code): throw .system(code, "symlink", path: path)
        }
    }

    private func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length >= 0 else { return nil }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
