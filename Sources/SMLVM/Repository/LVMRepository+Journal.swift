import SMCore

extension FaultPoint {
    /// vdi_create on a VHD SR: the VHD is written on the temporary volume, not yet renamed.
    public enum LVMCreate: String, NamedFaultPoint {
        case journaled = "lvm-create.journaled"
        case written = "lvm-create.written"
    }

    /// vdi_snapshot on a VHD SR (Docs/LVMSR.md, "Snapshot and clone").
    public enum LVMSnapshot: String, NamedFaultPoint {
        case journaled = "lvm-snapshot.journaled"
        case childCreated = "lvm-snapshot.child-created"
        case sourceRenamed = "lvm-snapshot.source-renamed"
        case committed = "lvm-snapshot.committed"
    }

    /// vdi_resize of a VHD VDI: the VHD has its new size, the size tag not yet.
    public enum LVMResize: String, NamedFaultPoint {
        case journaled = "lvm-resize.journaled"
        case resized = "lvm-resize.vhd-resized"
    }

    /// vdi_clone on a VHD SR of a VDI without children.
    public enum LVMClone: String, NamedFaultPoint {
        case journaled = "lvm-clone.journaled"
        case childrenCreated = "lvm-clone.children-created"
        case baseRenamed = "lvm-clone.base-renamed"
        case destinationRenamed = "lvm-clone.destination-renamed"
        case committed = "lvm-clone.committed"
    }

    /// sr_gc coalescing hidden H into its only child C on a VHD SR (Docs/LVMSR.md, "sr_gc").
    public enum LVMCoalesce: String, NamedFaultPoint {
        case journaled = "lvm-coalesce.journaled"
        case merged = "lvm-coalesce.merged"
        case setAside = "lvm-coalesce.child-set-aside"
        case identityWritten = "lvm-coalesce.identity-written"
        case renamed = "lvm-coalesce.renamed"
        case committed = "lvm-coalesce.committed"
    }
}

/// An intent record of a VHD SR: one tag of the volume group,
/// `sm_intent=<operation>:<UUID>...:host=<host>[:sanlock=<id>]`, added (one metadata commit)
/// before the first step of a multi-step change and removed after the last. It lives in the
/// group's own metadata, so whichever host runs the next verb on the SR sees it; it names the
/// host that wrote it (its identity, `host_id`, and in a shared group its sanlock host id), and
/// another host settles it only once sanlock knows that host dead or gone (`LVMRepository.recover`,
/// `RecordOwnership`). A record without a host (written before records named one) is settled as
/// it always was: by whichever host finds its VDIs free of its own host locks.
struct LVMIntent: Equatable {
    enum Operation: String {
        /// vdi_create: `create:<VDI>`.
        case create
        /// vdi_snapshot: `snapshot:<source>:<destination>`.
        case snapshot
        /// vdi_clone of a VDI without children: `clone:<source>:<destination>:<base>`.
        case clone
        /// vdi_clone of a VDI with children (a new child of it): `clone-child:<source>:<destination>`.
        case cloneChild = "clone-child"
        /// vdi_resize of a VHD VDI: `resize:<VDI>`.
        case resize
        /// sr_gc merging hidden H into its only child C: `coalesce:<H>:<C>`.
        case coalesce
    }

    /// The host that wrote a record: its identity (`host_id`, by default the short host name)
    /// and, in a shared group, the sanlock host id its leases are held under (which is what
    /// sanlock judges alive or dead).
    struct Owner: Equatable {
        var host: String
        var sanlockHostID: Int?

        /// How a message names the host: `h1 (sanlock host id 1)`.
        var description: String { sanlockHostID.map { "\(host) (sanlock host id \($0))" } ?? host }
    }

    var operation: Operation
    var vdis: [CanonicalUUID]
    /// Nil for a record written before records named their host.
    var owner: Owner?

    static let prefix = "sm_intent="
    static let hostField = "host="
    static let sanlockField = "sanlock="

    var tag: String {
        var parts = [operation.rawValue] + vdis.map(\.string)
        if let owner {
            parts.append(Self.hostField + owner.host)
            if let id = owner.sanlockHostID { parts.append(Self.sanlockField + String(id)) }
        }
        return Self.prefix + parts.joinedText(separator: ":")
    }

