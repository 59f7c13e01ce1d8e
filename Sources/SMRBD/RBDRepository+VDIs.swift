import SMCore
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// RBDSR's VDI verbs; the mapping is in `RBDTree` and Docs/RBDSR.md.
extension RBDRepository {
    static func rounded(_ size: UInt64) -> UInt64 { (size + sector - 1) / sector * sector }

    /// ENOSPC when the pool has a byte quota and the SR's provisioned sizes plus `adding` pass it.
    /// (Writes past a quota do not fail: the OSDs stall them until an operation timeout, so a
    /// thin pool's quota is enforced at provisioning time.) Reads the whole SR only when a quota is set.
    func requireRoom(_ session: CephSession, adding: UInt64, what: String) throws(StorageError) {
        guard let quota = try session.poolByteQuota() else { return }
        let provisioned = try RBDTree(session: session).images.values.reduce(UInt64(0)) { $0 + $1.size }
        guard provisioned + adding <= quota else {
            throw StorageError.noSpace(
                "\(what) needs \(adding) bytes; the SR has \(provisioned) provisioned and pool "
                    + "\(credentials.pool) has a byte quota of \(quota)")
        }
    }

    /// Where the VDI lives, hidden or not; nil when there is none. At most three cluster reads:
    /// the image of that name, else the snapshot index (`sm-sr`'s omap: snapshot UUID -> image),
    /// then that image's snapshot list.
    /// `writable` opens the holding image for writing (with a watch), for the verbs that change it.
    /// `knownHidden: false` skips reading an image's hidden mark (the caller reads it when it matters).
    func locate(
        _ session: CephSession, _ vdi: CanonicalUUID, writable: Bool = false,
        knownHidden: Bool = true
    ) throws(StorageError) -> (location: RBDTree.Location, hidden: Bool, image: RBDImage)? {
        if let image = try RBDImage.openIfPresent(session, name: vdi.string, readOnly: !writable) {
            return (.image(vdi.string), knownHidden ? try image.metadata(RBDTree.hiddenKey) == vdi.string : false, image)
        }
        guard let (holder, image) = try snapshotLocation(session, vdi, writable: writable) else { return nil }
        return (.snapshot(image: holder, name: vdi.string), try image.metadata(RBDTree.hiddenKey(vdi.string)) != nil, image)
    }

    /// The image holding the snapshot VDI `vdi` (from the snapshot index), open; nil when none does.
    func snapshotLocation(
        _ session: CephSession, _ vdi: CanonicalUUID,
        writable: Bool = false
    ) throws(StorageError) -> (holder: String, image: RBDImage)? {
        guard let holder = try session.mapValue(Self.snapshotIndexKey(vdi.string), in: Self.markerObject),
            let image = try RBDImage.openIfPresent(session, name: holder, readOnly: !writable),
            try image.snapshots().contains(where: { $0.name == vdi.string })
        else { return nil }
        return (holder, image)
    }

    /// The VDI if it exists and is listed, with its image open; ENODEV otherwise.
    func visible(
        _ session: CephSession, _ vdi: CanonicalUUID, sr: CanonicalUUID,
        writable: Bool = false
    ) throws(StorageError) -> (location: RBDTree.Location, image: RBDImage) {
        guard let found = try locate(session, vdi, writable: writable), !found.hidden else {
            throw StorageError.noSuchVDI(vdi.string, sr: sr.string)
        }
        return (found.location, found.image)
    }

    /// The snapshot index key of a snapshot VDI in the marker's omap; its value is the image holding it.
    static func snapshotIndexKey(_ snapshot: String) -> String { "snapshot.\(snapshot)" }

