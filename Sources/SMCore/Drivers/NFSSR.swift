/// NFSSR: a file-based SR in a directory `<serverpath>/<SR-UUID>` of an NFS export. While
/// attached, `server:serverpath/<SR-UUID>` is mounted at `<mount_dir>/<SR-UUID>` and that mount
/// is the SR root of a `VHDRepository`, which does every VDI verb (as EXTSR).
///
/// The export is shared by every host that attaches the SR, so nothing about the SR is kept on
/// this host beyond the mount and the attach record; sr_create makes the directory the way FileSR
/// makes its own (built aside, renamed into place), and sr_delete is not offered (ENOSYS), as the
/// spec says for "a shared substrate".
public struct NFSSR: VHDRepositoryDriver {
    public static let name = "NFSSR"
    public static let requiredKeys = ["server", "serverpath"]
    public static let optionalKeys = NFSMountOptions.keys
    public static let overview = """
        NFSSR keeps each VDI as a dynamic VHD file in the directory <serverpath>/<SR-UUID> of an NFS
        export, mounted at <mount_dir>/<SR-UUID> while the SR is attached.
        dconf: <dconf><server>nfs.example.com</server><serverpath>/export/sm</serverpath></dconf>.
        Options (defaults): nfsversion 3 (or 4, 4.0, 4.1, 4.2), proto tcp (or tcp6), timeo 100
        (tenths of a second), retrans 3, soft true (or hard true). The mount always has actimeo=0,
        retry=0, nosuid, nodev, noexec. sr_delete answers ENOSYS: remove the directory on the server.
        """

    /// The filesystem types the kernel reports for NFS mounts.
    static let mountedTypes: Set<String> = ["nfs", "nfs4"]

