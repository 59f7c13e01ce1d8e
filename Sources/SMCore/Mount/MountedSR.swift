/// The substrate of the file SRs whose root is a mount (EXTSR, NFSSR, and EXToISCSISR through
/// EXTSR): while attached, the SR is mounted at `<mount_dir>/<SR-UUID>` and recorded in
/// `AttachState`; a verb that needs the substrate itself for the length of one call mounts it
/// aside, at `<mount_dir>/.<SR-UUID>.<purpose>` (EXTSR's read-only inspection before sr_delete,
/// NFSSR's export for sr_create). A driver says what its mount is (`fileSystem`, the source it
/// expects) and does its own checks around these steps.
public struct MountedSR: Sendable {
    /// What the SR's mount is, as the mount table shows it.
    public struct FileSystem: Sendable {
        /// For messages: `ext4`, `NFS`.
        public var name: String
        /// The types `/proc/self/mountinfo` reports for it.
        public var types: Set<String>

        public init(name: String, types: Set<String>) {
            self.name = name
            self.types = types
        }
    }

    /// What a failure to unmount the aside mount after the call means.
    public enum AsideUnmountFailure: Sendable {
        /// The call fails: what comes next must not run with the substrate still mounted.
        case fails
        /// The mount is left for the next call of this SR to release (`releaseAsideMount`).
        case leavesItForTheNextCall
    }

    public let sr: CanonicalUUID
    public let host: HostEnvironment
    public let fileSystem: FileSystem
    /// The last part of the aside mount point's name (`inspect`, `export`).
    public let asidePurpose: String

    public init(sr: CanonicalUUID, host: HostEnvironment, fileSystem: FileSystem, asidePurpose: String) {
        self.sr = sr
        self.host = host
        self.fileSystem = fileSystem
        self.asidePurpose = asidePurpose
    }

    public var mountPoint: String { host.mountPoint(for: sr) }
    public var asideMountPoint: String { "\(host.mountDirectory)/.\(sr).\(asidePurpose)" }
    public var attachState: AttachState { AttachState(host: host, sr: sr) }

    /// The mount on the SR's mount point, if any.
    public func currentMount() throws(StorageError) -> MountEntry? {
        try MountTable.current().entry(at: mountPoint)
    }

    /// sr_attach. Idempotent: an aside mount an interrupted call left is released; a mount
    /// already on the mount point that `isExpected` accepts is success (the record is written
    /// again); any other mount there is EBUSY naming it and `expected`. Otherwise `mount` (the
    /// driver's checks and the mount itself), then the attach record `record`; a failure to
    /// write it unmounts again.
    public func attach(
        expected: String, isExpected: (MountEntry) -> Bool, record: String,
        mount: () throws(StorageError) -> Void
    ) throws(StorageError) {
        try releaseAsideMount()
        if let mounted = try currentMount() {
            guard isExpected(mounted) else {
                throw .mountPointTaken(mountPoint, by: mounted.source, type: mounted.fileSystemType, expected: expected)
            }
            try attachState.markSRAttached(details: record)
            return
        }
        try mount()
        do throws(StorageError) {
            try attachState.markSRAttached(details: record)
        } catch {
            try? Mount.unmount(mountPoint)
            Mount.removeMountPoint(mountPoint)
            throw error
        }
    }

    /// sr_detach. Idempotent; EBUSY while a VDI is attached here or a process has files open in
    /// the SR. Unmounts, removes the mount-point directory, clears the record.
    public func detach() throws(StorageError) {
        let state = attachState
        try state.requireNoAttachedVDI()
        try Mount.unmount(mountPoint)
        Mount.removeMountPoint(mountPoint)
        try state.clearSRAttached()
    }

    /// The SR's repository for a VDI verb: ENODEV unless the SR is recorded as attached here and
    /// a `fileSystem` is mounted on its mount point (so nothing is ever written into the bare
    /// directory underneath). Returns the mount too, for the driver's further checks.
    public func attachedRepository() throws(StorageError) -> (repository: VHDRepository, mount: MountEntry) {
        let repository = VHDRepository(sr: sr, root: mountPoint, host: host)
        try repository.requireAttached()
        guard let mounted = try currentMount(), fileSystem.types.contains(mounted.fileSystemType) else {
            throw .srMountMissing(sr.string, fileSystem: fileSystem.name, mountPoint: mountPoint)
        }
        return (repository, mounted)
    }

    /// Mounts `source` at the aside mount point (releasing one an interrupted call left), runs
    /// `body` with that path, and unmounts whatever `body` did; `unmountFailure` says what a
    /// failure of that last unmount means. A failed mount is thrown as `explainMountFailure`
    /// turns mount's error.
    public func withAsideMount<T>(
        _ source: String, type: String, options: [String] = [],
        unmountFailure: AsideUnmountFailure,
        explainMountFailure: (StorageError) -> StorageError = { $0 },
        _ body: (String) throws -> T
    ) throws -> T {
        let point = asideMountPoint
        try releaseAsideMount()
        do throws(StorageError) {
            try Mount.mount(source, at: point, type: type, options: options)
        } catch {
            throw explainMountFailure(error)
        }
        let outcome = Result { try body(point) }
        do throws(StorageError) {
            try Mount.unmount(point)
            Mount.removeMountPoint(point)
        } catch {
            guard unmountFailure == .leavesItForTheNextCall else { throw error }
            Diagnostics.debug("leaving \(point) mounted: \(error)")
            OperationLog.note(host: host, "SR \(sr): could not unmount \(point): \(error)")
        }
        return try outcome.get()
    }

    /// Unmounts an aside mount that an interrupted call left behind.
    public func releaseAsideMount() throws(StorageError) {
        let point = asideMountPoint
        if try Mount.isMounted(point) { try Mount.unmount(point) }
        Mount.removeMountPoint(point)
    }
}
