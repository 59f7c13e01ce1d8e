import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// RBDSR: virtual disks on Ceph RBD. The SR is an RBD namespace of a pool, each VDI an RBD
/// image or an RBD snapshot; snapshot and clone are RBD's own (O(1)); attach maps with the
/// kernel client. All cluster work is in-process through librados and librbd; see
/// `RBDRepository` and Docs/RBDSR.md. The verbs every repository has are forwarded by
/// `RepositoryDriver`; clone, snapshot and the locks are RBD's own.
public struct RBDSR: RepositoryDriver {
    public static let name = "RBDSR"
    public static let requiredKeys = CephCredentials.requiredKeys
    public static let optionalKeys = CephCredentials.optionalKeys
    public static let overview = """
        RBDSR keeps the SR as the RBD namespace <SR-UUID> (or dconf 'namespace') of dconf 'pool' on the Ceph \
        cluster at 'monitors', as cephx 'user' with 'keyring' (a file) or 'key' (the secret: pass the dconf as \
        @FILE or @- so that it stays off the command line). VDIs are RBD images (writable) and RBD snapshots \
        (read-only); vdi_snapshot and vdi_clone are RBD snapshots and clones; vdi_attach maps with the kernel \
        client, type aio; vdi_lock is a Ceph lock on the image header. 'timeout' (seconds, default 10) bounds \
        every wait on the cluster.
        """

    let repository: RBDRepository

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        repository = RBDRepository(credentials: try CephCredentials(configuration: configuration), host: host)
    }

    public func repository(for sr: CanonicalUUID) -> RBDRepository { repository }

    public func vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try repository.cloneVDI(sr: sr, source: source, destination: destination)
    }
    public func vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        try repository.snapshotVDI(sr: sr, source: source, destination: destination)
    }
    public func vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws {
        try repository.lockVDI(sr: sr, vdi: vdi, force: force, user: user)
    }
    public func vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws {
        try repository.unlockVDI(sr: sr, vdi: vdi, user: user)
    }

    public static let unsupportedVerbs: UnsupportedVerbTable = [
        .srGC: UnsupportedReason("not needed: RBD keeps no chains to coalesce, and hidden VDIs go with their last clone"),
        .srProbe: UnsupportedReason(
            "not offered yet (Docs/probe.md): each SR is an RBD namespace of the pool; list them with "
                + "'rbd namespace ls <pool>'"),
        .vdiExport: UnsupportedReason("not supported yet: use 'rbd export' (Docs/export.md)"),
        .vdiImport: UnsupportedReason("not supported yet: use 'rbd import' (Docs/export.md)")
    ]
}

extension RBDRepository: SRRepository {}

extension RBDSR {
    /// RBDSR's entry point (its own executable's and the multi-call `sm-dynamic-drivers`' when run
    /// by that name): as `DriverMain.run`, but the process ends with `_exit` once the verb has
    /// answered. By then every image is closed (watches and exclusive locks released), and what
    /// `rados_shutdown` and `exit` would still do (join librados' threads, free its maps, run
    /// libceph-common's static destructors) is several milliseconds of every verb that change
    /// nothing outside this process (`CephSession.leaveConnectionToProcessExit`). The answer is
    /// written through unbuffered descriptors; stdio is flushed all the same.
    public static func main() -> Never {
        signal(SIGPIPE, SIG_IGN)
        CephSession.leaveConnectionToProcessExit = true
        let status = DriverMain.execute(RBDSR.self, arguments: Array(CommandLine.arguments.dropFirst()))
        fflush(nil)
        _exit(status)
    }
}
