import SMCore

/// A VHD SR on a shared volume group (LVMoISCSISR): what keeps one host from settling, merging or
/// activating under another (Docs/LVMoISCSISR.md, "VHD VDIs on a shared group"). Nothing here is
/// a lease of our own: sanlock judges whether a host lives (`PoolView`), lvmlockd's LV locks keep
/// a leaf on one host and a merge's parent from being read elsewhere, and the collector's pass
/// holds the exclusive lock of a small volume (`poolCollectorName`).

/// How this host sees the other hosts of a shared group: its sanlock host id and the hosts
/// sanlock lists in the group's lock space. A local group has none (one host: every record is
/// this host's).
struct PoolView {
    var hostID: Int
    /// The hosts listed under the group's lock space (nil when it is not listed on this host).
    var hosts: (_ volumeGroup: String) throws(StorageError) -> [SanlockLockspace.Host]?

    /// sanlock's own answer (`sanlock client gets -h 1`).
    static func sanlock(hostID: Int) -> PoolView {
        PoolView(hostID: hostID) { (group: String) throws(StorageError) -> [SanlockLockspace.Host]? in
            try SanlockLockspace(volumeGroup: group).currentHosts()
        }
    }
}

/// Whose an intent record is, and whether its operation may still be running elsewhere.
enum RecordOwnership: Equatable {
    /// This host's, a record that names no host (written before records named one), or any
    /// record of a local group: this host's host locks decide, as they always did.
    case thisHost
    /// Another host that sanlock does not know to be dead (LIVE, or not yet judged: UNKNOWN,
    /// FAIL, not listed, or sanlock not answering): its operation may be running; left alone.
    case liveHost(LVMIntent.Owner, state: String)
    /// Another host that sanlock reports DEAD (its lease not renewed for host_dead_seconds: its
    /// LV locks may be taken) or FREE (it left the lock space): nothing of it runs.
    case goneHost(LVMIntent.Owner, state: String)

    /// The judgement of a record written by `owner`, on a host with sanlock host id `hostID`
    /// (nil: a local group), from the hosts sanlock lists (`hosts`: nil when the lock space is
    /// not listed, empty before sanlock has read the leases, or `.failure` when sanlock could not
    /// be asked).
    static func judge(
        _ owner: LVMIntent.Owner?, hostID: Int?, hosts: Result<[SanlockLockspace.Host]?, StorageError>
    ) -> RecordOwnership {
        guard let owner, let hostID, let writer = owner.sanlockHostID, writer != hostID else { return .thisHost }
        switch hosts {
        case .failure(let error): return .liveHost(owner, state: "not known (\(error.message))")
        case .success(nil): return .liveHost(owner, state: "not known (the lock space is not started on this host)")
        case .success(.some(let listed)):
            guard let found = listed.first(where: { $0.id == writer }) else {
                return .liveHost(owner, state: listed.isEmpty ? "not known yet (sanlock has not read the leases)" : "not listed")
            }
            if found.timestamp == 0 || found.state == "FREE" { return .goneHost(owner, state: "FREE") }
            if found.state == "DEAD" { return .goneHost(owner, state: "DEAD") }
            return .liveHost(owner, state: found.state)
        }
    }
}

extension StorageError {
    /// EBUSY: a verb names a VDI of an unfinished operation of another host that may be alive.
    static func recordOfLiveHost(_ vdi: CanonicalUUID, intent: LVMIntent, owner: LVMIntent.Owner, state: String) -> StorageError {
        StorageError(
            code: .resourceBusy,
            message: "VDI \(vdi) is named by an unfinished \(intent.operation.rawValue) of host \(owner.description), "
                + "which sanlock reports \(state); it is settled once sanlock reports that host dead or gone")
    }
}

extension LVMRepository {
    /// The volume whose exclusive LV lock a collector's pass holds in a shared group: one extent,
    /// made by the first sr_gc, removed by sr_delete.
    static let poolCollectorName = "sm-gc"

    /// A new intent record of this host.
    func intent(_ operation: LVMIntent.Operation, _ vdis: [CanonicalUUID]) -> LVMIntent {
        LVMIntent(operation, vdis, owner: LVMIntent.Owner(host: host.identity, sanlockHostID: poolView?.hostID))
    }

    /// Judges the records `intents` of `group`, asking sanlock at most once (and only when a
    /// record names another sanlock host).
    func ownerships(of intents: [LVMIntent], group: VolumeGroup) -> [RecordOwnership] {
        var hosts: Result<[SanlockLockspace.Host]?, StorageError>?
        return intents.map { intent in
            guard let view = poolView, let writer = intent.owner?.sanlockHostID, writer != view.hostID else { return .thisHost }
            if hosts == nil { hosts = Result { () throws(StorageError) in try view.hosts(group.name) } }
            return RecordOwnership.judge(intent.owner, hostID: view.hostID, hosts: hosts ?? .success(nil))
        }
    }

    /// In a shared group, takes the pool's collector lock: the exclusive LV lock of
    /// `poolCollectorName` (made here when missing), by activating it. Returns the volume (to
    /// deactivate at the end of the pass), nil in a local group, or the reason another host's
    /// collector holds it. A collector killed on a live host leaves it active (held) there until
    /// that host's next sr_gc ends; a dead host's is released with its lease.
    func takePoolCollectorLock(group: VolumeGroup, extentSize: UInt64) throws(StorageError) -> Result<LogicalVolume?, StorageError> {
        guard locking.isShared else { return .success(nil) }
        let volume = group.logicalVolume(Self.poolCollectorName)
        if try group.logicalVolume(named: Self.poolCollectorName) == nil {
            // lvcreate activates a new volume of a shared group exclusively: the lock is ours.
            do throws(StorageError) {
                return .success(try group.createLogicalVolume(named: Self.poolCollectorName, size: extentSize))
            } catch {
                guard try group.logicalVolume(named: Self.poolCollectorName) != nil else { throw error }
            }
        }
        do throws(StorageError) {
            try volume.activate()
        } catch {
            guard error.code == .resourceBusy else { throw error }
            return .failure(error)
        }
        return .success(volume)
    }
}
