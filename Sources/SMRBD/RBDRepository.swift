import SMCore

/// RBDSR's SR verbs: the SR is an RBD namespace of the dconf's pool (named by the SR UUID, or
/// dconf `namespace`) holding the marker object `sm-sr`, whose content is the SR UUID. Host
/// state (attached SR, attached VDIs) is `AttachState` under the run directory, as for every driver.
public struct RBDRepository {
    public static let contentType = "aio"
    /// The object that makes a namespace an SR; its content is the SR UUID.
    static let markerObject = "sm-sr"
    /// RBD sizes are kept in whole 512-byte sectors (the kernel client maps whole sectors).
    static let sector: UInt64 = 512

    public let credentials: CephCredentials
    public let host: HostEnvironment

    public init(credentials: CephCredentials, host: HostEnvironment) {
        self.credentials = credentials
        self.host = host
    }

    func namespace(_ sr: CanonicalUUID) -> String { credentials.namespace ?? sr.string }
    func state(_ sr: CanonicalUUID) -> AttachState { AttachState(host: host, sr: sr) }

    /// Connects, runs `body`, disconnects (standard error comes back before any error line).
    func withSession<T>(_ body: (CephSession) throws(StorageError) -> T) throws(StorageError) -> T {
        let session = try CephSession(credentials: credentials)
        defer { session.close() }
        return try body(session)
    }

    /// Connects into the SR's namespace; ENODEV when the namespace or its marker is missing.
    /// Recovers what crashed verbs left (RBDRepository+Recovery.swift) before `body` runs.
    /// The snapshot index entries of `prefetch` are read with the marker (for `locate`: no round trip of their own).
    /// `prefetchKeys` are further marker omap keys read in the same way (the clone index).
    func withSR<T>(
        _ sr: CanonicalUUID, prefetch: [CanonicalUUID] = [], prefetchKeys: [String] = [],
        _ body: (CephSession) throws(StorageError) -> T
    ) throws(StorageError) -> T {
        try withRecoveredSR(sr, prefetch: prefetch, prefetchKeys: prefetchKeys) { session, _ throws(StorageError) in try body(session) }
    }

    /// As `withSR`; `body` also gets the intents left waiting (their writer may still be alive).
    func withRecoveredSR<T>(
        _ sr: CanonicalUUID, prefetch: [CanonicalUUID] = [], prefetchKeys: [String] = [],
        _ body: (CephSession, [RBDIntent]) throws(StorageError) -> T
    ) throws(StorageError) -> T {
        try withSession { session throws(StorageError) in
            let records = try requireSR(sr, session, prefetch: prefetch.map { Self.snapshotIndexKey($0.string) } + prefetchKeys)
            let waiting = records.isEmpty ? [] : try recover(records, session)
            return try body(session, waiting)
        }
    }

    /// The marker's intent records, read with the marker itself (one round trip).
    private func requireSR(_ sr: CanonicalUUID, _ session: CephSession, prefetch: [String] = []) throws(StorageError) -> [String: String] {
        let name = namespace(sr)
        // No namespace lookup first: without the namespace there is no marker either (one round trip less).
        session.use(namespace: name)
        guard let (marker, records) = try session.readObjectAndMap(Self.markerObject, prefix: RBDIntent.prefix, keys: prefetch) else {
            throw StorageError.noSuchSR(sr.string)
        }
        let owner = String(decoding: marker, as: UTF8.self).trimmingWhitespace()
        guard owner == sr.string else {
            throw StorageError(
                code: .noSuchDevice,
                message: "SR \(sr) does not exist: namespace \(credentials.pool)/\(name) holds SR \(ArgumentParsing.printable(owner))")
        }
        return records
    }

    // MARK: SR verbs

    /// Creates the namespace (unless dconf names an existing one) and writes the marker. EEXIST
    /// when the marker is there; ENOSPC when `size` exceeds the pool's byte quota.
    public func create(sr: CanonicalUUID, size: UInt64) throws(StorageError) {
        try withSession { session throws(StorageError) in
            let name = namespace(sr)
            if size > 0, let quota = try session.poolByteQuota(), size > quota {
                throw StorageError.noSpace("SR size \(size) exceeds the byte quota \(quota) of pool \(credentials.pool)")
            }
            if try session.namespaceExists(name) {
                session.use(namespace: name)
                if let marker = try session.readObject(Self.markerObject) {
                    let owner = String(decoding: marker, as: UTF8.self).trimmingWhitespace()
                    throw StorageError(
                        code: .fileExists,
                        message: owner == sr.string
                            ? "SR \(sr) already exists"
                            : "namespace \(credentials.pool)/\(name) already holds SR \(ArgumentParsing.printable(owner))")
                }
            } else {
                try session.createNamespace(name)
                FaultPoint.RBDSRCreate.namespaceCreated.reach()
                session.use(namespace: name)
            }
            try session.writeObject(Self.markerObject, Array(sr.string.utf8))
        }
    }

