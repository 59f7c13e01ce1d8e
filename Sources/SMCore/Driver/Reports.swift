/// What `sr_scan` reports about one VDI.
public struct VDIReport: Sendable, Equatable {
    public var uuid: CanonicalUUID
    public var size: UInt64
    public var utilisation: UInt64
    public var locked: Bool = false
    public var label: String = ""
    public var description: String = ""
    public var shareable: Bool = false
    public var readOnly: Bool = false
    public var parent: CanonicalUUID?
    /// Chain health, for SRs of VHD chains (Docs/chain-health.md): the VHD files a read may go
    /// through (the VDI's own included), and at most how many bytes the pending merges of its
    /// chain would copy.
    public var chainDepth: Int?
    public var coalesceBytes: UInt64?

    public init(uuid: CanonicalUUID, size: UInt64, utilisation: UInt64) {
        self.uuid = uuid
        self.size = size
        self.utilisation = utilisation
    }

    var element: ResultElement {
        var children: [ResultElement] = [
            ResultElement("uuid", uuid.string), ResultElement("size", size), ResultElement("utilisation", utilisation),
            ResultElement("locked", locked), ResultElement("label", label), ResultElement("description", description),
            ResultElement("shareable", shareable), ResultElement("read_only", readOnly)
        ]
        if let parent { children.append(ResultElement("parent", parent.string)) }
        if let chainDepth { children.append(ResultElement("chain_depth", UInt64(chainDepth))) }
        if let coalesceBytes { children.append(ResultElement("coalesce_bytes", coalesceBytes)) }
        return ResultElement("vdi", children: children)
    }
}

/// The collector's state in `sr_scan` (SRs of VHD chains).
public struct CollectorReport: Sendable, Equatable {
    public var running: Bool
    public var pendingMerges: Int
    public init(running: Bool, pendingMerges: Int) {
        self.running = running
        self.pendingMerges = pendingMerges
    }
}

/// What `sr_scan` prints, in the order DESIGN.md fixes (the chain-health fields after it).
public struct SRScanReport: Sendable, Equatable {
    public var uuid: CanonicalUUID
    public var physicalUtilisation: UInt64
    public var virtualAllocation: UInt64
    public var physicalSize: UInt64
    public var defaultVDIVisibility: Bool = true
    public var label: String = ""
    public var description: String = ""
    /// The collector, for SRs of VHD chains: whether a pass holds the SR's `gc` claim (on any
    /// host), and how many merges are waiting (hidden VDIs with one child).
    public var collector: CollectorReport?
    public var vdis: [VDIReport]

    public init(
        uuid: CanonicalUUID, physicalUtilisation: UInt64, virtualAllocation: UInt64, physicalSize: UInt64,
        vdis: [VDIReport]
    ) {
        self.uuid = uuid
        self.physicalUtilisation = physicalUtilisation
        self.virtualAllocation = virtualAllocation
        self.physicalSize = physicalSize
        self.vdis = vdis
    }

    public var element: ResultElement {
        ResultElement(
            "sr",
            children: [
                ResultElement("uuid", uuid.string), ResultElement("physical_utilisation", physicalUtilisation),
                ResultElement("virtual_allocation", virtualAllocation), ResultElement("physical_size", physicalSize),
                ResultElement("default_vdi_visibility", defaultVDIVisibility), ResultElement("label", label),
                ResultElement("description", description)
            ]
                + (collector.map { [ResultElement("gc_running", $0.running), ResultElement("pending_merges", UInt64($0.pendingMerges))] }
                    ?? [])
                + vdis.map(\.element))
    }
}

/// What `vdi_attach` prints: where the VDI is and how to read it.
public struct AttachResult: Sendable, Equatable {
    public var path: String
    public var type: String

    public init(path: String, type: String) {
        self.path = path
        self.type = type
    }

    public var element: ResultElement {
        ResultElement("sr", children: [ResultElement("path", path), ResultElement("type", type)])
    }
}

/// What `sr_check` prints: every problem found, empty when the SR is clean.
public struct SRCheckReport: Sendable, Equatable {
    public struct Problem: Sendable, Equatable {
        public var vdi: CanonicalUUID?
        public var message: String
        public init(vdi: CanonicalUUID?, message: String) {
            self.vdi = vdi
            self.message = message
        }
    }

    public var uuid: CanonicalUUID
    public var checkedVDIs: Int
    public var problems: [Problem]

    public init(uuid: CanonicalUUID, checkedVDIs: Int, problems: [Problem]) {
        self.uuid = uuid
        self.checkedVDIs = checkedVDIs
        self.problems = problems
    }

    public var element: ResultElement {
        ResultElement(
            "sr",
            children: [
                ResultElement("uuid", uuid.string), ResultElement("checked", UInt64(checkedVDIs)),
                ResultElement("clean", problems.isEmpty)
            ]
                + problems.map { problem in
                    ResultElement(
                        "problem",
                        children: (problem.vdi.map { [ResultElement("vdi", $0.string)] } ?? [])
                            + [ResultElement("message", problem.message)])
                })
    }
}
