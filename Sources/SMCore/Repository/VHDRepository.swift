#if canImport(Glibc)
    import Glibc
#endif

/// The VDI verbs of every file-based SR (FileSR, EXTSR, NFSSR, EXToISCSISR): a directory of
/// `<VDI-UUID>.vhd` files. Drivers decide where the directory is (a subdirectory of `location`,
/// a mounted filesystem) and compose this type for everything else.
///
/// The dispatcher holds the host-local locks; this type assumes it runs alone on the VDIs it names.
public struct VHDRepository: Sendable {
    /// Sizes of VDIs are rounded up to whole blocks.
    public static let sizeGranularity = VHDImage.blockSize
    public static let contentType = "vhd"
    static let vhdSuffix = ".vhd"

    public let sr: CanonicalUUID
    public let root: String
    public let host: HostEnvironment
    public let attachState: AttachState
    public let metadata: VDIMetadataStore

    public init(sr: CanonicalUUID, root: String, host: HostEnvironment) {
        self.sr = sr
        self.root = root
        self.host = host
        attachState = AttachState(host: host, sr: sr)
        metadata = VDIMetadataStore(srRoot: root)
    }

    public func vdiPath(_ vdi: CanonicalUUID) -> String { "\(root)/\(vdi)\(Self.vhdSuffix)" }

    /// True when anything has the VDI's file name, even something that is not a VHD file (a
    /// dangling symbolic link, a FIFO): such a damaged VDI exists, so that delete removes it.
    public func fileExists(_ vdi: CanonicalUUID) -> Bool { Syscall.lstatus(vdiPath(vdi)) != nil }

    /// ENODEV unless `sr_attach` ran on this host.
    public func requireAttached() throws(StorageError) {
        guard attachState.isSRAttached else { throw .srNotAttached(sr.string) }
    }

    /// Every VHD file in the SR, hidden ones included, sorted.
    public func allVDIFiles() throws(StorageError) -> [CanonicalUUID] { try allVDIFilesWithTypes().map(\.vdi) }

    /// `allVDIFiles`, each with whether the listing called it a regular file (readdir's type).
    func allVDIFilesWithTypes() throws(StorageError) -> [(vdi: CanonicalUUID, listedRegular: Bool)] {
        let entries: [(name: String, type: UInt8)]
        switch Syscall.listDirectoryWithTypes(root) {
        case .success(let found): entries = found
        case .failure(let code): throw .system(code, "readdir", path: root)
        }
        return entries.compactMap { entry -> (vdi: CanonicalUUID, listedRegular: Bool)? in
            guard entry.name.hasSuffix(Self.vhdSuffix) else { return nil }
            let stem = String(entry.name.dropLast(Self.vhdSuffix.count))
            guard let uuid = CanonicalUUID(canonical: stem) else { return nil }
            return (uuid, entry.type == UInt8(DT_REG))
        }.sorted { $0.vdi < $1.vdi }
    }

    /// The size rounded up to a whole number of 2 MiB blocks.
    public static func roundedSize(_ size: UInt64) -> UInt64 {
        (size + sizeGranularity - 1) / sizeGranularity * sizeGranularity
    }

    // MARK: Verbs

    /// Creates `<VDI>.vhd`: written under a claimed temporary name (`.<VDI>.vhd.new`, held by
    /// this process: `ClaimedTemporary`), fsynced, then linked into place (the link fails if the
    /// name appeared meanwhile) and the directory fsynced. A crash leaves either no VDI or a
    /// complete one, plus at most a temporary file whose writer is gone, which sr_scan removes.
    public func create(_ vdi: CanonicalUUID, size: UInt64) throws(StorageError) {
        try requireAttached()
        guard !fileExists(vdi) else { throw .vdiExists(vdi.string, sr: sr.string) }
        // Attributes a crash left from a deleted VDI of this UUID (vdi_delete of a leaf removes
        // them after its unlink) must not become the new VDI's.
        try metadata.remove(vdi)
        let virtualSize = Self.roundedSize(size)
        let needed = UInt64(VHDFooter.size * 2 + VHDDynamicHeader.size) + VHDImage.reservedEntries(for: virtualSize) * 4
        let fileSystem = try Syscall.fileSystemStatus(root)
        let available = UInt64(fileSystem.f_bavail) * UInt64(fileSystem.f_frsize)
        guard available >= needed + 64 * 1024 else {
            throw .noSpace("SR \(sr) has \(available) bytes free, not enough for the metadata of VDI \(vdi)")
        }
        let temporary = temporaryPath(vdi)
        ClaimedTemporary.removeIfAbandoned(temporary)
        let claimed = try ClaimedTemporary.create(temporary)
        let image: VHDImage
        do throws(StorageError) {
            image = try VHDImage.create(at: temporary, size: virtualSize, uniqueID: CanonicalUUID.random().bytes, claimed: claimed)
        } catch {
            try? Syscall.unlinkIfPresent(temporary)
            throw error
        }
        FaultPoint.Create.written.reach()
        try publish(temporary, as: vdi, holding: image)
    }

