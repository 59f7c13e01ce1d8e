import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// The LVM system directory the drivers run liblvm2cmd with: the host's (`LVM_SYSTEM_DIR`,
/// default `/etc/lvm`) seen through an overlay in `<run_dir>/lvm`, where `lvm.conf` is the
/// host's text followed by `driverSettings`, and every other entry (`lvmlocal.conf`, `archive`,
/// `backup`, `profile`, `devices`, tag files) is a symlink to the host's own.
///
/// Shared volume groups (`VolumeGroupLocking.sanlock`, LVMoISCSISR) get an overlay of their own,
/// `<run_dir>/lvm-sanlock`, where `lvm.conf` also says `use_lvmlockd = 1` and `lvmlocal.conf` is
/// the host's text followed by `local { host_id = N }` (N the host's `sanlock_host_id`): LVMSR's
/// local groups on the same host keep running without lvmlockd.
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

    /// What the shared overlay appends to the host's `lvm.conf`.
    static let lockingSettings = """

        # Appended by LVMoISCSISR (Docs/LVMoISCSISR.md): shared volume groups through lvmlockd.
        global {
            use_lvmlockd = 1
        }

        """

    /// What the shared overlay appends to the host's `lvmlocal.conf`.
    static func hostIDSettings(_ hostID: Int) -> String {
        """

        # Appended by LVMoISCSISR (Docs/LVMoISCSISR.md): this host's sanlock host id, from the host
        # setting sanlock_host_id.
        local {
            host_id = \(hostID)
        }

        """
    }

    let source: String
    let overlay: String
    let locking: VolumeGroupLocking

    /// The host's directory (`source`, else the environment's `LVM_SYSTEM_DIR` if set, else
    /// `/etc/lvm`) and the overlay path.
    init(host: HostEnvironment, locking: VolumeGroupLocking = .local, source: String? = nil) {
        let configured = source ?? Syscall.environment("LVM_SYSTEM_DIR") ?? ""
        self.source = configured.isEmpty ? "/etc/lvm" : configured
        overlay = locking.isShared ? "\(host.runDirectory)/lvm-sanlock" : "\(host.runDirectory)/lvm"
        self.locking = locking
    }

    /// The files the overlay writes itself (every other entry is a symlink): each is the host's
    /// file followed by the driver's settings.
    var generatedFiles: [String: String] {
        switch locking {
        case .local: ["lvm.conf": Self.driverSettings]
        case .sanlock(let hostID):
            [
                "lvm.conf": Self.driverSettings + Self.lockingSettings,
                "lvmlocal.conf": Self.hostIDSettings(hostID)
            ]
        }
    }

    /// Brings the overlay up to date with the host's directory and returns its path. Cheap when
    /// nothing changed: one read of each `lvm.conf` and a directory listing.
    func prepare() throws(StorageError) -> String {
        try Syscall.makeDirectories(overlay, mode: 0o700)
        let generated = generatedFiles
        for (name, settings) in generated {
            if let status = Syscall.lstatus("\(overlay)/\(name)"), (status.st_mode & S_IFMT) == S_IFLNK {
                try Syscall.unlinkIfPresent("\(overlay)/\(name)")
            }
            let hostText = Syscall.exists("\(source)/\(name)") ? try Syscall.readFile("\(source)/\(name)") : []
            let wanted = hostText + Array(settings.utf8)
            let current = (try? Syscall.readFile("\(overlay)/\(name)", limit: wanted.count + 1)) ?? []
            if current != wanted {
                try Syscall.writeFileAtomically("\(overlay)/\(name)", wanted)
            }
        }
        if Syscall.isDirectory(source) {
            for name in Self.persistentSubdirectories where !Syscall.exists("\(source)/\(name)") {
                try Syscall.makeDirectories("\(source)/\(name)", mode: 0o700)
            }
        }
        let hostEntries = Syscall.isDirectory(source) ? Set(try Syscall.directoryEntries(source)) : []
        for name in hostEntries where generated[name] == nil {
            try link(name)
        }
        for name in try Syscall.directoryEntries(overlay) where generated[name] == nil && !hostEntries.contains(name) {
            if let status = Syscall.lstatus("\(overlay)/\(name)"), (status.st_mode & S_IFMT) == S_IFLNK {
                try Syscall.unlinkIfPresent("\(overlay)/\(name)")
            }
        }
        return overlay
    }

    /// Makes `<overlay>/<name>` a symlink to `<source>/<name>`, replacing a wrong symlink.
    private func link(_ name: String) throws(StorageError) {
        let path = "\(overlay)/\(name)"
        let target = "\(source)/\(name)"
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