    init(_ operation: Operation, _ vdis: [CanonicalUUID], owner: Owner? = nil) {
        self.operation = operation
        self.vdis = vdis
        self.owner = owner
    }

    /// Parses a group tag; nil for a tag that is not an intent record. EIO for a record that is
    /// damaged (unknown operation, wrong number of UUIDs, a host field that is not one).
    init?(tag: String) throws(StorageError) {
        guard tag.hasPrefix(Self.prefix) else { return nil }
        let parts = tag.dropFirst(Self.prefix.count).split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard let operation = Operation(rawValue: parts[0]) else { throw .io("unknown intent record '\(tag)'") }
        var vdis: [CanonicalUUID] = []
        var host: String?
        var sanlockHostID: Int?
        for part in parts.dropFirst() {
            if part.hasPrefix(Self.hostField), host == nil, sanlockHostID == nil {
                let name = String(part.dropFirst(Self.hostField.count))
                guard !name.isEmpty else { throw .io("damaged intent record '\(tag)'") }
                host = name
            } else if part.hasPrefix(Self.sanlockField), host != nil, sanlockHostID == nil {
                guard
                    let id = ArgumentParsing.boundedDecimal(
                        String(part.dropFirst(Self.sanlockField.count)), in: VolumeGroupLocking.hostIDRange)
                else { throw .io("damaged intent record '\(tag)'") }
                sanlockHostID = id
            } else {
                guard host == nil, let uuid = CanonicalUUID(canonical: part) else { throw .io("damaged intent record '\(tag)'") }
                vdis.append(uuid)
            }
        }
        let expected =
            switch operation {
            case .create, .resize: 1
            case .snapshot, .cloneChild, .coalesce: 2
            case .clone: 3
            }
        guard vdis.count == expected else { throw .io("damaged intent record '\(tag)'") }
        self.operation = operation
        self.vdis = vdis
        self.owner = host.map { Owner(host: $0, sanlockHostID: sanlockHostID) }
    }
}

extension LVMRepository {
    /// The temporary name a new VHD is written under before its rename publishes it.
    static func temporaryName(for vdi: CanonicalUUID) -> String { "\(logicalVolumeName(for: vdi)).new" }

    /// Settles every intent record in the group's tags. `held` names the VDIs whose host locks
    /// the running verb holds (the dispatcher's); the others a record names are locked here
    /// without waiting, and a record whose VDIs are busy (a live operation on this host) is left
    /// for the next pass. A record of another host of a shared group is settled only once sanlock
    /// reports that host dead or gone (`RecordOwnership`); until then it is left, and a verb on a
    /// VDI it names is EBUSY naming the host. Each step of a replay is one LVM command and each
    /// is idempotent, so a crash during recovery is recovered by the next pass. Returns true when
    /// it changed anything.
    ///
    /// A record that cannot be replayed stays and is logged; the verb fails (EIO) only when the
    /// record names one of `held`.
    @discardableResult
    func recover(sr: CanonicalUUID, group: VolumeGroup, tags: [String], holding held: Set<CanonicalUUID>) throws(StorageError) -> Bool {
        var changed = false
        var blocking: StorageError?
        var records: [(tag: String, intent: LVMIntent)] = []
        for tag in tags where tag.hasPrefix(LVMIntent.prefix) {
            do throws(StorageError) {
                guard let parsed = try LVMIntent(tag: tag) else { continue }
                records.append((tag, parsed))
            } catch {
                OperationLog.note(host: host, "SR \(sr): intent record \(tag) cannot be read; left in place")
            }
        }
        let ownerships = ownerships(of: records.map(\.intent), group: group)
        for ((tag, intent), ownership) in zip(records, ownerships) {
            switch ownership {
            case .thisHost: break
            case .liveHost(let owner, let state):
                OperationLog.note(
                    host: host, "SR \(sr): \(tag) is of host \(owner.description), which sanlock reports \(state); left in place")
                if blocking == nil, let vdi = intent.vdis.first(where: held.contains) {
                    blocking = .recordOfLiveHost(vdi, intent: intent, owner: owner, state: state)
                }
                continue
            case .goneHost(let owner, let state):
                OperationLog.note(
                    host: host, "SR \(sr): \(tag) is of host \(owner.description), which sanlock reports \(state); settling it")
            }
            var locks: [HostLock] = []
            defer { locks.forEach { $0.release() } }
            var busy = false
            for vdi in intent.vdis where !held.contains(vdi) {
                guard let lock = try? HostLock.acquire("\(host.lockDirectory)/\(sr)/\(vdi)", mode: .exclusive, timeout: 0) else {
                    busy = true
                    break
                }
                locks.append(lock)
            }
            if busy { continue }
            do throws(StorageError) {
                let outcome = try replay(intent, group: group)
                try group.changeTags(removing: [tag])
                changed = true
                OperationLog.note(host: host, "SR \(sr): recovered \(tag): \(outcome)")
            } catch {
                OperationLog.note(host: host, "SR \(sr): recovery of \(tag) failed, record left: \(error.message)")
                if blocking == nil, let vdi = intent.vdis.first(where: held.contains) {
                    blocking = .io(
                        "VDI \(vdi) is named by an interrupted \(intent.operation.rawValue) in SR \(sr) "
                            + "that cannot be completed (\(error.message))")
                }
            }
        }
        if let blocking { throw blocking }
        return changed
    }