    /// Gives a VHD written under a claimed temporary name (vdi_create, vdi_import) its VDI name:
    /// linked, never replacing (EEXIST when the VDI appeared meanwhile), the temporary name
    /// removed, the directory fsynced. The claim (`image`'s descriptor) is held until the
    /// temporary name is gone, so that no sweeper takes it for abandoned.
    func publish(_ temporary: String, as vdi: CanonicalUUID, holding image: VHDImage) throws(StorageError) {
        let linked: Bool
        do throws(StorageError) {
            linked = try Syscall.linkNoReplace(temporary, vdiPath(vdi))
        } catch {
            try? Syscall.unlinkIfPresent(temporary)
            throw error
        }
        try Syscall.unlinkIfPresent(temporary)
        withExtendedLifetime(image) {}
        guard linked else { throw .vdiExists(vdi.string, sr: sr.string) }
        try Syscall.fsyncDirectory(root)
    }

    /// Where vdi_create writes a new VHD before linking it into place.
    func temporaryPath(_ vdi: CanonicalUUID) -> String { "\(root)/.\(vdi)\(Self.vhdSuffix).new" }

    /// Removes what killed processes left: `.<VDI>.vhd.new` of a create, `<VDI>.tmp.<id>` of an
    /// attribute write. Only when the VDI is free (its host lock and shared claim: the writer,
    /// on any host, held both) and the file's own writer is gone (`ClaimedTemporary`). `names`
    /// is a listing of the SR root the caller already has.
    func sweepAbandonedTemporaries(rootNames names: [String]) {
        func sweep(_ path: String, of stem: Substring, _ what: String) {
            guard let vdi = CanonicalUUID(String(stem)), let hold = tryHoldVDI(vdi) else { return }
            defer { hold.release() }
            if ClaimedTemporary.removeIfAbandoned(path) {
                OperationLog.note(host: host, "SR \(sr): removed \(path), left by an interrupted \(what)")
            }
        }
        let suffix = "\(Self.vhdSuffix).new"
        for name in names where name.hasPrefix(".") && name.hasSuffix(suffix) {
            sweep("\(root)/\(name)", of: name.dropFirst().dropLast(suffix.count), "vdi_create")
        }
        guard let names = try? Syscall.directoryEntries(metadata.directory) else { return }
        for name in names where name.utf8.count > 36 && name.dropFirst(36).hasPrefix(Syscall.temporarySuffix) {
            sweep("\(metadata.directory)/\(name)", of: name.prefix(36), "attribute write")
        }
    }

    /// Deletes a VDI; a VDI that does not exist (or is already hidden) succeeds. EBUSY while
    /// attached on this host. A VDI others depend on is hidden, a leaf removed with its childless
    /// hidden ancestors (VHDRepository+Delete.swift). Returns true when coalescing has work.
    @discardableResult
    public func delete(_ vdi: CanonicalUUID) throws(StorageError) -> Bool {
        try requireAttached()
        guard fileExists(vdi) else { return false }
        guard !attachState.isVDIAttached(vdi) else { throw .vdiAttached(vdi.string) }
        try requireUnlocked(vdi)  // persistent VDI locks: VHDRepository+Locks.swift
        return try removeOrHide(vdi)
    }

    /// Records the VDI as attached on this host and says where it is. Idempotent. The whole
    /// chain must open inside the SR first (EIO otherwise: blktap would follow a symbolic link,
    /// a locator or a parent name out of the SR, or block on a FIFO).
    public func attach(_ vdi: CanonicalUUID) throws(StorageError) -> AttachResult {
        try requireAttached()
        guard fileExists(vdi), !(isHidden(vdi)) else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        let chain: VHDChain
        do throws(StorageError) { chain = try VHDChain.open(vdiPath(vdi), confinedTo: root) } catch {
            throw error.reworded("VDI \(vdi) cannot be attached: \(error.message); run sr_check")
        }
        if !attachState.isVDIAttached(vdi) { try repairBeforeWriter(vdi, leaf: chain.leaf) }
        try attachState.markVDIAttached(vdi, path: vdiPath(vdi))
        return AttachResult(path: vdiPath(vdi), type: Self.contentType)
    }

