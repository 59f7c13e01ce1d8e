#if canImport(Glibc)
    import Glibc
#endif

/// Coalescing (sr_gc): hidden VDIs with no children are removed; a hidden VDI H with exactly
/// one child C absorbs C's sectors and then takes C's place, so the chain loses a link and H's
/// space comes back.
///
/// One at a time per SR in the whole pool: the pass holds `<lock_dir>/<SR>/gc` (this host) and
/// the SR's shared `gc` claim (every host: `SharedClaim`, Docs/pools.md); a pass that finds
/// another host collecting does nothing. It does not hold the SR lock (so sr_scan and VDI verbs
/// on other VDIs go on during a long merge), only H's and C's host locks and shared claims for
/// the merge; C must not be attached or locked (it would be replaced under its user).
///
/// A merge, each step durable before the next:
/// 1. record {coalesce, H, C, C's unique id, both modification times};   `coalesce.journaled`
/// 2. `VHDImage.absorb`: C's sectors copied into H (see its order)       `coalesce.merged`
/// 3. H takes C's unique id and hidden flag (both footers) and C's modification time, so C's
///    children still agree with it;                                     `coalesce.identity-written`
/// 4. rename H.vhd over C.vhd, fsync the directory;                       `coalesce.renamed`
/// 5. H's attributes and the record removed.
/// No listed VDI reads a different byte at any instant: H is read only through C, which holds
/// every sector H gains. Between steps 3 and 4 H carries C's identity: chains read through it
/// as through the old H (it holds all that C holds), and sr_scan does not list it (a parent with
/// its child's unique id is a merge in progress), so no lock is needed against any host.
/// Recovery: before 3, H keeps its identity, its tail is repaired and its
/// time restored (the next pass merges again); from 3 on, the rename is completed.
extension VHDRepository {
    public struct GCReport: Sendable, Equatable {
        public var coalesced: [CanonicalUUID] = []
        public var reclaimed: [CanonicalUUID] = []
        public var skipped: [CanonicalUUID: String] = [:]
    }

    /// Runs passes until nothing more can be done.
    @discardableResult
    public func collectGarbage() throws(StorageError) -> GCReport {
        try requireAttached()
        let gcLock = try HostLock.acquire("\(host.lockDirectory)/\(sr)/gc", mode: .exclusive, timeout: host.lockTimeout)
        defer { gcLock.release() }
        var report = GCReport()
        // One collector per SR in the whole pool: another host at work makes this pass a no-op.
        var holder = ""
        guard let claim = try SharedClaim.tryAcquire("gc", srRoot: root, host: host, holder: &holder) else {
            OperationLog.note(host: host, "sr_gc \(sr): \(holder) is collecting this SR; nothing to do here")
            return report
        }
        defer { claim.release() }
        while true {
            let tree = try tree()
            // An unreadable VHD may be the child of any hidden VDI: removing or merging one away
            // could cut it from its data for good. A broken link (a loop, a parent of another unique
            // id) would merge the wrong data, and a chain of thousands would take as many passes.
            // Nothing is decided until sr_check's problems are fixed.
            let unsound = tree.unsound
            guard unsound.isEmpty else {
                OperationLog.note(
                    host: host,
                    "sr_gc \(sr): not coalescing or reclaiming while VHDs are unreadable or chains "
                        + "broken: " + unsound.keys.sorted().prefix(20).map { "\($0) (\(unsound[$0] ?? ""))" }.joinedText(separator: ", ")
                        + (unsound.count > 20 ? " and \(unsound.count - 20) more" : "") + " (run sr_check)")
                return report
            }
            // Nor are the VDIs of an operation that recovery could not complete (sr_check names it).
            let unsettled = unsettledVDIs()
            guard !unsettled.unreadable else {
                OperationLog.note(
                    host: host,
                    "sr_gc \(sr): not coalescing or reclaiming while an intent record is unreadable "
                        + "(run sr_check)")
                return report
            }
            var progressed = false
            for node in tree.nodes.values.sorted(by: { $0.vdi < $1.vdi }) where node.hidden && report.skipped[node.vdi] == nil {
                let children = tree.childrenOf(node.vdi)
                if let vdi = ([node.vdi] + children).first(where: unsettled.vdis.contains) {
                    report.skipped[node.vdi] = "VDI \(vdi) is named by an unfinished operation record"
                    continue
                }
                if children.isEmpty {
                    guard let lock = tryHoldVDI(node.vdi) else { continue }
                    defer { lock.release() }
                    try Syscall.unlinkIfPresent(vdiPath(node.vdi))
                    try Syscall.fsyncDirectory(root)
                    try metadata.remove(node.vdi)
                    report.reclaimed.append(node.vdi)
                    progressed = true
                } else if children.count == 1 {
                    switch try coalesce(node.vdi, into: children[0]) {
                    case .none:
                        report.coalesced.append(node.vdi)
                        OperationLog.note(host: host, "sr_gc \(sr): coalesced \(node.vdi) into \(children[0]) on host \(host.identity)")
                        progressed = true
                    case .some(let reason):
                        report.skipped[node.vdi] = reason
                        OperationLog.note(host: host, "sr_gc \(sr): not coalescing \(node.vdi) now: \(reason)")
                    }
                }
                if progressed { break }
            }
            if !progressed { return report }
        }
    }