    /// Completes or rolls back one record from what the group holds. Every rename is the commit
    /// of its step: the state is read back from the volume names alone.
    private func replay(_ intent: LVMIntent, group: VolumeGroup) throws(StorageError) -> RecoveryOutcome {
        let names = Set(try group.contents().volumes.map(\.name))
        func exists(_ name: String) -> Bool { names.contains(name) }
        func remove(_ name: String) throws(StorageError) { if exists(name) { try group.logicalVolume(name).remove() } }
        func rename(_ from: String, _ to: String) throws(StorageError) {
            if exists(from), !exists(to) { try group.logicalVolume(from).rename(to: to) }
        }
        let vdis = intent.vdis
        switch intent.operation {
        case .create:
            try remove(Self.temporaryName(for: vdis[0]))
            return .rolledBack
        case .snapshot:
            let (source, destination) = (vdis[0], vdis[1])
            let sourceName = Self.logicalVolumeName(for: source)
            if exists(sourceName), !exists(Self.logicalVolumeName(for: destination)) {
                // Before the source's rename: the child is not yet anything's.
                try remove(Self.temporaryName(for: source))
                return .rolledBack
            }
            try rename(Self.temporaryName(for: source), sourceName)
            return .rolledForward
        case .clone:
            let (source, destination, base) = (vdis[0], vdis[1], vdis[2])
            if exists(Self.logicalVolumeName(for: source)), !exists(Self.logicalVolumeName(for: base)) {
                try remove(Self.temporaryName(for: source))
                try remove(Self.temporaryName(for: destination))
                return .rolledBack
            }
            try rename(Self.temporaryName(for: destination), Self.logicalVolumeName(for: destination))
            try rename(Self.temporaryName(for: source), Self.logicalVolumeName(for: source))
            return .rolledForward
        case .cloneChild:
            try remove(Self.temporaryName(for: vdis[1]))
            return .rolledBack
        case .coalesce:
            return try replayCoalesce(parent: vdis[0], child: vdis[1], group: group, names: names)
        case .resize:
            // The VHD is the authority: its size goes into the tag (whether or not it changed).
            let name = Self.logicalVolumeName(for: vdis[0])
            guard let found = try group.logicalVolume(named: name)?.volume else { return .rolledBack }
            let volume = group.logicalVolume(name)
            let wasActive = found.activation == .active
            if !wasActive { try volume.activate() }
            defer { if !wasActive { try? volume.deactivate() } }
            guard Self.isBlockDevice(volume.path) else {
                throw .io("\(volume.qualifiedName): the VHD's size cannot be read (LVM activation is disabled on this host)")
            }
            let size = try VHDImage.openBlockDevice(volume.path).size
            let old = found.tags.filter { $0.hasPrefix(VDITags.sizePrefix) }
            try volume.changeTags(adding: ["\(VDITags.sizePrefix)\(size)"], removing: old.filter { $0 != "\(VDITags.sizePrefix)\(size)" })
            return .rolledForward
        }
    }
}
