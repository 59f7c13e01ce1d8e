/// The parent/child structure of every VHD in an SR, read from footers and headers (no BATs):
/// what delete, snapshot, clone, coalescing and the check decide from.
///
/// Everything here is linear in the number of VHDs, whatever the SR holds: each file is opened
/// once (`VHDRepository.tree()`), parents are found through the `nodes` map by the header's
/// parent name, and each chain is followed once for all the VDIs on it (`chains`), so a hostile
/// 10,000-deep chain, a parent loop or a parent outside the SR costs no more than as many
/// healthy VDIs.
public struct SRTree: Sendable {
    public struct Node: Sendable, Equatable {
        public var vdi: CanonicalUUID
        public var uniqueID: [UInt8]
        public var hidden: Bool
        public var size: UInt64
        /// The VDI the header's parent name designates (`<UUID>.vhd`), nil for a base.
        public var parent: CanonicalUUID?
        public var differencing: Bool
        /// The header's parent name, unique id and timestamp (empty and zero for a base).
        public var parentName: String = ""
        public var parentUniqueID: [UInt8] = []
        public var parentTimestamp: UInt32 = 0
        /// The file's modification time (seconds since the Unix epoch), which children record.
        public var modificationTime: Int = 0
        /// Where the locators lead (`VHDChain.resolveParent`: looked up, not opened), when the
        /// tree was read with `resolvingLocators`; nil otherwise and when they lead nowhere.
        public var locatedParent: String?
    }

    /// Where following a VDI's parents leads.
    public enum ChainStatus: Sendable, Equatable {
        /// A dynamic (base) VHD of this SR after `length` VHDs, the VDI itself included.
        case sound(length: Int)
        /// The link from `vdi` (the VDI itself or one of its ancestors) to its parent is wrong.
        case broken(vdi: CanonicalUUID, reason: String)
    }

    public var nodes: [CanonicalUUID: Node] = [:]
    /// Files that could not be read, with the reason.
    public var damaged: [CanonicalUUID: String] = [:]
    public private(set) var children: [CanonicalUUID: [CanonicalUUID]] = [:]
    /// The chain of every readable VDI (`nodes`' keys).
    public private(set) var chains: [CanonicalUUID: ChainStatus] = [:]

    init(nodes: [CanonicalUUID: Node], damaged: [CanonicalUUID: String]) {
        self.nodes = nodes
        self.damaged = damaged
        for node in nodes.values {
            if let parent = node.parent { children[parent, default: []].append(node.vdi) }
        }
        for key in children.keys { children[key]?.sort() }
        chains = Self.followChains(nodes, damaged)
    }

    public func childrenOf(_ vdi: CanonicalUUID) -> [CanonicalUUID] { children[vdi] ?? [] }

    /// The VHD files from `vdi` up to its base, `vdi` included (cut at loops and missing parents).
    public func chain(from vdi: CanonicalUUID) -> [CanonicalUUID] {
        var chain: [CanonicalUUID] = []
        var seen: Set<CanonicalUUID> = []
        var current: CanonicalUUID? = vdi
        while let id = current, nodes[id] != nil || damaged[id] != nil, seen.insert(id).inserted {
            chain.append(id)
            current = nodes[id]?.parent
        }
        return chain
    }

    /// VDIs whose own link to their parent is wrong, with the reason (each broken link once, at
    /// the VDI that holds it; its descendants are `.broken` in `chains` too).
    public var brokenLinks: [CanonicalUUID: String] {
        var links: [CanonicalUUID: String] = [:]
        for (vdi, status) in chains {
            if case .broken(let at, let reason) = status, at == vdi { links[vdi] = reason }
        }
        return links
    }

    /// What must be repaired (sr_check reports it) before coalescing or reclaiming may decide
    /// anything: unreadable files, broken links (loops included), and chains longer than any
    /// reader follows (`VHDChain.readableLength`), which coalescing would take as many passes to
    /// shorten as the chain is long.
    public var unsound: [CanonicalUUID: String] {
        var result = damaged.mapValues { "unreadable: \($0)" }
        for (vdi, reason) in brokenLinks { result[vdi] = reason }
        for (vdi, status) in chains {
            if case .sound(let length) = status, length > VHDChain.readableLength, childrenOf(vdi).isEmpty {
                result[vdi] = "chain of \(length) VHDs, longer than \(VHDChain.readableLength)"
            }
        }
        return result
    }