    /// A merged child's file at least this large is closed by a keeper after this process exits.
    static let keptOnExitBytes: UInt64 = 32 << 20

    /// Merges hidden `parent` with its only child; nil when done, else why it was skipped.
    func coalesce(_ parent: CanonicalUUID, into child: CanonicalUUID) throws(StorageError) -> String? {
        // Both claims side by side: two lapsed ones cost one lease, not two.
        guard let holds = tryHoldVDIs([parent, child]) else { return "VDI \(parent) or \(child) is busy" }
        defer { holds.reversed().forEach { $0.release() } }
        do throws(StorageError) { try ensureUnlocked(child) } catch { return error.message }
        let tree = try tree()
        guard tree.unsound.isEmpty else { return "unreadable VHDs or broken chains in the SR (run sr_check)" }
        guard let node = tree.nodes[parent], node.hidden, tree.childrenOf(parent) == [child],
            let childNode = tree.nodes[child]
        else { return "the tree changed" }
        guard node.size <= childNode.size else { return "parent \(parent) is larger than its child" }
        if let hazard = mergeHazard(parent) ?? mergeHazard(child) { return hazard }
        guard let parentTime = Syscall.modificationTime(vdiPath(parent)),
            let childTime = Syscall.modificationTime(vdiPath(child))
        else { return "cannot stat the files" }
        let entry = try journal.begin(
            IntentRecord(
                operation: .coalesce,
                fields: [
                    "parent": parent.string, "child": child.string,
                    "child-unique-id": CanonicalUUID(bytes: childNode.uniqueID).string,
                    "parent-modification-time": Self.encode(parentTime), "child-modification-time": Self.encode(childTime)
                ]))
        FaultPoint.Coalesce.journaled.reach()
        do throws(StorageError) {
            let target = try VHDImage.open(vdiPath(parent), writable: true)
            let source = try VHDImage.open(vdiPath(child))
            try target.absorb(source)
            FaultPoint.Coalesce.merged.reach()
            // The identity, then C's modification time with the footer copy at 0, durable in
            // the same fsync (recovery sets both again once the end footer holds C's id).
            try target.setIdentity(uniqueID: childNode.uniqueID, hidden: childNode.hidden, keepingModificationTime: childTime)
            FaultPoint.Coalesce.identityWritten.reach()
            try Syscall.rename(vdiPath(parent), vdiPath(child))
            try Syscall.fsyncDirectory(root)
            FaultPoint.Coalesce.renamed.reach()
            // C's old file has no name now; its last close frees its page cache and blocks
            // (66 of 396 ms for 256 MiB on ext4): a large one is left to a keeper that closes
            // it once this process has exited (DetachedProcess.keepUntilExit).
            if let status = source.statusAtOpen, UInt64(status.st_blocks) * 512 >= Self.keptOnExitBytes {
                DetachedProcess.keepUntilExit(source.descriptor)
            }
            try metadata.remove(parent)
            try entry.finish()
        } catch {
            try settleAfterFailure(entry, error)
        }
        return nil
    }