    /// Not idempotent: EEXIST when an image or snapshot of that UUID exists (hidden ones too).
    public func createVDI(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws(StorageError) {
        try requireAttached(sr)
        try withSR(sr, prefetch: [vdi]) { session throws(StorageError) in
            // An image of that name (hidden or not) makes rbd_create4 answer EEXIST; a snapshot of it
            // is looked up here (its index entry came with the marker).
            if try snapshotLocation(session, vdi) != nil { throw StorageError.vdiExists(vdi.string, sr: sr.string) }
            let size = Self.rounded(size)
            try requireRoom(session, adding: size, what: "VDI \(vdi)")
            do throws(StorageError) {
                try RBDImage.create(session, name: vdi.string, size: size)
            } catch  where error.code == .fileExists {
                throw StorageError.vdiExists(vdi.string, sr: sr.string)
            }
        }
    }

    /// Idempotent. EBUSY while attached here or (an image) open anywhere. A VDI that others
    /// depend on is hidden, and removed with the last of them (Docs/RBDSR.md, "Delete"). Removing
    /// a clone or a snapshot is recorded as an intent first: what it leaves to reclaim after it
    /// (hidden ancestors) is reclaimed by the next verb if this one dies.
    public func deleteVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws(StorageError) {
        try requireAttached(sr)
        if state(sr).isVDIAttached(vdi) { throw StorageError.vdiAttached(vdi.string) }
        try withSR(sr, prefetch: [vdi], prefetchKeys: [Self.cloneIndexKey(vdi.string)]) { session throws(StorageError) in
            if try deleteIndexedClone(session, vdi) { return }
            guard let found = try locate(session, vdi, knownHidden: false) else { return }
            switch found.location {
            case .image(let name):
                let image = found.image
                if !(try image.snapshots().isEmpty) {
                    // Only an image with snapshots can be hidden (a hidden one without is reclaimed below).
                    if try image.metadata(RBDTree.hiddenKey) == name { return }
                    try RBDImage(session, name: name, readOnly: false).setMetadata(RBDTree.hiddenKey, name)
                    return
                }
                let parent = try sameNamespaceParent(session, image)
                let intent = parent.map { RBDIntent(vdi: name, kind: .deleteImage(parent: $0.image, snapshot: $0.snapshot)) }
                if let intent {
                    try record(intent, session)
                    FaultPoint.RBDDelete.intentWritten.reach()
                }
                // rbd_remove itself refuses (EBUSY) while any client watches the image, i.e. has it
                // open or mapped on some host.
                do throws(StorageError) {
                    try RBDImage.remove(session, name: name)
                } catch  where error.code == .resourceBusy {
                    if let intent { try finish(intent, session) }
                    throw StorageError(
                        code: .resourceBusy, message: "VDI \(vdi) is open by another client (mapped on a host?); detach it there first")
                }
                FaultPoint.RBDDelete.removed.reach()
                if let parent, let intent {
                    try reclaim(session, image: parent.image, snapshot: parent.snapshot, parentID: parent.id)
                    FaultPoint.RBDDelete.reclaimed.reach()
                    try finish(intent, session, alsoRemove: [Self.cloneIndexKey(name)])
                }
            case .snapshot(let imageName, let name):
                let image = found.image
                if found.hidden { return }
                if !(try image.children(of: name).isEmpty) {
                    try RBDImage(session, name: imageName, readOnly: false).setMetadata(RBDTree.hiddenKey(name), "1")
                    return
                }
                let intent = RBDIntent(vdi: name, kind: .deleteSnapshot(image: imageName))
                try record(intent, session)
                FaultPoint.RBDDelete.intentWritten.reach()
                try RBDImage(session, name: imageName, readOnly: false).removeSnapshot(name)
                FaultPoint.RBDDelete.removed.reach()
                try forgetSnapshot(session, image: imageName, snapshot: name)
                try reclaimImage(session, name: imageName)
                FaultPoint.RBDDelete.reclaimed.reach()
                try finish(intent, session, alsoRemove: [Self.snapshotIndexKey(name)])
            }
        }
    }

    /// The clone index key of a clone image in the marker's omap; its value is
    /// `<parent image> <parent snapshot> <parent RBD id>`. vdi_clone of an image writes it in the
    /// same omap write as its intent record; it goes with the clone (vdi_delete's last write, a
    /// rollback's, or before a hidden clone is reclaimed), so that an entry never outlives its image
    /// except for an image removed behind RBDSR's back (then it names a parent that a reclaim
    /// leaves alone unless that snapshot is hidden and without clones, which is always safe).
    static func cloneIndexKey(_ image: String) -> String { "clone.\(image)" }

    /// vdi_delete of a clone the clone index knows (the entry came with the marker): its parent is
    /// known without opening it, so the delete is the intent record, `rbd_remove` (whose own
    /// checks answer the questions the open answered: ENOTEMPTY when it has snapshots, EBUSY
    /// while a client watches it or holds its exclusive lock), the parent's hidden mark (one omap
    /// read) and the record's removal. When `rbd_remove` refuses, the record goes and the general
    /// path decides (hide it, or EBUSY), as before. False when the index does not know `vdi` (or a
    /// snapshot VDI of that UUID is indexed): the general path runs.
    private func deleteIndexedClone(_ session: CephSession, _ vdi: CanonicalUUID) throws(StorageError) -> Bool {
        let name = vdi.string
        guard try session.mapValue(Self.snapshotIndexKey(name), in: Self.markerObject) == nil,
            let entry = try session.mapValue(Self.cloneIndexKey(name), in: Self.markerObject)
        else { return false }
        let words = entry.split(separator: " ").map(String.init)
        guard words.count == 3 else { return false }
        let (parent, snapshot, parentID) = (words[0], words[1], words[2])
        let intent = RBDIntent(vdi: name, kind: .deleteImage(parent: parent, snapshot: snapshot))
        try record(intent, session)
        FaultPoint.RBDDelete.intentWritten.reach()
        let code = RBDImage.removeAnswering(session, name: name)
        if code == -ENOTEMPTY || code == -EBUSY {
            try finish(intent, session)
            return false
        }
        guard code == 0 || code == -ENOENT else {
            try finish(intent, session)
            throw .ceph(code, "removing RBD image \(name)")
        }
        FaultPoint.RBDDelete.removed.reach()
        try reclaim(session, image: parent, snapshot: snapshot, parentID: parentID)
        FaultPoint.RBDDelete.reclaimed.reach()
        try finish(intent, session, alsoRemove: [Self.cloneIndexKey(name)])
        return true
    }

    /// The clone parent of `image` when it is in the SR's namespace (with the parent's RBD id).
    private func sameNamespaceParent(
        _ session: CephSession, _ image: RBDImage
    ) throws(StorageError) -> (image: String, snapshot: String, id: String)? {
        guard let parent = try image.parent(), parent.namespace == (session.namespace ?? "") else { return nil }
        return (parent.image, parent.snapshot, parent.id)
    }

    /// What RBDSR keeps about a removed snapshot: its base-copy mark, its index entry, then its
    /// hidden mark (last: while it is there, a sweep knows the snapshot's image may be reclaimed).
    func forgetSnapshot(_ session: CephSession, image name: String, snapshot: String) throws(StorageError) {
        if let image = try RBDImage.openIfPresent(session, name: name, readOnly: false) {
            try image.removeMetadata(RBDTree.baseCopyKey(snapshot))
            try session.removeMapValue(Self.snapshotIndexKey(snapshot), in: Self.markerObject)
            try image.removeMetadata(RBDTree.hiddenKey(snapshot))
        } else {
            try session.removeMapValue(Self.snapshotIndexKey(snapshot), in: Self.markerObject)
        }
    }

    /// After a clone of `image@snapshot` went: removes that snapshot if it is hidden and has no
    /// clones left (or forgets it, if a crash removed it already), then its image if hidden and
    /// without snapshots, and so on up. With the image's RBD id (`parentID`), the common case (the
    /// snapshot is not hidden: nothing to do) is one omap read of its header object, where librbd
    /// keeps the hidden mark, instead of opening the image (a dozen messages, its own parent's too).
    func reclaim(_ session: CephSession, image name: String, snapshot: String, parentID: String? = nil) throws(StorageError) {
        if let parentID,
            try session.mapValue(
                RBDImage.metadataMapKey(RBDTree.hiddenKey(snapshot)), in: RBDImage.headerObject(id: parentID)) == nil
        {
            return
        }
        guard let image = try RBDImage.openIfPresent(session, name: name),
            try image.metadata(RBDTree.hiddenKey(snapshot)) != nil
        else { return }
        if try image.snapshots().contains(where: { $0.name == snapshot }) {
            guard try image.children(of: snapshot).isEmpty else { return }
            try RBDImage(session, name: name, readOnly: false).removeSnapshot(snapshot)
        }
        try forgetSnapshot(session, image: name, snapshot: snapshot)
        try reclaimImage(session, name: name)
    }

    /// Removes a hidden image left without snapshots, then reclaims upwards.
    func reclaimImage(_ session: CephSession, name: String) throws(StorageError) {
        guard let image = try RBDImage.openIfPresent(session, name: name),
            try image.metadata(RBDTree.hiddenKey) == name, try image.snapshots().isEmpty
        else { return }
        let parent = try sameNamespaceParent(session, image)
        // Its clone index entry first: an entry must not outlive the image (a crash between the two
        // leaves a hidden image without one, which this path reclaims without it).
        if parent != nil { try session.removeMapValue(Self.cloneIndexKey(name), in: Self.markerObject) }
        try RBDImage.remove(session, name: name)
        if let parent { try reclaim(session, image: parent.image, snapshot: parent.snapshot, parentID: parent.id) }
    }

    /// Removes every hidden snapshot without clones and every hidden image without snapshots:
    /// what a delete interrupted between removing a VDI and reclaiming its hidden ancestors left.
    /// Reads the whole SR (sr_delete, and the recovery of an interrupted delete, run it).
    func reclaimAll(_ session: CephSession) throws(StorageError) {
        let tree = try RBDTree(session: session)
        for record in tree.images.values.sorted(by: { $0.name < $1.name }) {
            for snapshot in record.snapshots where record.isHidden(snapshot: snapshot.name) {
                try reclaim(session, image: record.name, snapshot: snapshot.name)
            }
            try reclaimImage(session, name: record.name)
        }
    }

    /// EBUSY while `vdi` is attached here or persistently locked.
    private func requireIdle(_ session: CephSession, sr: CanonicalUUID, vdi: CanonicalUUID, image: RBDImage) throws(StorageError) {
        if state(sr).isVDIAttached(vdi) { throw StorageError.vdiAttached(vdi.string) }
        let header = try image.headerObject
        if let holder = try RBDLocks(session: session, headerObject: header, vdi: vdi).holders().first {
            throw StorageError(code: .resourceBusy, message: "VDI \(vdi) is locked by user '\(holder.cookie)'; run vdi_unlock first")
        }
    }

    /// An RBD snapshot named `destination` on the source image: O(1). The source stays the
    /// writable image and reports `destination` as its parent. EPERM for a read-only source.
    /// The index entry is written first: a crash before the snapshot leaves an entry naming no
    /// snapshot, which `locate` ignores and the next use of the UUID overwrites.
    public func snapshotVDI(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws(StorageError) {
        try requireAttached(sr)
        try withSR(sr, prefetch: [source, destination]) { session throws(StorageError) in
            if try snapshotOfImage(session, sr: sr, source: source, destination: destination) { return }
            let (location, image) = try visible(session, source, sr: sr, writable: true)
            if try locate(session, destination) != nil { throw StorageError.vdiExists(destination.string, sr: sr.string) }
            guard case .image(let name) = location else {
                throw StorageError(code: .notPermitted, message: "VDI \(source) is a read-only snapshot; clone it instead")
            }
            try requireIdle(session, sr: sr, vdi: source, image: image)
            try session.setMapValue(Self.snapshotIndexKey(destination.string), name, in: Self.markerObject)
            FaultPoint.RBDSnapshot.indexed.reach()
            try image.createSnapshot(destination.string)
        }
    }

    /// vdi_snapshot of an image when the snapshot index has no entry for `destination` (it came
    /// with the marker): the same checks and steps as the general path, with the round trips that
    /// do not depend on each other in flight together. The index entry (nothing to overwrite) and
    /// a stat of the destination's image id object go out before the source opens; the source's
    /// hidden mark (an omap read of its header) goes with the lock check. The entry is written
    /// before the snapshot is made, as in the general path, and removed again when a check
    /// refuses (a crash in between leaves what `rbd-snapshot.indexed` leaves: an entry naming no
    /// snapshot, which `locate` ignores). False when the source is no image or the index knows
    /// the destination: the general path runs, nothing done.
    private func snapshotOfImage(
        _ session: CephSession, sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID
    ) throws(StorageError) -> Bool {
        let key = Self.snapshotIndexKey(destination.string)
        guard try session.mapValue(key, in: Self.markerObject) == nil else { return false }
        let indexed = session.startSettingMapValue(key, source.string, in: Self.markerObject)
        let destinationImage = session.startStat(RBDImage.idObject(name: destination.string))
        do throws(StorageError) {
            guard let image = try RBDImage.openIfPresent(session, name: source.string, readOnly: false) else {
                try withdraw(key, indexed, session)
                return false
            }
            let header = try image.headerObject
            let hidden = session.startReadingMapKey(RBDImage.metadataMapKey(RBDTree.hiddenKey), in: header)
            let holder = try RBDLocks(session: session, headerObject: header, vdi: source).holders().first
            if hidden.foundValue == source.string { throw StorageError.noSuchVDI(source.string, sr: sr.string) }
            guard hidden.wait() >= 0 || hidden.wait() == -ENOENT else { throw .ceph(hidden.wait(), "reading the marks of \(source)") }
            switch destinationImage.wait() {
            case 0: throw StorageError.vdiExists(destination.string, sr: sr.string)
            case -ENOENT: break
            case let code: throw .ceph(code, "looking up image \(destination)")
            }
            if state(sr).isVDIAttached(source) { throw StorageError.vdiAttached(source.string) }
            if let holder {
                throw StorageError(code: .resourceBusy, message: "VDI \(source) is locked by user '\(holder.cookie)'; run vdi_unlock first")
            }
            let code = indexed.wait()
            guard code == 0 else { throw .ceph(code, "writing \(key) in the omap of \(Self.markerObject)") }
            FaultPoint.RBDSnapshot.indexed.reach()
            try image.createSnapshot(destination.string)
            return true
        } catch {
            try? withdraw(key, indexed, session)
            throw error
        }
    }

    /// Removes an index entry written ahead of a check that refused.
    private func withdraw(_ key: String, _ written: PendingOperation, _ session: CephSession) throws(StorageError) {
        if written.wait() == 0 { try session.removeMapValue(key, in: Self.markerObject) }
    }

    /// A writable RBD clone named `destination`. From a snapshot VDI: a clone of it. From an
    /// image: a new snapshot (a generated UUID, labelled "base copy") and a clone of that; the
    /// source image stays writable and reports the base copy as its parent. O(1).
    public func cloneVDI(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID) throws(StorageError) {
        try requireAttached(sr)
        try withSR(sr, prefetch: [source, destination]) { session throws(StorageError) in
            let (location, image) = try visible(session, source, sr: sr, writable: true)
            if try locate(session, destination) != nil { throw StorageError.vdiExists(destination.string, sr: sr.string) }
            switch location {
            case .snapshot(let imageName, let snapshot):
                let snapshots = try image.snapshots()
                let imageSize = try image.size
                let size = snapshots.first(where: { $0.name == snapshot })?.size ?? imageSize
                try requireRoom(session, adding: size, what: "VDI \(destination)")
                // Protecting is invisible to SM (delete unprotects): nothing to undo if we die after it.
                try image.protect(snapshot)
                FaultPoint.RBDCloneOfSnapshot.snapshotProtected.reach()
                try RBDImage.clone(session, parent: imageName, snapshot: snapshot, child: destination.string)
            case .image(let name):
                try requireIdle(session, sr: sr, vdi: source, image: image)
                try requireRoom(session, adding: try image.size, what: "VDI \(destination)")
                // The claim: the image's exclusive lock, held until this verb's session closes (or its
                // client dies), so that no other verb takes this clone for a dead one's.
                guard try image.claim() else {
                    throw StorageError(
                        code: .resourceBusy,
                        message: "VDI \(source) is held by another client (its exclusive "
                            + "lock: a verb under way, or a writer that does not release it); try again")
                }
                let base = CanonicalUUID.random().string
                let intent = RBDIntent(vdi: destination.string, kind: .clone(image: name, base: base))
                let cloneEntry = "\(name) \(base) \(try image.identifier)"
                try record(
                    intent, session,
                    alsoSet: [(Self.snapshotIndexKey(base), name), (Self.cloneIndexKey(destination.string), cloneEntry)])
                FaultPoint.RBDClone.intentWritten.reach()
                try image.setMetadata(RBDTree.baseCopyKey(base), "1")
                FaultPoint.RBDClone.baseCopyMarked.reach()
                try image.createSnapshot(base)
                FaultPoint.RBDClone.snapshotCreated.reach()
                try image.protect(base)
                FaultPoint.RBDClone.protected.reach()
                try RBDImage.clone(session, parent: name, snapshot: base, child: destination.string)
                FaultPoint.RBDClone.cloned.reach()
                try finish(intent, session)
            }
        }
    }

    /// Grows an image (same size: success; smaller: EINVAL). EPERM for a snapshot, EBUSY attached.
    public func resizeVDI(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws(StorageError) {
        try requireAttached(sr)
        try withSR(sr, prefetch: [vdi]) { session throws(StorageError) in
            if try resizeImage(session, sr: sr, vdi: vdi, size: size) { return }
            let (location, image) = try visible(session, vdi, sr: sr, writable: true)
            guard case .image = location else {
                throw StorageError(code: .notPermitted, message: "VDI \(vdi) is a read-only snapshot; it cannot be resized")
            }
            if state(sr).isVDIAttached(vdi) { throw StorageError.vdiAttached(vdi.string) }
            let size = Self.rounded(size)
            let current = try image.size
            guard size >= current else {
                throw StorageError.invalid("new-size \(size) is smaller than VDI \(vdi)'s \(current) bytes; VDIs only grow")
            }
            guard size > current else { return }
            try requireRoom(session, adding: size - current, what: "growing VDI \(vdi)")
            try image.resize(to: size)
        }
    }

    /// vdi_resize of an image VDI: the general path's checks and answers, with the image's hidden
    /// mark (an omap read of its header) in flight while the pool's quota is read. False when
    /// `vdi` is no image (the general path answers: EPERM for a snapshot, ENODEV).
    private func resizeImage(_ session: CephSession, sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64) throws(StorageError) -> Bool {
        guard let image = try RBDImage.openIfPresent(session, name: vdi.string, readOnly: false) else { return false }
        let hidden = session.startReadingMapKey(RBDImage.metadataMapKey(RBDTree.hiddenKey), in: try image.headerObject)
        let size = Self.rounded(size)
        let current = try image.size
        var room: StorageError?
        if size > current {
            do throws(StorageError) {
                try requireRoom(session, adding: size - current, what: "growing VDI \(vdi)")
            } catch {
                room = error
            }
        }
        if hidden.foundValue == vdi.string { throw StorageError.noSuchVDI(vdi.string, sr: sr.string) }
        guard hidden.wait() >= 0 || hidden.wait() == -ENOENT else { throw .ceph(hidden.wait(), "reading the marks of \(vdi)") }
        if state(sr).isVDIAttached(vdi) { throw StorageError.vdiAttached(vdi.string) }
        guard size >= current else {
            throw StorageError.invalid("new-size \(size) is smaller than VDI \(vdi)'s \(current) bytes; VDIs only grow")
        }
        guard size > current else { return true }
        if let room { throw room }
        try image.resize(to: size)
        return true
    }

    /// Maps the VDI with the kernel client (a snapshot read-only) and returns
    /// `/dev/rbd/<pool>/<namespace>/<image>[@<snapshot>]`, the name udev's ceph-rbdnamer gives
    /// it (made here when udev does not). Idempotent.
    public func attachVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws(StorageError) -> AttachResult {
        try requireAttached(sr)
        let (location, monitors) = try withSR(sr, prefetch: [vdi]) { session throws(StorageError) in
            // Monitors from dconf, else as librados read them from dconf `conf`.
            (
                try visible(session, vdi, sr: sr).location,
                credentials.monitors.isEmpty
                    ? CephCredentials.kernelMonitors(fromMonitorHost: session.configurationValue("mon_host") ?? "")
                    : credentials.kernelMonitors
            )
        }
        let snapshot: String?
        if case .snapshot(_, let name) = location { snapshot = name } else { snapshot = nil }
        let mapping = try KernelRBD.map(
            credentials: credentials, monitors: monitors, namespace: namespace(sr),
            image: location.image, snapshot: snapshot)
        let directory = "/dev/rbd/\(credentials.pool)/\(namespace(sr))"
        let path = "\(directory)/\(location.image)\(snapshot.map { "@\($0)" } ?? "")"
        if Syscall.symbolicLinkTarget(path) == nil {
            try Syscall.makeDirectories(directory)
            guard symlink(mapping.device, path) == 0 || errno == EEXIST else {
                throw .system(Errno(rawValue: errno), "linking \(path) to \(mapping.device)")
            }
        }
        try state(sr).markVDIAttached(vdi, path: path)
        return AttachResult(path: path, type: Self.contentType)
    }

    /// Unmaps (EBUSY while the device is open). Idempotent; needs no cluster.
    public func detachVDI(sr: CanonicalUUID, vdi: CanonicalUUID) throws(StorageError) {
        try requireAttached(sr)
        let state = state(sr)
        guard let path = state.attachedPath(vdi) else { return }
        let leaf = path.split(separator: "/").last.map(String.init) ?? ""
        let parts = leaf.split(separator: "@", maxSplits: 1).map(String.init)
        if let mapping = KernelRBD.find(
            pool: credentials.pool, namespace: namespace(sr), image: parts[0],
            snapshot: parts.count > 1 ? parts[1] : nil)
        {
            try KernelRBD.unmap(mapping)
        }
        if Syscall.symbolicLinkTarget(path) != nil { try Syscall.unlinkIfPresent(path) }
        try state.clearVDIAttached(vdi)
    }

    public func lockVDI(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String) throws(StorageError) {
        try requireAttached(sr)
        try withSR(sr, prefetch: [vdi]) { session throws(StorageError) in
            let header = try visible(session, vdi, sr: sr).image.headerObject
            try RBDLocks(session: session, headerObject: header, vdi: vdi).lock(user: user, force: force)
        }
    }

    public func unlockVDI(sr: CanonicalUUID, vdi: CanonicalUUID, user: String) throws(StorageError) {
        try requireAttached(sr)
        try withSR(sr, prefetch: [vdi]) { session throws(StorageError) in
            let header = try visible(session, vdi, sr: sr).image.headerObject
            try RBDLocks(session: session, headerObject: header, vdi: vdi).unlock(user: user)
        }
    }
}