    /// Idempotent. EBUSY while a VDI is attached here or any image is left in the namespace.
    /// Removes the marker, then the namespace (unless dconf named it: that one is the operator's).
    public func delete(sr: CanonicalUUID) throws(StorageError) {
        let state = state(sr)
        if let attached = state.attachedVDIs().first { throw StorageError.srHasAttachedVDI(sr.string, vdi: attached.string) }
        try withSession { session throws(StorageError) in
            let name = namespace(sr)
            guard try session.namespaceExists(name) else { return }
            session.use(namespace: name)
            if let (marker, records) = try session.readObjectAndMap(Self.markerObject, prefix: RBDIntent.prefix) {
                guard String(decoding: marker, as: UTF8.self).trimmingWhitespace() == sr.string else {
                    return  // another SR's namespace: nothing of this SR is there
                }
                let waiting = try recover(records, session)
                if let busy = waiting.first {
                    throw StorageError(
                        code: .resourceBusy,
                        message: "SR \(sr): a vdi_clone to \(busy.vdi) is under way (or its "
                            + "host died less than the OSDs' watch timeout ago); try again")
                }
            }
            try reclaimAll(session)
            let images = try RBDImage.list(session)
            guard images.isEmpty else { throw StorageError.srNotEmpty(sr.string, count: images.count) }
            FaultPoint.RBDSRDelete.swept.reach()
            try session.removeObject(Self.markerObject)
            FaultPoint.RBDSRDelete.markerRemoved.reach()
            if credentials.namespace == nil {
                session.use(namespace: "")
                try session.removeNamespace(name)
            }
        }
        try state.forgetSR()
    }

    /// Idempotent: checks the SR on the cluster, then records the attach.
    public func attach(sr: CanonicalUUID) throws(StorageError) {
        try withSR(sr) { _ throws(StorageError) in }
        try state(sr).markSRAttached(details: "pool=\(credentials.pool)\nnamespace=\(namespace(sr))\n")
    }

    /// Idempotent; EBUSY while a VDI is attached here. Touches nothing on the cluster.
    public func detach(sr: CanonicalUUID) throws(StorageError) {
        let state = state(sr)
        if let attached = state.attachedVDIs().first { throw StorageError.srHasAttachedVDI(sr.string, vdi: attached.string) }
        try state.clearSRAttached()
    }

    /// Every listed VDI: size, bytes used (fast-diff against the previous snapshot), parent,
    /// read_only, locked. physical_size is the pool's byte quota when one is set (else the sum
    /// of the VDIs' sizes: a thin pool has no other bound an SR can report).
    public func scan(sr: CanonicalUUID) throws(StorageError) -> SRScanReport {
        try requireAttached(sr)
        return try withRecoveredSR(sr) { session, waiting throws(StorageError) in
            var tree = try RBDTree(session: session)
            // What a clone under way (or one whose dead writer's lock has not expired) has made so far.
            let unfinished = Set(waiting.flatMap(\.unfinishedVDIs))
            tree.unlisted = unfinished
            var vdis: [VDIReport] = []
            for record in tree.images.values.sorted(by: { $0.name < $1.name }) {
                let image = try RBDImage(session, name: record.name)
                let header = try image.headerObject
                var previous: String?
                for snapshot in record.snapshots {
                    defer { previous = snapshot.name }
                    guard let uuid = CanonicalUUID(canonical: snapshot.name),
                        !record.isHidden(snapshot: snapshot.name), !unfinished.contains(snapshot.name)
                    else { continue }
                    try image.select(snapshot: snapshot.name)
                    var entry = VDIReport(
                        uuid: uuid, size: snapshot.size,
                        utilisation: try image.usedBytes(since: previous, size: snapshot.size))
                    entry.readOnly = true
                    entry.label = record.isBaseCopy(snapshot: snapshot.name) ? "base copy" : ""
                    entry.parent = tree.listedParent(of: .snapshot(image: record.name, name: snapshot.name))
                    entry.locked = try !RBDLocks(session: session, headerObject: header, vdi: uuid).holders().isEmpty
                    vdis.append(entry)
                }
                try image.select(snapshot: nil)
                guard let uuid = CanonicalUUID(canonical: record.name), !record.isHidden,
                    !unfinished.contains(record.name)
                else { continue }
                var entry = VDIReport(
                    uuid: uuid, size: record.size,
                    utilisation: try image.usedBytes(since: record.snapshots.last?.name, size: record.size))
                entry.parent = tree.listedParent(of: .image(record.name))
                entry.locked = try !RBDLocks(session: session, headerObject: header, vdi: uuid).holders().isEmpty
                vdis.append(entry)
            }
            vdis.sort { $0.uuid < $1.uuid }
            let allocated = vdis.reduce(UInt64(0)) { $0 + $1.size }
            let used = vdis.reduce(UInt64(0)) { $0 + $1.utilisation }
            var report = SRScanReport(
                uuid: sr, physicalUtilisation: used, virtualAllocation: allocated,
                physicalSize: try session.poolByteQuota() ?? allocated, vdis: vdis)
            report.label = "\(credentials.pool)/\(namespace(sr))"
            return report
        }
    }

    func requireAttached(_ sr: CanonicalUUID) throws(StorageError) {
        guard state(sr).isSRAttached else { throw StorageError.srNotAttached(sr.string) }
    }
}