    /// Why a VHD must not take part in a merge, nil when its footer is at its end and every block
    /// its BAT names lies before that footer. A merge trusts the BAT: an entry past the end would
    /// have it write there, and the repair after a failed merge would grow the file to reach it.
    func mergeHazard(_ vdi: CanonicalUUID) -> String? {
        do throws(StorageError) {
            let image = try VHDImage.open(vdiPath(vdi))
            guard !image.endFooterDamaged else { return "VDI \(vdi) has no valid footer at its end (run sr_check)" }
            let footerOffset = try image.fileSize() - UInt64(VHDFooter.size)  // open checked the file holds a footer
            for (block, entry) in try image.allocationTable().enumerated()
            where entry != VHDImage.unallocated
                && UInt64(entry) * VHDImage.sectorSize + VHDImage.bitmapSize + VHDImage.blockSize > footerOffset
            {
                return "VDI \(vdi): BAT entry \(block) points past the end of the file (run sr_check)"
            }
            return nil
        } catch {
            return "VDI \(vdi): \(error.message) (run sr_check)"
        }
    }

    func recoverCoalesce(_ record: IntentRecord) throws(StorageError) -> RecoveryOutcome {
        guard let parent = record.uuid("parent"), let child = record.uuid("child"), let childID = record.uuid("child-unique-id"),
            let parentTime = record["parent-modification-time"].flatMap(Self.decodeTime),
            let childTime = record["child-modification-time"].flatMap(Self.decodeTime)
        else {
            throw .io("coalesce record is incomplete")
        }
        guard fileExists(parent) else {
            try metadata.remove(parent)
            return .rolledForward
        }
        let image = try VHDImage.open(vdiPath(parent), writable: true)
        if image.footer.uniqueID == childID.bytes {
            let hidden = (try? VHDImage.open(vdiPath(child)))?.footer.hidden ?? image.footer.hidden
            try image.setIdentity(uniqueID: childID.bytes, hidden: hidden, keepingModificationTime: childTime)
            try Syscall.rename(vdiPath(parent), vdiPath(child))
            try Syscall.fsyncDirectory(root)
            try metadata.remove(parent)
            return .rolledForward
        }
        try image.repairTail()
        try image.setModificationTime(parentTime)
        try image.sync()
        return .rolledBack
    }
}

/// Starts `sr_gc` as a detached process after a delete, so the agent's call returns at once.
/// The worker is this executable (`/proc/self/exe`) with the same dconf on its standard input
/// (never in its argv: it may hold secrets) and the same environment; it runs in its own session
/// with its output discarded, and logs to the SMlog like any call.
public struct BackgroundCollector: Sendable {
    public var deviceConfiguration: DeviceConfiguration

    public init(deviceConfiguration: DeviceConfiguration) {
        self.deviceConfiguration = deviceConfiguration
    }

    /// `SM_GC_AFTER_DELETE=0` (or `gc_after_delete = false` in the host config) turns it off.
    public static func enabled(_ host: HostEnvironment) -> Bool {
        let value = Syscall.environment("SM_GC_AFTER_DELETE") ?? host.settings["gc_after_delete"] ?? "true"
        return !["0", "false", "no"].contains(value.lowercased())
    }

    /// The dconf as a document the worker parses back, written by libxml2.
    var document: [UInt8] {
        let keys = deviceConfiguration.values.keys.sorted()
        return Array(
            ResultDocument.render(
                ResultElement(
                    "dconf",
                    children: keys.map {
                        ResultElement($0, deviceConfiguration.values[$0] ?? "")
                    })
            ).utf8)
    }

    /// Spawns the worker; failures are logged, never thrown (the delete itself succeeded).
    public func start(sr: CanonicalUUID, host: HostEnvironment) {
        let executable = "/proc/self/exe"
        do throws(StorageError) {
            let child = try DetachedProcess.start(
                executable, arguments: [executable, "@-", Verb.srGC.rawValue, sr.string],
                input: document)
            Diagnostics.debug("started background sr_gc \(sr) as process \(child)")
        } catch {
            OperationLog.note(host: host, "SR \(sr): cannot start the background sr_gc (\(error.message)); run sr_gc by hand")
        }
    }
}
