import SystemPackage

/// A storage driver: one substrate behind the SM verbs.
///
/// Every verb is declared here and defaults to ENOSYS in the extension below, so a driver
/// implements exactly what its substrate supports. The dispatcher has validated every argument
/// and taken the host-local locks before any of these run; a driver never sees a malformed UUID.
public protocol Driver {
    /// The executable's name, e.g. `FileSR`.
    static var name: String { get }
    /// dconf keys that must be present; checked before `init`.
    static var requiredKeys: [String] { get }
    /// dconf keys the driver also understands, for `--help`.
    static var optionalKeys: [String] { get }
    /// One paragraph for `--help`.
    static var overview: String { get }
    /// The verbs this driver does not offer, each with why (UnsupportedVerbs.swift): what their
    /// ENOSYS line, `--help` and Docs/drivers.md say.
    static var unsupportedVerbs: UnsupportedVerbTable { get }

    init(configuration: DeviceConfiguration, host: HostEnvironment) throws

    /// sr_probe (beyond the spec, Docs/probe.md): what the dconf points at, touching nothing. A
    /// type's method, not an instance's: it names no SR and checks only the dconf keys it needs
    /// (EINVAL, nothing touched), which may be fewer than `requiredKeys`.
    static func probe(configuration: DeviceConfiguration, host: HostEnvironment) throws -> ProbeReport

    /// Create the SR. Not idempotent: EEXIST when it exists.
    func srCreate(sr: CanonicalUUID, size: UInt64) throws
    /// Delete the SR. Idempotent.
    func srDelete(sr: CanonicalUUID) throws
    /// Attach the SR on this host. Idempotent.
    func srAttach(sr: CanonicalUUID) throws
    /// Detach the SR from this host. Idempotent; EBUSY while a VDI is attached.
    func srDetach(sr: CanonicalUUID) throws
    /// Report the SR and its visible VDIs.
    func srScan(sr: CanonicalUUID) throws -> SRScanReport
    /// The content type (`vhd`, `aio`).
    func srContentType(sr: CanonicalUUID) throws -> String
    /// Verify every VDI; problems are reported, not thrown.
    func srCheck(sr: CanonicalUUID) throws -> SRCheckReport
    /// Coalesce what can be coalesced.
    func srGC(sr: CanonicalUUID) throws
    /// Create a VDI. Not idempotent.
    func vdiCreate(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws
    /// Delete a VDI. Idempotent.
    func vdiDelete(sr: CanonicalUUID, vdi: CanonicalUUID) throws
    /// Attach a VDI on this host. Idempotent.
    func vdiAttach(sr: CanonicalUUID, vdi: CanonicalUUID) throws -> AttachResult
    /// Detach a VDI from this host. Idempotent.
    func vdiDetach(sr: CanonicalUUID, vdi: CanonicalUUID) throws
    /// Writable copy-on-write clone. Not idempotent.
    func vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws
    /// Read-only snapshot; the source continues as its child. Not idempotent.
    func vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws
    /// Grow a VDI. Idempotent for the same size.
    func vdiResize(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws
    /// Take the persistent lock. Reassert by the same user succeeds.
    func vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws
    /// Release the persistent lock. Idempotent.
    func vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws
    /// Write the VDI's guest data to `output` as `format` (Docs/export.md). Reads only.
    func vdiExport(sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, to output: FileDescriptor) throws
    /// Make the new VDI from `input`; it appears only complete. Not idempotent.
    func vdiImport(sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, size: UInt64, from input: FileDescriptor) throws
}

extension Driver {
    public static var requiredKeys: [String] { [] }
    public static var optionalKeys: [String] { [] }
    public static var overview: String { "\(name): not implemented yet; every verb answers ENOSYS." }
    public static var unsupportedVerbs: UnsupportedVerbTable { [:] }

    private func unsupported(_ verb: Verb) -> StorageError { Self.unsupported(verb) }

    public static func probe(configuration: DeviceConfiguration, host: HostEnvironment) throws -> ProbeReport {
        throw unsupported(.srProbe)
    }

    public func srCreate(sr: CanonicalUUID, size: UInt64) throws { throw unsupported(.srCreate) }
    public func srDelete(sr: CanonicalUUID) throws { throw unsupported(.srDelete) }
    public func srAttach(sr: CanonicalUUID) throws { throw unsupported(.srAttach) }
    public func srDetach(sr: CanonicalUUID) throws { throw unsupported(.srDetach) }
    public func srScan(sr: CanonicalUUID) throws -> SRScanReport { throw unsupported(.srScan) }
    public func srContentType(sr: CanonicalUUID) throws -> String { throw unsupported(.srContentType) }
    public func srCheck(sr: CanonicalUUID) throws -> SRCheckReport { throw unsupported(.srCheck) }
    public func srGC(sr: CanonicalUUID) throws { throw unsupported(.srGC) }
    public func vdiCreate(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws { throw unsupported(.vdiCreate) }
    public func vdiDelete(sr: CanonicalUUID, vdi: CanonicalUUID) throws { throw unsupported(.vdiDelete) }
    public func vdiAttach(sr: CanonicalUUID, vdi: CanonicalUUID) throws -> AttachResult { throw unsupported(.vdiAttach) }
    public func vdiDetach(sr: CanonicalUUID, vdi: CanonicalUUID) throws { throw unsupported(.vdiDetach) }
    public func vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        throw unsupported(.vdiClone)
    }
    public func vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws {
        throw unsupported(.vdiSnapshot)
    }
    public func vdiResize(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws { throw unsupported(.vdiResize) }
    public func vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws {
        throw unsupported(.vdiLock)
    }
    public func vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws { throw unsupported(.vdiUnlock) }
    public func vdiExport(sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, to output: FileDescriptor) throws {
        throw unsupported(.vdiExport)
    }
    public func vdiImport(
        sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, size: UInt64, from input: FileDescriptor
    ) throws {
        throw unsupported(.vdiImport)
    }
}