    let export: NFSExport
    let options: NFSMountOptions
    let host: HostEnvironment
    /// The dconf this driver was started with, for the background sr_gc worker.
    public private(set) var backgroundConfiguration: DeviceConfiguration?

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        let export = try NFSExport(server: configuration.required("server"), path: configuration.required("serverpath"))
        self.init(export: export, options: try NFSMountOptions(configuration: configuration, server: export.server), host: host)
        backgroundConfiguration = configuration
        let known = Set(Self.requiredKeys + Self.optionalKeys)
        for key in configuration.values.keys.sorted() where !known.contains(key) {
            Diagnostics.debug("NFSSR ignores the dconf key '\(ArgumentParsing.printable(key))'")
        }
    }

    public init(export: NFSExport, options: NFSMountOptions, host: HostEnvironment) {
        self.export = export
        self.options = options
        self.host = host
    }

    /// The SR's mount; sr_create (and a failed sr_attach, to find out why) mounts the export
    /// itself aside (`.<SR-UUID>.export`) for the length of the call.
    func mounted(_ sr: CanonicalUUID) -> MountedSR {
        MountedSR(sr: sr, host: host, fileSystem: .init(name: "NFS", types: Self.mountedTypes), asidePurpose: "export")
    }

    // MARK: SR verbs

    /// Not idempotent. Mounts the export aside, makes `<SR-UUID>` in it exactly as FileSR makes an
    /// SR in its location (EEXIST if present; ENOSPC if Size exceeds the export's filesystem;
    /// built under a temporary name and renamed, so a crash leaves no SR or a whole one), unmounts.
    public func srCreate(sr: CanonicalUUID, size: UInt64) throws {
        try withExportMounted(sr) { root in
            try FileSR.makeSRDirectory(sr, size: size, in: root, shownAs: export.source)
        }
    }

    public static let unsupportedVerbs: UnsupportedVerbTable = [
        .srDelete: UnsupportedReason(
            "not offered for NFS, a shared substrate (as the spec says); once no host has the SR "
                + "attached, remove <serverpath>/<SR-UUID> on the server")
    ]

    /// ENOSYS: the export is shared, so which host could decide it is unused? The directory
    /// `<serverpath>/<SR-UUID>` is removed on the server once no host attaches the SR; the
    /// reason names it.
    public func srDelete(sr: CanonicalUUID) throws {
        throw Self.unsupported(.srDelete, filling: ["<serverpath>/<SR-UUID>": "\(export.path == "/" ? "" : export.path)/\(sr)"])
    }

    /// Idempotent. Mounts `server:serverpath/<SR-UUID>` at the SR's mount point, then writes the
    /// attach record (a failure to record unmounts again). Already mounted from that source:
    /// success. A mount that fails is explained by mounting the export itself: no SR directory
    /// there is ENODEV, an export that cannot be mounted either is ENODEV with mount's reason,
    /// anything else EIO with mount's reason.
    public func srAttach(sr: CanonicalUUID) throws {
        let mounted = mounted(sr)
        let source = export.source(appending: sr.string)
        let isThisExport: (MountEntry) -> Bool = { Self.mountedTypes.contains($0.fileSystemType) && $0.source == source }
        try mounted.attach(
            expected: source, isExpected: isThisExport,
            record: attachRecord(sr)
        ) { () throws(StorageError) in
            do throws(StorageError) {
                try Mount.mount(source, at: mounted.mountPoint, type: "nfs", options: options.arguments)
            } catch {
                throw explainAttachFailure(sr, mountError: error)
            }
        }
    }

    /// Idempotent; EBUSY while a VDI is attached or a process has files open in the SR. A
    /// mounted SR whose server does not answer is EIO after one soft timeout and stays attached
    /// (nothing the client still caches is thrown away; the SR works again when the server
    /// returns, and sr_detach can be retried): the server is asked first (`requireServer`),
    /// then the SR is unmounted.
    public func srDetach(sr: CanonicalUUID) throws {
        let mounted = mounted(sr)
        try mounted.releaseAsideMount()
        if let mount = try mounted.currentMount(), Self.mountedTypes.contains(mount.fileSystemType) {
            try requireServer(sr, mountPoint: mounted.mountPoint)
        }
        try mounted.detach()
    }

    /// Everything as FileSR (`VHDRepository.scan`); physical size and utilisation are the
    /// export's filesystem as statvfs(3) of the mount reports it.
    public func srScan(sr: CanonicalUUID) throws -> SRScanReport {
        try scanMountedSR(sr)
    }

    /// `vhd`: a property of the driver, answered without contacting the server.
    public func srContentType(sr: CanonicalUUID) throws -> String {
        VHDRepository.contentType
    }

    /// ENODEV unless the SR is recorded as attached here and the NFS mount of this SR's directory
    /// is on its mount point (so nothing is ever written into the bare local directory).
    public func attachedRepository(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository {
        let (repository, mount) = try mounted(sr).attachedRepository()
        let expected = export.source(appending: sr.string)
        guard mount.source == expected else {
            throw .srMountedFromElsewhere(sr.string, source: mount.source, expected: expected)
        }
        try requireServer(sr, mountPoint: repository.root)
        return repository
    }

    // MARK: Pieces

    /// EIO unless the server answers for the mounted SR: statvfs(2) of the mount point, which is
    /// always one FSSTAT (v3) or GETATTR (v4) call to the server and nothing else (the lookup of
    /// the mount point itself stays local). On a soft mount it fails after `softTimeoutSeconds`,
    /// so a verb on an SR whose server went away fails at its first step, within one soft
    /// timeout, instead of once per call it would make (Docs/NFSSR.md, "A server that goes
    /// away"). On a hard mount it waits for the server.
    func requireServer(_ sr: CanonicalUUID, mountPoint: String) throws(StorageError) {
        let started = Syscall.monotonicNow()
        do throws(StorageError) {
            _ = try Syscall.fileSystemStatus(mountPoint)
        } catch {
            let waited = Syscall.monotonicNow() - started
            let bound = options.softTimeoutSeconds.map { "; the soft mount gives up after about \(Int($0.rounded(.up))) s" } ?? ""
            throw .io(
                "NFS server \(export.server.sourceForm) does not answer for SR \(sr): \(error.message) after "
                    + "\(Int(waited.rounded())) s\(bound); the SR stays attached and works again once the server answers")
        }
    }

    /// Mounts the export itself aside, runs `body` with that path, and unmounts whatever
    /// happens. A mount failure is ENODEV with mount's reason (the spec's "target attachment
    /// parameters are incorrect"). The work is done (or failed on its own) when the unmount
    /// fails; a mount left behind is released by the next sr_create, sr_attach or sr_detach.
    func withExportMounted(_ sr: CanonicalUUID, _ body: (String) throws -> Void) throws {
        try mounted(sr).withAsideMount(
            export.source, type: "nfs", options: options.arguments,
            unmountFailure: .leavesItForTheNextCall,
            explainMountFailure: { .exportUnmountable(export.source, reason: $0.message) }, body)
    }

    /// Why mounting the SR's directory failed, found by mounting the export itself.
    func explainAttachFailure(_ sr: CanonicalUUID, mountError: StorageError) -> StorageError {
        do {
            var exists = false
            try withExportMounted(sr) { root in exists = Syscall.isDirectory("\(root)/\(sr)") }
            guard exists else { return .srMissingOnExport(sr.string, export: export.source) }
            return mountError
        } catch {
            return DriverMain.normalise(error)
        }
    }

    func attachRecord(_ sr: CanonicalUUID) -> String {
        "source=\(export.source(appending: sr.string))\nmount=\(mounted(sr).mountPoint)\noptions=\(options.arguments.joinedText(separator: ","))\n"
    }
}
