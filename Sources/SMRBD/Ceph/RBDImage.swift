import CRBD
import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// One open RBD image (`rbd_image_t`), closed in `deinit`. Opened through a `CephSession`'s
/// I/O context, so in the SR's namespace.
final class RBDImage {
    /// New images: format 2 with layering (clones), exclusive-lock, object-map and fast-diff
    /// (sr_scan's bytes used without reading data), deep-flatten.
    static let features: UInt64 =
        UInt64(RBD_FEATURE_LAYERING) | UInt64(RBD_FEATURE_EXCLUSIVE_LOCK)
        | UInt64(RBD_FEATURE_OBJECT_MAP) | UInt64(RBD_FEATURE_FAST_DIFF) | UInt64(RBD_FEATURE_DEEP_FLATTEN)

    let name: String
    private let handle: rbd_image_t
    private let session: CephSession

    /// Opens `name`; ENODEV when it does not exist. `readOnly` opens take no lock and no watch.
    init(_ session: CephSession, name: String, readOnly: Bool = true) throws(StorageError) {
        var image: rbd_image_t?
        let code =
            readOnly
            ? ceph.rbd_open_read_only(session.ioContext, name, &image, nil)
            : ceph.rbd_open(session.ioContext, name, &image, nil)
        guard code == 0, let image else { throw .ceph(code, "opening RBD image \(name)") }
        self.name = name
        handle = image
        self.session = session
        session.openImages += 1
    }

    deinit {
        _ = ceph.rbd_close(handle)
        session.openImages -= 1
    }

    /// Opens `name` read-only; nil when there is no such image.
    static func openIfPresent(_ session: CephSession, name: String, readOnly: Bool = true) throws(StorageError) -> RBDImage? {
        do throws(StorageError) {
            return try RBDImage(session, name: name, readOnly: readOnly)
        } catch  where error.code == .noSuchDevice {
            return nil
        }
    }

