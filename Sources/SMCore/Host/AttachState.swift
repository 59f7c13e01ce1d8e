import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Per-host attach records under `<run_dir>/<SR-UUID>/`: `attached` for the SR, `vdi/<VDI-UUID>`
/// for each attached VDI. They live on tmpfs so that they do not survive a reboot.
public struct AttachState: Sendable {
    public let host: HostEnvironment
    public let sr: CanonicalUUID

    public init(host: HostEnvironment, sr: CanonicalUUID) {
        self.host = host
        self.sr = sr
    }

    public var directory: String { "\(host.runDirectory)/\(sr)" }
    var srRecord: String { "\(directory)/attached" }
    var vdiDirectory: String { "\(directory)/vdi" }
    func vdiRecord(_ vdi: CanonicalUUID) -> String { "\(vdiDirectory)/\(vdi)" }

    public var isSRAttached: Bool { Syscall.exists(srRecord) }

    /// What the driver wrote when it attached the SR (e.g. the mount point or device).
    public func srRecordContents() -> String? {
        (try? Syscall.readFile(srRecord)).map { String(decoding: $0, as: UTF8.self) }
    }

    public func markSRAttached(details: String) throws(StorageError) {
        try Syscall.makeDirectories(directory)
        try Syscall.writeFileAtomically(srRecord, Array(details.utf8))
    }

    /// Removes the SR's record only; VDI records stay (every sr_detach refuses while one exists).
    public func clearSRAttached() throws(StorageError) {
        try Syscall.unlinkIfPresent(srRecord)
    }

    /// Removes the SR's whole state directory (after sr_delete).
    public func forgetSR() throws(StorageError) {
        try Syscall.removeTree(directory)
    }

    public func isVDIAttached(_ vdi: CanonicalUUID) -> Bool { Syscall.exists(vdiRecord(vdi)) }

    /// EBUSY naming the first VDI attached on this host: what every sr_detach and sr_delete
    /// answers while one is.
    public func requireNoAttachedVDI() throws(StorageError) {
        if let attached = attachedVDIs().first { throw .srHasAttachedVDI(sr.string, vdi: attached.string) }
    }

    public func attachedVDIs() -> [CanonicalUUID] {
        guard let names = try? Syscall.directoryEntries(vdiDirectory) else { return [] }
        return names.compactMap { CanonicalUUID($0) }.sorted()
    }

    public func markVDIAttached(_ vdi: CanonicalUUID, path: String) throws(StorageError) {
        try Syscall.makeDirectories(vdiDirectory)
        try Syscall.writeFileAtomically(vdiRecord(vdi), Array(path.utf8))
    }

    public func clearVDIAttached(_ vdi: CanonicalUUID) throws(StorageError) {
        try Syscall.unlinkIfPresent(vdiRecord(vdi))
    }

    /// The path recorded at attach time.
    public func attachedPath(_ vdi: CanonicalUUID) -> String? {
        (try? Syscall.readFile(vdiRecord(vdi))).map { String(decoding: $0, as: UTF8.self) }
    }
}