    /// Before a writer starts on a VDI (its first vdi_attach on this host): footers that a crash
    /// left different or missing are made one again (`VHDImage.repairFooters`), as resize,
    /// snapshot and clone do. A power cut in the middle of a write that adds a block can leave
    /// the file longer than its last footer, ending in zeros: the footer is written at the new
    /// end before the block, but the filesystem's writeback may have made a zeroed page before
    /// it durable, and the file size with it (Docs/power-loss.md, finding 3). Reads still work
    /// (the copy at 0), so only a writer needs it mended, and only a leaf is touched (rewriting
    /// a parent's footers would change the time its children record).
    func repairBeforeWriter(_ vdi: CanonicalUUID, leaf: VHDImage) throws(StorageError) {
        if !leaf.endFooterDamaged, try leaf.footersAgree() { return }
        guard try tree().childrenOf(vdi).isEmpty else { return }
        let image = try VHDImage.open(vdiPath(vdi), writable: true)
        if try image.repairFooters() {
            OperationLog.note(
                host: host, "vdi_attach \(sr): VDI \(vdi) had footers left different or missing by an interrupted write; repaired")
        }
    }

    /// Forgets this host's attachment. Idempotent.
    public func detach(_ vdi: CanonicalUUID) throws(StorageError) {
        try requireAttached()
        try attachState.clearVDIAttached(vdi)
    }

    /// Grows a VDI (see `VHDImage.resize(to:)` for the crash-safe order). The same size succeeds,
    /// a smaller one is EINVAL, an attached VDI is EBUSY, a filesystem without room for the moved
    /// blocks ENOSPC (the VDI unchanged). Footers left different or missing by an earlier crash
    /// are repaired first (`VHDImage.repairFooters`), so that even a same-size resize leaves the
    /// file sound.
    public func resize(_ vdi: CanonicalUUID, size: UInt64) throws(StorageError) {
        try requireAttached()
        guard fileExists(vdi), !isHidden(vdi) else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        guard !attachState.isVDIAttached(vdi) else { throw .vdiAttached(vdi.string) }
        guard try tree().childrenOf(vdi).isEmpty else {
            throw .vdiHasDependents(vdi.string)
        }
        let newSize = Self.roundedSize(size)
        let image = try VHDImage.open(vdiPath(vdi), writable: true)
        if try image.repairFooters() {
            OperationLog.note(host: host, "vdi_resize \(sr): VDI \(vdi) had footers left different by an interrupted change; repaired")
        }
        if newSize == image.size { return }
        guard newSize > image.size else {
            throw .invalid("VDI \(vdi) is \(image.size) bytes; it can only grow (asked for \(newSize))")
        }
        // Recorded, so that a crash between the resize's writes is repaired by the next verb
        // (recoverResize), not only by the next resize, snapshot or clone of this VDI.
        let entry = try journal.begin(IntentRecord(operation: .resize, fields: ["vdi": vdi.string, "size": String(newSize)]))
        do throws(StorageError) {
            try image.resize(to: newSize)
            try entry.finish()
        } catch {
            try settleAfterFailure(entry, error)
        }
    }

    /// A resize that did not finish: whatever its write order left (a footer pair that differs,
    /// no footer at the end) is repaired; the VDI then has the old size or the new one, as the
    /// footer at the end says (VHDImage.repairFooters).
    func recoverResize(_ record: IntentRecord) throws(StorageError) -> RecoveryOutcome {
        guard let vdi = record.uuid("vdi"), let size = record["size"].flatMap(UInt64.init) else {
            throw .io("resize record is incomplete")
        }
        guard fileExists(vdi) else { return .rolledBack }
        let image = try VHDImage.open(vdiPath(vdi), writable: true)
        try image.repairFooters()
        return image.size == size ? .rolledForward : .rolledBack
    }

    func isHidden(_ vdi: CanonicalUUID) -> Bool {
        guard let image = try? VHDImage.open(vdiPath(vdi)) else { return false }
        return image.footer.hidden
    }