    /// A NUL-terminated C buffer as a string.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func create(_ session: CephSession, name: String, size: UInt64) throws(StorageError) {
        var options: rbd_image_options_t?
        ceph.rbd_image_options_create(&options)
        defer { ceph.rbd_image_options_destroy(options) }
        _ = ceph.rbd_image_options_set_uint64(options, Int32(RBD_IMAGE_OPTION_FORMAT), 2)
        _ = ceph.rbd_image_options_set_uint64(options, Int32(RBD_IMAGE_OPTION_FEATURES), features)
        let code = ceph.rbd_create4(session.ioContext, name, size, options)
        guard code == 0 else { throw .ceph(code, "creating RBD image \(name)") }
    }

    /// A copy-on-write child `child` of `parent@snapshot` (protected first), with `features`.
    static func clone(_ session: CephSession, parent: String, snapshot: String, child: String) throws(StorageError) {
        var options: rbd_image_options_t?
        ceph.rbd_image_options_create(&options)
        defer { ceph.rbd_image_options_destroy(options) }
        _ = ceph.rbd_image_options_set_uint64(options, Int32(RBD_IMAGE_OPTION_FORMAT), 2)
        _ = ceph.rbd_image_options_set_uint64(options, Int32(RBD_IMAGE_OPTION_FEATURES), features)
        let code = ceph.rbd_clone3(session.ioContext, parent, snapshot, session.ioContext, child, options)
        guard code == 0 else { throw .ceph(code, "cloning \(parent)@\(snapshot) to \(child)") }
    }

    static func remove(_ session: CephSession, name: String) throws(StorageError) {
        let code = removeAnswering(session, name: name)
        guard code == 0 || code == -ENOENT else { throw .ceph(code, "removing RBD image \(name)") }
    }

    /// `rbd_remove`'s own answer: 0, or a negative errno (ENOENT: no such image; ENOTEMPTY: it
    /// has snapshots; EBUSY: a client watches it or holds its exclusive lock).
    static func removeAnswering(_ session: CephSession, name: String) -> Int32 {
        ceph.rbd_remove(session.ioContext, name)
    }

    /// Every image in the session's namespace (names only).
    static func list(_ session: CephSession) throws(StorageError) -> [String] {
        var capacity = 64
        while true {
            var specs = [rbd_image_spec_t](repeating: rbd_image_spec_t(), count: capacity)
            var count = capacity
            let code = ceph.rbd_list2(session.ioContext, &specs, &count)
            if code == -ERANGE, count > capacity {
                capacity = count
                continue
            }
            guard code == 0 else { throw .ceph(code, "listing RBD images") }
            defer { ceph.rbd_image_spec_list_cleanup(&specs, count) }
            return specs.prefix(count).map { String(cString: $0.name) }
        }
    }

    var size: UInt64 {
        get throws(StorageError) {
            var value: UInt64 = 0
            let code = ceph.rbd_get_size(handle, &value)
            guard code == 0 else { throw .ceph(code, "reading the size of \(name)") }
            return value
        }
    }

    /// The image's RBD id (names its header object `rbd_header.<id>`).
    var identifier: String {
        get throws(StorageError) {
            var buffer = [CChar](repeating: 0, count: 128)
            let code = ceph.rbd_get_id(handle, &buffer, buffer.count)
            guard code == 0 else { throw .ceph(code, "reading the id of \(name)") }
            return Self.text(buffer)
        }
    }

    var headerObject: String {
        get throws(StorageError) { Self.headerObject(id: try identifier) }
    }

    /// The object that holds a (format 2) image's RBD id; it exists exactly while the image does.
    static func idObject(name: String) -> String { "rbd_id.\(name)" }

    /// The header object of the image with RBD id `id` (librbd's name for it).
    static func headerObject(id: String) -> String { "rbd_header.\(id)" }

    /// The omap key under which librbd keeps the image metadata entry `key` in the header object
    /// (`metadata_<key>`, cls_rbd's layout, which `rbd image-meta` reads too).
    static func metadataMapKey(_ key: String) -> String { "metadata_\(key)" }

    func resize(to size: UInt64) throws(StorageError) {
        let code = ceph.rbd_resize(handle, size)
        guard code == 0 else { throw .ceph(code, "resizing \(name)") }
    }

    /// The clone parent (`image@snapshot` in the same pool, and the parent's RBD id), nil for an
    /// image without one.
    func parent() throws(StorageError) -> (image: String, namespace: String, snapshot: String, id: String)? {
        var image = rbd_linked_image_spec_t()
        var snapshot = rbd_snap_spec_t()
        let code = ceph.rbd_get_parent(handle, &image, &snapshot)
        if code == -ENOENT { return nil }
        guard code == 0 else { throw .ceph(code, "reading the parent of \(name)") }
        defer {
            ceph.rbd_linked_image_spec_cleanup(&image)
            ceph.rbd_snap_spec_cleanup(&snapshot)
        }
        return (
            String(cString: image.image_name), String(cString: image.pool_namespace), String(cString: snapshot.name),
            String(cString: image.image_id)
        )
    }

    struct Snapshot: Equatable {
        var id: UInt64
        var name: String
        var size: UInt64
    }

    /// User snapshots, oldest first (by id).
    func snapshots() throws(StorageError) -> [Snapshot] {
        var capacity: Int32 = 16
        while true {
            var infos = [rbd_snap_info_t](repeating: rbd_snap_info_t(), count: Int(capacity) + 1)
            var count = capacity
            let code = ceph.rbd_snap_list(handle, &infos, &count)
            if code == -ERANGE {
                capacity = max(count, capacity * 2)
                continue
            }
            guard code >= 0 else { throw .ceph(code, "listing the snapshots of \(name)") }
            defer { ceph.rbd_snap_list_end(&infos) }
            return infos.prefix(Int(code)).map { Snapshot(id: $0.id, name: String(cString: $0.name), size: $0.size) }
                .sorted { $0.id < $1.id }
        }
    }

    func createSnapshot(_ snapshot: String) throws(StorageError) {
        let code = ceph.rbd_snap_create(handle, snapshot)
        guard code == 0 else { throw .ceph(code, "creating snapshot \(name)@\(snapshot)") }
    }

    func removeSnapshot(_ snapshot: String) throws(StorageError) {
        if try isProtected(snapshot) {
            let code = ceph.rbd_snap_unprotect(handle, snapshot)
            guard code == 0 else { throw .ceph(code, "unprotecting snapshot \(name)@\(snapshot)") }
        }
        let code = ceph.rbd_snap_remove(handle, snapshot)
        guard code == 0 || code == -ENOENT else { throw .ceph(code, "removing snapshot \(name)@\(snapshot)") }
    }

    func isProtected(_ snapshot: String) throws(StorageError) -> Bool {
        var value: Int32 = 0
        let code = ceph.rbd_snap_is_protected(handle, snapshot, &value)
        guard code == 0 else { throw .ceph(code, "reading the protection of \(name)@\(snapshot)") }
        return value != 0
    }

    /// Protects the snapshot (clone v1 needs it; v2 accepts it), unless it already is.
    func protect(_ snapshot: String) throws(StorageError) {
        guard try !isProtected(snapshot) else { return }
        let code = ceph.rbd_snap_protect(handle, snapshot)
        guard code == 0 || code == -EBUSY else { throw .ceph(code, "protecting snapshot \(name)@\(snapshot)") }
    }

    /// Reads at `snapshot` (nil: the head) from now on.
    func select(snapshot: String?) throws(StorageError) {
        let code = ceph.rbd_snap_set(handle, snapshot)
        guard code == 0 else { throw .ceph(code, "selecting snapshot \(name)@\(snapshot ?? "-")") }
    }

    /// Bytes of whole objects that changed since `since` (nil: since creation) up to the
    /// selected snapshot, from the object map (fast-diff): nothing is read.
    func usedBytes(since: String?, size: UInt64) throws(StorageError) -> UInt64 {
        var total: UInt64 = 0
        let code = withUnsafeMutablePointer(to: &total) { pointer in
            ceph.rbd_diff_iterate2(
                handle, since, 0, size, 0, 1,
                { _, length, exists, argument in
                    if exists != 0 { argument!.assumingMemoryBound(to: UInt64.self).pointee += UInt64(length) }
                    return 0
                }, pointer)
        }
        guard code == 0 else { throw .ceph(code, "reading the allocation of \(name)") }
        return total
    }

    /// Images cloned from `name@snapshot`.
    func children(of snapshot: String) throws(StorageError) -> [String] {
        try select(snapshot: snapshot)
        defer { _ = ceph.rbd_snap_set(handle, nil) }
        var capacity = 16
        while true {
            var specs = [rbd_linked_image_spec_t](repeating: rbd_linked_image_spec_t(), count: capacity)
            var count = capacity
            let code = ceph.rbd_list_children3(handle, &specs, &count)
            if code == -ERANGE, count > capacity {
                capacity = count
                continue
            }
            guard code >= 0 else { throw .ceph(code, "listing the clones of \(name)@\(snapshot)") }
            defer { ceph.rbd_linked_image_spec_list_cleanup(&specs, count) }
            return specs.prefix(count).filter { !$0.trash }.map { String(cString: $0.image_name) }
        }
    }

    /// Takes the image's exclusive lock (the one the exclusive-lock feature and krbd use) and
    /// keeps it until the image is closed, refusing to hand it over on request meanwhile: RBDSR's
    /// claim while a multi-step verb changes this image. It lives as long as this client: a
    /// crashed owner's lock is broken by the next taker once the OSDs drop the dead client's
    /// watch (`osd_client_watch_timeout`, 30 s by default). While a live client holds it, librbd
    /// asks it to hand the lock over and waits (a krbd map does; another RBDSR claim does when
    /// its verb ends); false when the owner refuses outright.
    func claim() throws(StorageError) -> Bool {
        let code = ceph.rbd_lock_acquire(handle, RBD_LOCK_MODE_EXCLUSIVE)
        switch -code {
        case 0: return true
        case EROFS, EBUSY, EAGAIN: return false
        default: throw .ceph(code, "taking the exclusive lock of \(name)")
        }
    }

    /// Whether a client that still watches the image holds its exclusive lock (no wait: the lock's
    /// owners compared with the header's watchers, as librbd does before it breaks a lock). A dead
    /// owner counts as alive until the OSDs drop its watch.
    func lockHeldByLiveClient() throws(StorageError) -> Bool {
        var mode = RBD_LOCK_MODE_EXCLUSIVE
        var owners = [UnsafeMutablePointer<CChar>?](repeating: nil, count: 8)
        var ownerCount = owners.count
        var code = ceph.rbd_lock_get_owners(handle, &mode, &owners, &ownerCount)
        if code == -ENOENT { return false }
        guard code >= 0 else { throw .ceph(code, "reading the exclusive lock owner of \(name)") }
        let ownerNames = owners.prefix(ownerCount).compactMap { $0.map { String(cString: $0) } }
        ceph.rbd_lock_get_owners_cleanup(&owners, ownerCount)
        guard !ownerNames.isEmpty else { return false }
        var watchers = [rbd_image_watcher_t](repeating: rbd_image_watcher_t(), count: 64)
        var watcherCount = watchers.count
        code = ceph.rbd_watchers_list(handle, &watchers, &watcherCount)
        guard code >= 0 else { throw .ceph(code, "listing the watchers of \(name)") }
        defer { ceph.rbd_watchers_list_cleanup(&watchers, watcherCount) }
        let live = watchers.prefix(watcherCount).flatMap { watcher in
            [watcher.addr.map { String(cString: $0) } ?? "", "client.\(watcher.id)"]
        }
        return ownerNames.contains { live.contains($0) }
    }

    // MARK: Image metadata (rbd image-meta)

    func metadata(_ key: String) throws(StorageError) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        var length = buffer.count
        let code = ceph.rbd_metadata_get(handle, key, &buffer, &length)
        if code == -ENOENT { return nil }
        guard code == 0 else { throw .ceph(code, "reading metadata \(key) of \(name)") }
        return Self.text(buffer)
    }

    func setMetadata(_ key: String, _ value: String) throws(StorageError) {
        let code = ceph.rbd_metadata_set(handle, key, value)
        guard code == 0 else { throw .ceph(code, "writing metadata \(key) of \(name)") }
    }

    func removeMetadata(_ key: String) throws(StorageError) {
        let code = ceph.rbd_metadata_remove(handle, key)
        guard code == 0 || code == -ENOENT else { throw .ceph(code, "removing metadata \(key) of \(name)") }
    }

    /// Every metadata entry whose key begins with `prefix`.
    func metadata(prefix: String) throws(StorageError) -> [String: String] {
        var keys = [CChar](repeating: 0, count: 16384)
        var values = [CChar](repeating: 0, count: 16384)
        var keysLength = keys.count
        var valuesLength = values.count
        let code = ceph.rbd_metadata_list(handle, prefix, 0, &keys, &keysLength, &values, &valuesLength)
        guard code >= 0 else { throw .ceph(code, "listing metadata of \(name)") }
        func strings(_ buffer: [CChar], _ length: Int) -> [String] {
            buffer.prefix(min(length, buffer.count)).split(separator: 0, omittingEmptySubsequences: false).dropLast()
                .map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        }
        var result: [String: String] = [:]
        for (key, value) in zip(strings(keys, keysLength), strings(values, valuesLength)) where key.hasPrefix(prefix) {
            result[key] = value
        }
        return result
    }
}
