import SMCore

/// The SR as RBD holds it, read in one pass (sr_scan, quota checks, sr_delete): every image of the SR's namespace with its size,
/// clone parent, snapshots and SM metadata. VDIs are the UUID-named images and UUID-named
/// snapshots (Docs/RBDSR.md, "The mapping"); everything else in the namespace is left alone.
///
/// Image metadata (`rbd image-meta`) records what RBD itself has no word for:
/// - `sm.hidden` on an image, valued with the image's own name: its VDI was deleted but the image
///   stays for its snapshots (the name, because a clone inherits its parent's metadata: a copied
///   mark names another image and means nothing);
/// - `sm.hidden.<UUID>`: the snapshot VDI was deleted but stays for its clones;
/// - `sm.base-copy.<UUID>`: the snapshot was made by vdi_clone (label "base copy").
struct RBDTree {
    static let hiddenKey = "sm.hidden"
    static func hiddenKey(_ snapshot: String) -> String { "sm.hidden.\(snapshot)" }
    static func baseCopyKey(_ snapshot: String) -> String { "sm.base-copy.\(snapshot)" }

    struct Image {
        var name: String
        var size: UInt64
        /// `image@snapshot` in the same namespace, nil without a parent (or one elsewhere).
        var parent: (image: String, snapshot: String)?
        var snapshots: [RBDImage.Snapshot]
        /// The `sm.` entries. A clone starts with a copy of its parent's (RBD copies image metadata
        /// on clone): the marks of snapshots are named by UUID and the hidden mark by the image, so
        /// copies never match anything of the clone's own.
        var metadata: [String: String]

        var isHidden: Bool { metadata[RBDTree.hiddenKey] == name }
        func isHidden(snapshot: String) -> Bool { metadata[RBDTree.hiddenKey(snapshot)] != nil }
        func isBaseCopy(snapshot: String) -> Bool { metadata[RBDTree.baseCopyKey(snapshot)] != nil }
    }

    /// Where a VDI lives.
    enum Location: Equatable {
        case image(String)
        case snapshot(image: String, name: String)

        var image: String {
            switch self {
            case .image(let name), .snapshot(let name, _): return name
            }
        }
    }

    var images: [String: Image] = [:]
    /// Snapshot names not listed whatever their metadata says (an unfinished clone's base copy).
    var unlisted: Set<String> = []

    init(session: CephSession) throws(StorageError) {
        for name in try RBDImage.list(session) {
            let image: RBDImage
            do throws(StorageError) {
                image = try RBDImage(session, name: name)
            } catch  where error.code == .noSuchDevice {
                continue  // removed meanwhile
            }
            let parent = try image.parent()
            let sameNamespace = parent.map { $0.namespace == (session.namespace ?? "") } ?? false
            images[name] = Image(
                name: name, size: try image.size,
                parent: sameNamespace ? parent.map { ($0.image, $0.snapshot) } : nil,
                snapshots: try image.snapshots(), metadata: try image.metadata(prefix: "sm."))
        }
    }

    /// Whether a listed VDI sits at `image@snapshot`.
    func isListed(image: String, snapshot: String) -> Bool {
        guard let record = images[image], CanonicalUUID(snapshot) != nil, !unlisted.contains(snapshot) else { return false }
        return !record.isHidden(snapshot: snapshot)
    }

    /// The snapshots above `location`, nearest first: earlier snapshots of the same image, then
    /// the clone parent snapshot and the snapshots before it, and so on up.
    func ancestors(of location: Location) -> [(image: String, snapshot: String)] {
        var result: [(image: String, snapshot: String)] = []
        var image = location.image
        var end: Int?
        if case .snapshot(let holder, let name) = location {
            end = images[holder]?.snapshots.firstIndex { $0.name == name } ?? 0
        }
        var seen: Set<String> = []
        while let record = images[image], seen.insert(image).inserted {
            let limit = end ?? record.snapshots.count
            for snapshot in record.snapshots.prefix(limit).reversed() { result.append((image, snapshot.name)) }
            guard let parent = record.parent, let parentRecord = images[parent.image] else { break }
            image = parent.image
            end = (parentRecord.snapshots.firstIndex { $0.name == parent.snapshot } ?? -1) + 1
        }
        return result
    }

    /// The nearest listed ancestor of `location`, as sr_scan's `<parent>`.
    func listedParent(of location: Location) -> CanonicalUUID? {
        ancestors(of: location).first { isListed(image: $0.image, snapshot: $0.snapshot) }.flatMap { CanonicalUUID($0.snapshot) }
    }
}