    /// What is wrong with the link from `node` to its parent alone, nil when nothing is.
    static func linkProblem(_ node: Node, _ nodes: [CanonicalUUID: Node], _ damaged: [CanonicalUUID: String]) -> String? {
        guard node.differencing else { return nil }
        guard let parent = node.parent else {
            return "parent name '\(node.parentName)' does not name a VDI of this SR"
        }
        guard let parentNode = nodes[parent] else {
            return damaged[parent] != nil ? "parent VDI \(parent) is unreadable" : "parent VDI \(parent) does not exist"
        }
        // A parent with the child's own unique id: a merge between its identity write and its
        // rename (VHDRepository+GC.swift, step 3); the link reads correctly through it.
        guard parentNode.uniqueID == node.parentUniqueID || parentNode.uniqueID == node.uniqueID else {
            return "parent VDI \(parent) has unique id \(CanonicalUUID(bytes: parentNode.uniqueID)), "
                + "the header expects \(CanonicalUUID(bytes: node.parentUniqueID))"
        }
        return nil
    }

    /// Every node's chain status in one pass: each walk up stops at the first node already
    /// known, so every node is visited once (plus once more to be assigned).
    static func followChains(_ nodes: [CanonicalUUID: Node], _ damaged: [CanonicalUUID: String]) -> [CanonicalUUID: ChainStatus] {
        var status: [CanonicalUUID: ChainStatus] = [:]
        status.reserveCapacity(nodes.count)
        for start in nodes.keys.sorted() where status[start] == nil {
            var path: [CanonicalUUID] = []
            var position: [CanonicalUUID: Int] = [:]
            var current: CanonicalUUID? = start
            while let id = current, status[id] == nil, position[id] == nil, let node = nodes[id] {
                position[id] = path.count
                path.append(id)
                if let problem = linkProblem(node, nodes, damaged) {
                    status[id] = .broken(vdi: id, reason: problem)
                    current = nil
                } else if !node.differencing {
                    status[id] = .sound(length: 1)
                    current = nil
                } else {
                    current = node.parent  // in `nodes`: linkProblem checked it
                }
            }
            if let id = current, let index = position[id] {
                let loop = (path[index...] + [id]).map(\.string).joinedText(separator: " -> ")
                for member in path[index...] { status[member] = .broken(vdi: member, reason: "parent loop \(loop)") }
            }
            for id in path.reversed() where status[id] == nil {
                guard let parent = nodes[id]?.parent, let above = status[parent] else { continue }
                switch above {
                case .sound(let length): status[id] = .sound(length: length + 1)
                case .broken: status[id] = above
                }
            }
        }
        return status
    }
}

extension VHDRepository {
    /// Reads every VHD's footer and header, each file opened once (regular files only, see
    /// `VHDImage.open`), and with `resolvingLocators` where each differencing disk's locators
    /// lead. Unreadable files are listed in `damaged`.
    public func tree(resolvingLocators: Bool = false) throws(StorageError) -> SRTree {
        var nodes: [CanonicalUUID: SRTree.Node] = [:]
        var damaged: [CanonicalUUID: String] = [:]
        for vdi in try allVDIFiles() {
            do throws(StorageError) {
                let image = try VHDImage.open(vdiPath(vdi))
                var node = SRTree.Node(
                    vdi: vdi, uniqueID: image.footer.uniqueID, hidden: image.footer.hidden,
                    size: image.size, parent: nil, differencing: image.isDifferencing)
                node.modificationTime = Int(try image.modificationTime().tv_sec)
                if image.isDifferencing {
                    node.parent = Self.parentVDI(image.header)
                    node.parentName = image.header.parentName
                    node.parentUniqueID = image.header.parentUniqueID
                    node.parentTimestamp = image.header.parentTimestamp
                    if resolvingLocators { node.locatedParent = try? VHDChain.resolveParent(of: image) }
                }
                nodes[vdi] = node
            } catch {
                damaged[vdi] = error.message
            }
        }
        return SRTree(nodes: nodes, damaged: damaged)
    }

    /// The VDI a header's parent name designates, when it is exactly `<UUID>.vhd` as this SR
    /// names its files (anything else, `../x.vhd` or an absolute path included, names none).
    static func parentVDI(_ header: VHDDynamicHeader) -> CanonicalUUID? {
        let name = header.parentName
        guard name.hasSuffix(vhdSuffix) else { return nil }
        let stem = String(name.dropLast(vhdSuffix.count))
        guard let vdi = CanonicalUUID(canonical: stem) else { return nil }
        return vdi
    }
}
