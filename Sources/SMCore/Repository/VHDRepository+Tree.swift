/// The parent/child structure of every VHD in an SR, read from footers and headers (no BATs):
/// what delete, snapshot, clone, coalescing and the check decide from.
public struct SRTree: Sendable {
    public struct Node: Sendable, Equatable {
        public var vdi: CanonicalUUID
        public var uniqueID: [UInt8]
        public var hidden: Bool
        public var size: UInt64
        /// The VDI the header's parent name designates (`<UUID>.vhd`), nil for a base.
        public var parent: CanonicalUUID?
        public var differencing: Bool
    }

    public var nodes: [CanonicalUUID: Node] = [:]
    /// Files that could not be read, with the reason.
    public var damaged: [CanonicalUUID: String] = [:]
    public private(set) var children: [CanonicalUUID: [CanonicalUUID]] = [:]

    init(nodes: [CanonicalUUID: Node], damaged: [CanonicalUUID: String]) {
        self.nodes = nodes
        self.damaged = damaged
        for node in nodes.values {
            if let parent = node.parent { children[parent, default: []].append(node.vdi) }
        }
        for key in children.keys { children[key]?.sort() }
    }

    public func childrenOf(_ vdi: CanonicalUUID) -> [CanonicalUUID] { children[vdi] ?? [] }

    /// The VHD files from `vdi` up to its base, `vdi` included (cut at loops and missing parents).
    public func chain(from vdi: CanonicalUUID) -> [CanonicalUUID] {
        var chain: [CanonicalUUID] = []
        var current: CanonicalUUID? = vdi
        while let id = current, nodes[id] != nil || damaged[id] != nil, !chain.contains(id) {
            chain.append(id)
            current = nodes[id]?.parent
        }
        return chain
    }
}

extension VHDRepository {
    /// Reads every VHD's footer and header. Unreadable files are listed in `damaged`.
    public func tree() throws(StorageError) -> SRTree {
        var nodes: [CanonicalUUID: SRTree.Node] = [:]
        var damaged: [CanonicalUUID: String] = [:]
        for vdi in try allVDIFiles() {
            do throws(VHDError) {
                let image = try VHDImage.open(vdiPath(vdi))
                nodes[vdi] = SRTree.Node(vdi: vdi, uniqueID: image.footer.uniqueID, hidden: image.footer.hidden,
                                         size: image.size, parent: image.isDifferencing ? Self.parentVDI(image.header) : nil,
                                         differencing: image.isDifferencing)
            } catch {
                damaged[vdi] = error.description
            }
        }
        return SRTree(nodes: nodes, damaged: damaged)
    }

    /// The VDI a header's parent name designates, when it is `<UUID>.vhd`.
    static func parentVDI(_ header: VHDDynamicHeader) -> CanonicalUUID? {
        let name = header.parentName
        guard name.hasSuffix(vhdSuffix) else { return nil }
        return CanonicalUUID(String(name.dropLast(vhdSuffix.count)))
    }
}
