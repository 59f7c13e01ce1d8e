/// FileSR: VDIs as VHD files in `<location>/<SR-UUID>/` on a local directory.
///
/// The SR is the directory; everything about VDIs is `VHDRepository`.
public struct FileSR: VHDRepositoryDriver {
    public static let name = "FileSR"
    public static let requiredKeys = ["location"]
    public static let overview = """
        FileSR keeps each VDI as a dynamic VHD file <location>/<SR-UUID>/<VDI-UUID>.vhd in a local
        directory. dconf: <dconf><location>/srv/sm</location></dconf> (an existing absolute directory).
        """

    let location: String
    let host: HostEnvironment
    let configuration: DeviceConfiguration

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        var location = try configuration.required("location")
        guard location.hasPrefix("/") else {
            throw StorageError.invalid("dconf location '\(ArgumentParsing.printable(location))' must be an absolute path")
        }
        guard !location.split(separator: "/").contains("..") else {
            throw StorageError.invalid("dconf location must not contain '..'")
        }
        while location.count > 1 && location.hasSuffix("/") { location.removeLast() }
        self.location = location
        self.host = host
        self.configuration = configuration
    }

    func root(_ sr: CanonicalUUID) -> String { location == "/" ? "/\(sr)" : "\(location)/\(sr)" }

    func repository(_ sr: CanonicalUUID) -> VHDRepository { VHDRepository(sr: sr, root: root(sr), host: host) }

    /// ENODEV unless the SR directory exists; the repository checks the attach record itself.
    public func attachedRepository(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository {
        guard Syscall.isDirectory(root(sr)) else { throw .noSuchSR(sr.string) }
        return repository(sr)
    }

    /// The dconf the background sr_gc worker is started with after a delete.
    public var backgroundConfiguration: DeviceConfiguration? { configuration }

    /// The SR, after the recovery pass has settled what a crashed operation left.
    func requireSR(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository {
        try readyRepository(sr)
    }

    public func srCreate(sr: CanonicalUUID, size: UInt64) throws {
        try Self.makeSRDirectory(sr, size: size, in: location)
    }

    /// Makes the SR directory `<location>/<SR-UUID>` (with `.sm/`) under a temporary name and
    /// renames it into place, so a crash leaves no SR or a complete one. ENODEV when `location`
    /// is no directory; EEXIST when the SR exists; ENOSPC when Size exceeds the filesystem
    /// holding `location`. `shownAs` names the location in those messages when the caller knows
    /// it better than by its path here (NFSSR: the export, mounted aside for the call).
    public static func makeSRDirectory(
        _ sr: CanonicalUUID, size: UInt64, in location: String,
        shownAs shown: String? = nil
    ) throws(StorageError) {
        let root = location == "/" ? "/\(sr)" : "\(location)/\(sr)"
        guard Syscall.isDirectory(location) else { throw .locationMissing(shown ?? location) }
        guard !Syscall.exists(root) else { throw shown.map { .srExists(sr.string, on: $0) } ?? .srExists(sr.string) }
        let fileSystem = try Syscall.fileSystemStatus(location)
        let capacity = UInt64(fileSystem.f_blocks) * UInt64(fileSystem.f_frsize)
        guard size <= capacity else {
            throw .noSpace("Size \(size) is larger than the filesystem holding \(shown ?? location) (\(capacity) bytes)")
        }
        let temporary = "\(location)/.\(sr).new"
        try Syscall.removeTree(temporary)
        try Syscall.makeDirectories(temporary + "/.sm")
        try Syscall.fsyncDirectory(temporary)
        try Syscall.rename(temporary, root)
        try Syscall.fsyncDirectory(location)
    }

    /// Idempotent. The directory is renamed away first (the SR disappears at once), then removed.
    public func srDelete(sr: CanonicalUUID) throws {
        let state = AttachState(host: host, sr: sr)
        let doomed = "\(location)/.\(sr).deleting"
        try Syscall.removeTree(doomed)
        guard Syscall.isDirectory(root(sr)) else {
            try state.forgetSR()
            return
        }
        let repository = repository(sr)
        try state.requireNoAttachedVDI()
        let vdis = try repository.allVDIFiles()
        guard vdis.isEmpty else { throw StorageError.srNotEmpty(sr.string, count: vdis.count) }
        try Syscall.rename(root(sr), doomed)
        try Syscall.fsyncDirectory(location)
        try Syscall.removeTree(doomed)
        try state.forgetSR()
    }

    public func srAttach(sr: CanonicalUUID) throws {
        let repository = try requireSR(sr)
        try repository.attachState.markSRAttached(details: "root=\(root(sr))\n")
    }

    public func srDetach(sr: CanonicalUUID) throws {
        let state = AttachState(host: host, sr: sr)
        try state.requireNoAttachedVDI()
        try state.clearSRAttached()
    }

    public func srScan(sr: CanonicalUUID) throws -> SRScanReport {
        let repository = try requireSR(sr)
        let usage = try repository.fileSystemUsage()
        return try repository.scan(physicalSize: usage.size)
    }

    public func srContentType(sr: CanonicalUUID) throws -> String {
        _ = try requireSR(sr)
        return VHDRepository.contentType
    }

    // Every VDI verb, sr_check and sr_gc: VHDRepositoryDriver.
}
