import Foundation
import Testing

@testable import SMCore

/// The worked example of Docs/new-driver.md, as a real driver over a real directory: what a new
/// driver declares (name, dconf keys, overview, the verbs it does not offer and why) and what it
/// composes (the SR-wide helpers FileSR shares, `VHDRepositoryDriver` for every VDI verb).
///
/// ScratchSR keeps VDIs as VHD files in `<scratch>/<SR-UUID>/`, like FileSR, but for scratch
/// disks that nobody locks or collects: vdi_lock, vdi_unlock and sr_gc are ENOSYS with a reason.
struct ScratchSR: VHDRepositoryDriver {
    static let name = "ScratchSR"
    static let requiredKeys = ["scratch"]
    static let overview = "ScratchSR keeps scratch VDIs as VHD files in <scratch>/<SR-UUID>/."
    static let unsupportedVerbs: UnsupportedVerbTable = [
        .vdiLock: UnsupportedReason("scratch disks are never shared, so they take no persistent lock"),
        .vdiUnlock: UnsupportedReason("scratch disks are never shared, so they take no persistent lock"),
        .srGC: UnsupportedReason("scratch SRs are thrown away whole, never collected")
    ]

    let scratch: String
    let host: HostEnvironment

    init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        scratch = try configuration.required("scratch")
        guard scratch.hasPrefix("/") else { throw StorageError.invalid("dconf scratch must be an absolute path") }
        self.host = host
    }

    func root(_ sr: CanonicalUUID) -> String { "\(scratch)/\(sr)" }

    func attachedRepository(_ sr: CanonicalUUID) throws(StorageError) -> VHDRepository {
        guard Syscall.isDirectory(root(sr)) else { throw .noSuchSR(sr.string) }
        return VHDRepository(sr: sr, root: root(sr), host: host)
    }

    func srCreate(sr: CanonicalUUID, size: UInt64) throws {
        try FileSR.makeSRDirectory(sr, size: size, in: scratch)
    }

    func srAttach(sr: CanonicalUUID) throws {
        try readyRepository(sr).attachState.markSRAttached(details: "root=\(root(sr))\n")
    }

    func srDetach(sr: CanonicalUUID) throws {
        let state = AttachState(host: host, sr: sr)
        try state.requireNoAttachedVDI()
        try state.clearSRAttached()
    }

    func srScan(sr: CanonicalUUID) throws -> SRScanReport {
        let repository = try readyRepository(sr)
        return try repository.scan(physicalSize: try repository.fileSystemUsage().size)
    }

    func srContentType(sr: CanonicalUUID) throws -> String { VHDRepository.contentType }

    // VHDRepositoryDriver implements these; a driver that does not offer them says so itself,
    // with its table's reason (a composed implementation takes precedence over Driver's ENOSYS).
    func vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws { throw Self.unsupported(.vdiLock) }
    func vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws { throw Self.unsupported(.vdiUnlock) }
    func srGC(sr: CanonicalUUID) throws { throw Self.unsupported(.srGC) }
}

@Suite struct NewDriverExampleTests {
    /// The example driver works end to end on a directory: SR and VDI verbs from the shared
    /// pieces, the snapshot semantics of every VHD driver, and ENOSYS with the table's reason.
    @Test func scratchSRWorksEndToEnd() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("sm-scratch-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: "\(work)/srv", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        var host = HostEnvironment(runDirectory: "\(work)/run", lockDirectory: "\(work)/lock", logFile: "\(work)/SMlog")
        host.lockTimeout = 10
        let driver = try ScratchSR(configuration: DeviceConfiguration(values: ["scratch": "\(work)/srv"]), host: host)
        let sr = CanonicalUUID("0c7ab4c6-7a4e-4d3a-9f0e-2f54b1f3a001")!
        let disk = CanonicalUUID("0c7ab4c6-7a4e-4d3a-9f0e-2f54b1f3a002")!
        let snapshot = CanonicalUUID("0c7ab4c6-7a4e-4d3a-9f0e-2f54b1f3a003")!

        try driver.srCreate(sr: sr, size: 0)
        try driver.srAttach(sr: sr)
        try driver.vdiCreate(sr: sr, vdi: disk, size: 64 << 20)
        try driver.vdiSnapshot(sr: sr, source: disk, destination: snapshot)
        let scan = try driver.srScan(sr: sr)
        #expect(Set(scan.vdis.map(\.uuid)) == [disk, snapshot])
        let parent = try #require(scan.vdis.first { $0.uuid == snapshot })
        #expect(parent.readOnly)
        #expect(scan.vdis.first { $0.uuid == disk }?.parent == snapshot)  // the source goes on as its child
        #expect(try driver.srContentType(sr: sr) == "vhd")

        let refused = #expect(throws: StorageError.self) { try driver.vdiLock(sr: sr, vdi: disk, force: false, user: "vm-1") }
        #expect(refused?.code == .noFunction)
        #expect(refused?.message == "ScratchSR vdi_lock: scratch disks are never shared, so they take no persistent lock")
        #expect((#expect(throws: StorageError.self) { try driver.srGC(sr: sr) })?.code == .noFunction)
        #expect(Help.usage(ScratchSR.self).contains("scratch SRs are thrown away whole, never collected"))

        try driver.vdiDelete(sr: sr, vdi: snapshot)
        try driver.vdiDelete(sr: sr, vdi: disk)
        try driver.srDetach(sr: sr)
        #expect(throws: StorageError.self) { try driver.srCreate(sr: sr, size: 0) }  // EEXIST: it is still there
    }
}