    /// How many times sr_scan reads the SR when a merge tears its view (see `scan`).
    static let scanAttempts = 10

    /// Reports every visible VDI. A damaged VHD is logged (with `--verbose`) and left out; the
    /// scan goes on. `physicalSize` and `physicalUtilisation` come from the driver's substrate
    /// (nil utilisation: the bytes the VHD files occupy).
    public func scan(physicalSize: UInt64, physicalUtilisation: UInt64? = nil) throws(StorageError) -> SRScanReport {
        try requireAttached()
        struct Entry {
            var report: VDIReport
            var hidden: Bool
            var parent: CanonicalUUID?
            var uniqueID: CanonicalUUID
        }
        let rootNames = try Syscall.directoryEntries(root)
        sweepAbandonedTemporaries(rootNames: rootNames)
        // Lock files are named `<VDI>.vhd.xenlk.<owner>`: compared as bytes at a fixed place
        // (a substring search over every name was a tenth of a 10,000-VDI scan).
        let lockInfix = Array("\(Self.vhdSuffix)\(LockTarget.mutexSuffix).".utf8)
        let lockFileOwners = Set(
            rootNames.compactMap { name -> CanonicalUUID? in
                name.utf8.count > 36 + lockInfix.count && name.utf8.dropFirst(36).starts(with: lockInfix)
                    ? CanonicalUUID(canonical: String(name.prefix(36))) : nil
            })
        // Which VDIs have attributes, from one listing: most have none, and asking for each one's
        // file cost two system calls and an error built and thrown per VDI.
        let attributed = Set(metadata.recordedVDIs().compactMap { CanonicalUUID(canonical: $0) })
        // The entries in the order of their VDIs (as listed), found by VDI through `position`:
        // a dictionary of small values, sized once (a 50,000-VDI scan spent a tenth of its time
        // growing and probing dictionaries of whole entries, and sorting their keys).
        var entries: [Entry] = []
        var position: [CanonicalUUID: Int] = [:]
        var damaged: [(CanonicalUUID, StorageError)] = []
        var occupied: UInt64 = 0
        // The files are read one after another while a merge (sr_gc, on any host) may rename its
        // parent over its child between two reads: a view in which two files carry one unique id
        // (other than a parent with its child's, below), or a listed file is gone before it is
        // read, is torn, and is read again.
        for attempt in 0..<Self.scanAttempts {
            let listed = try allVDIFilesWithTypes()
            entries = []
            entries.reserveCapacity(listed.count)
            position = [:]
            position.reserveCapacity(listed.count)
            damaged = []
            occupied = 0
            var vanished = false
            for (vdi, listedRegular) in listed {
                let path = vdiPath(vdi)
                do throws(StorageError) {
                    let image = try VHDImage.open(path, listedRegular: listedRegular)
                    let status: stat
                    if let opened = image.statusAtOpen { status = opened } else { status = try image.descriptor.status(path: path) }
                    let utilisation = UInt64(status.st_blocks) * 512
                    occupied += utilisation
                    var report = VDIReport(uuid: vdi, size: image.size, utilisation: utilisation)
                    // persistent VDI locks: VHDRepository+Locks.swift (asked only where lock files exist:
                    // each question lists the SR directory, which made a 10,000-VDI scan quadratic)
                    report.locked = lockFileOwners.contains(vdi) && isLocked(vdi)
                    let attributes = attributed.contains(vdi) ? metadata.attributes(of: vdi) : [:]
                    report.label = attributes["label"] ?? ""
                    report.description = attributes["description"] ?? ""
                    report.readOnly = attributes["read_only"] == "true"
                    let parentName = image.header.parentName
                    let parent =
                        image.isDifferencing && parentName.hasSuffix(Self.vhdSuffix)
                        ? CanonicalUUID(String(parentName.dropLast(Self.vhdSuffix.count))) : nil
                    position[vdi] = entries.count
                    entries.append(
                        Entry(
                            report: report, hidden: image.footer.hidden, parent: parent,
                            uniqueID: CanonicalUUID(bytes: image.footer.uniqueID)))
                } catch {
                    // Listed, then gone before it could be read: renamed away under this scan.
                    if Syscall.lstatus(path) == nil { vanished = true }
                    damaged.append((vdi, error))
                }
            }
            var owners: [CanonicalUUID: Int] = [:]
            owners.reserveCapacity(entries.count)
            let torn = entries.indices.contains { index in
                guard let other = owners.updateValue(index, forKey: entries[index].uniqueID) else { return false }
                return entries[index].parent != entries[other].report.uuid && entries[other].parent != entries[index].report.uuid
            }
            if !(torn || vanished) || attempt + 1 == Self.scanAttempts { break }
            Syscall.sleep(seconds: 0.02)
        }
        for (vdi, error) in damaged {
            Diagnostics.debug("sr_scan: skipping damaged VDI \(vdi): \(error.message)")
            OperationLog.note(host: host, "sr_scan \(sr): VDI \(vdi) is damaged and not listed: \(error.message)")
        }
        // A hidden VDI being merged into its only child takes the child's identity (hidden flag
        // included) a moment before it is renamed over the child (VHDRepository+GC.swift, step
        // 3): seen then, it is still the deleted parent, not a VDI to list.
        for entry in entries {
            if let parent = entry.parent.flatMap({ position[$0] }), entries[parent].uniqueID == entry.uniqueID {
                entries[parent].hidden = true
            }
        }
        // Chain health (Docs/chain-health.md): a merge is waiting wherever a hidden VDI has one
        // child; it would copy at most the child's allocated blocks (one BAT read per merge).
        var childCount = [Int](repeating: 0, count: entries.count)
        for entry in entries { if let parent = entry.parent.flatMap({ position[$0] }) { childCount[parent] += 1 } }
        var mergeBytes = [UInt64?](repeating: nil, count: entries.count)  // by child
        for (index, entry) in entries.enumerated() {
            guard let parent = entry.parent.flatMap({ position[$0] }), entries[parent].hidden, childCount[parent] == 1 else { continue }
            let blocks = (try? VHDImage.open(vdiPath(entry.report.uuid)).allocationTable())?.count { $0 != VHDImage.unallocated } ?? 0
            mergeBytes[index] = UInt64(blocks) * VHDImage.blockSize
        }
        // Depth and merge bytes of every chain, each VHD counted once however many VDIs share it
        // (a 10,000-deep chain of snapshots stays linear); a loop is followed once round.
        var health = [(depth: Int, bytes: UInt64)?](repeating: nil, count: entries.count)
        func chainHealth(_ start: Int) -> (depth: Int, bytes: UInt64) {
            var path: [Int] = []
            var onPath: Set<Int> = []
            var above: (depth: Int, bytes: UInt64) = (0, 0)
            var link: Int? = start
            while let current = link {
                if let known = health[current] {
                    above = known
                    break
                }
                guard onPath.insert(current).inserted else { break }
                path.append(current)
                link = entries[current].parent.flatMap { position[$0] }
            }
            for index in path.reversed() {
                above = (above.depth + 1, above.bytes + (mergeBytes[index] ?? 0))
                health[index] = above
            }
            return health[start] ?? above
        }
        var reports: [VDIReport] = []
        var virtualAllocation: UInt64 = 0
        for (index, entry) in entries.enumerated() where !entry.hidden {
            var report = entry.report
            let chain = chainHealth(index)
            report.chainDepth = chain.depth
            report.coalesceBytes = chain.bytes
            // The nearest listed ancestor (hidden parents are skipped; cycles are cut).
            var ancestor = entry.parent.flatMap { position[$0] }
            var seen: Set<Int> = [index]
            while let candidate = ancestor, entries[candidate].hidden, !seen.contains(candidate) {
                seen.insert(candidate)
                ancestor = entries[candidate].parent.flatMap { position[$0] }
            }
            report.parent = ancestor.map { entries[$0].report.uuid }
            virtualAllocation += report.size
            reports.append(report)
        }
        var report = SRScanReport(
            uuid: sr, physicalUtilisation: physicalUtilisation ?? occupied,
            virtualAllocation: virtualAllocation, physicalSize: physicalSize, vdis: reports)
        report.collector = CollectorReport(
            running: SharedClaim.liveHolder("gc", srRoot: root, host: host) != nil,
            pendingMerges: mergeBytes.count { $0 != nil })
        return report
    }

    /// Size and usage of the filesystem holding the SR.
    public func fileSystemUsage() throws(StorageError) -> (size: UInt64, used: UInt64) {
        let status = try Syscall.fileSystemStatus(root)
        let size = UInt64(status.f_blocks) * UInt64(status.f_frsize)
        // An NFS server reports both numbers: more free than total must not trap.
        return (size, size - min(size, UInt64(status.f_bfree) * UInt64(status.f_frsize)))
    }
}
