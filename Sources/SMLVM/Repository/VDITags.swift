import SMCore

/// The kind of VDIs an LVM SR makes: raw logical volumes (the default, and every group made
/// before VHD support) or VHD images written straight onto logical volumes.
public enum LVMVDIType: String, Sendable, Equatable {
    case raw
    case vhd

    /// The dconf key that chooses the type at sr_create (`vdi_type=vhd` or `raw`).
    public static let configurationKey = "vdi_type"
    /// The group tag that records a VHD SR (a group without it is raw).
    static let groupTag = "sm_vdi_type=vhd"

    /// The dconf value: nil (absent) is raw; anything but `raw` or `vhd` is EINVAL.
    public init(configuration value: String?) throws(StorageError) {
        guard let value else {
            self = .raw
            return
        }
        guard let type = LVMVDIType(rawValue: value) else {
            throw .invalid("dconf \(Self.configurationKey) '\(ArgumentParsing.printable(value))' is neither 'vhd' nor 'raw'")
        }
        self = type
    }

    /// The type a group's tags record.
    init(groupTags: [String]) { self = groupTags.contains(Self.groupTag) ? .vhd : .raw }
}

/// What a VDI's logical volume records in its tags (one LVM metadata commit changes them with
/// the volume): `sm_type=vhd`, `sm_vsize=<virtual size in bytes>`, `sm_parent=<VDI UUID>` for a
/// differencing disk, `sm_hidden` for a deleted VDI kept for its children. A volume without
/// `sm_type=vhd` is a raw VDI (every volume made before VHD support). The VHD itself is the
/// authority for reading; the tags let sr_scan, the space checks and chain walks work from
/// LVM's metadata alone, without activating any volume.
public struct VDITags: Sendable, Equatable {
    public var isVHD: Bool
    public var virtualSize: UInt64?
    public var parent: CanonicalUUID?
    public var hidden: Bool

    static let vhdTag = "sm_type=vhd"
    static let sizePrefix = "sm_vsize="
    static let parentPrefix = "sm_parent="
    static let hiddenTag = "sm_hidden"

    public init(isVHD: Bool, virtualSize: UInt64? = nil, parent: CanonicalUUID? = nil, hidden: Bool = false) {
        self.isVHD = isVHD
        self.virtualSize = virtualSize
        self.parent = parent
        self.hidden = hidden
    }

    /// Reads the tags LVM reports; unknown tags are ignored. EIO for a VHD volume whose size or
    /// parent tag is not a number or a UUID (a damaged or hand-edited volume).
    public init(tags: [String], volume: String) throws(StorageError) {
        isVHD = tags.contains(Self.vhdTag)
        hidden = tags.contains(Self.hiddenTag)
        virtualSize = nil
        parent = nil
        for tag in tags {
            if tag.hasPrefix(Self.sizePrefix) {
                guard let size = UInt64(tag.dropFirst(Self.sizePrefix.count)) else {
                    throw .io("logical volume \(volume) has a damaged size tag '\(tag)'")
                }
                virtualSize = size
            } else if tag.hasPrefix(Self.parentPrefix) {
                let text = String(tag.dropFirst(Self.parentPrefix.count))
                guard let uuid = CanonicalUUID(canonical: text) else {
                    throw .io("logical volume \(volume) has a damaged parent tag '\(tag)'")
                }
                parent = uuid
            }
        }
        if isVHD, virtualSize == nil { throw .io("logical volume \(volume) is a VHD without a size tag") }
    }

    /// The tags to give a volume (`lvcreate --addtag`).
    public var tags: [String] {
        guard isVHD else { return [] }
        var tags = [Self.vhdTag]
        if let virtualSize { tags.append("\(Self.sizePrefix)\(virtualSize)") }
        if let parent { tags.append("\(Self.parentPrefix)\(parent)") }
        if hidden { tags.append(Self.hiddenTag) }
        return tags
    }
}

/// One VDI volume of a VHD SR, as LVM's metadata describes it.
struct VDIVolume {
    var vdi: CanonicalUUID
    var report: LogicalVolume.Report
    var tags: VDITags
}

/// The SR's VDI volumes by UUID, with their children: everything a chain walk needs, from one
/// `lvs`.
struct VDIVolumes {
    var byVDI: [CanonicalUUID: VDIVolume] = [:]
    var children: [CanonicalUUID: [CanonicalUUID]] = [:]
    /// Names of every volume in the group (temporaries included).
    var names: Set<String> = []

    init(_ volumes: [LogicalVolume.Report]) throws(StorageError) {
        for volume in volumes {
            names.insert(volume.name)
            guard let vdi = LVMRepository.vdi(fromLogicalVolume: volume.name) else { continue }
            let tags = try VDITags(tags: volume.tags, volume: volume.name)
            byVDI[vdi] = VDIVolume(vdi: vdi, report: volume, tags: tags)
            if let parent = tags.parent { children[parent, default: []].append(vdi) }
        }
    }

    /// The ancestors of `vdi`, nearest first. EIO for a parent that does not exist or a loop.
    func ancestors(of vdi: CanonicalUUID) throws(StorageError) -> [VDIVolume] {
        var result: [VDIVolume] = []
        var seen: Set<CanonicalUUID> = [vdi]
        var next = byVDI[vdi]?.tags.parent
        while let parent = next {
            guard let volume = byVDI[parent] else { throw .io("VDI \(vdi)'s chain names parent \(parent), which has no logical volume") }
            guard seen.insert(parent).inserted, result.count < 256 else { throw .io("VDI \(vdi)'s chain loops at \(parent)") }
            result.append(volume)
            next = volume.tags.parent
        }
        return result
    }

    /// The nearest ancestor sr_scan lists (not hidden).
    func listedParent(of vdi: CanonicalUUID) -> CanonicalUUID? {
        guard let ancestors = try? ancestors(of: vdi) else { return byVDI[vdi]?.tags.parent }
        return ancestors.first { !$0.tags.hidden }?.vdi
    }
}

/// The space rule of a VHD SR (Docs/LVMSR.md): an operation goes ahead only when the group's
/// free extents hold its worst case, every new child LV inflated to the full size of its VHD.
public enum LVMSpacePlan {
    /// Extents that a VHD of `virtualSize` needs once inflated (every block allocated).
    public static func inflatedExtents(virtualSize: UInt64, extentSize: UInt64) -> UInt64 {
        extents(VHDImage.fullyAllocatedSize(virtualSize: virtualSize), extentSize: extentSize)
    }

    /// Extents a new, empty VHD of `virtualSize` needs (a deflated new child).
    public static func emptyExtents(virtualSize: UInt64, extentSize: UInt64) -> UInt64 {
        extents(VHDImage.metadataSize(virtualSize: virtualSize), extentSize: extentSize)
    }

    /// The worst case of an operation that makes `children` new children of a VDI of
    /// `virtualSize`: each one inflated.
    public static func worstCase(children: Int, virtualSize: UInt64, extentSize: UInt64) -> UInt64 {
        UInt64(children) * inflatedExtents(virtualSize: virtualSize, extentSize: extentSize)
    }

    static func extents(_ bytes: UInt64, extentSize: UInt64) -> UInt64 {
        bytes / extentSize + (bytes % extentSize == 0 ? 0 : 1)
    }
}

extension StorageError {
    /// ENOSPC: the worst case of an operation on a VHD SR does not fit the group's free extents.
    static func noRoomForWorstCase(_ what: String, extents: UInt64, in report: VolumeGroup.Report) -> StorageError {
        .noSpace(
            "\(what) needs \(extents * report.extentSize) bytes (\(extents) extents) in the worst case; "
                + "the volume group has \(report.freeExtentCount * report.extentSize) bytes free "
                + "(\(report.freeExtentCount) extents)")
    }

    /// ENOSYS: copy-on-write asked of a raw VDI.
    static func rawVDI(_ verb: String, _ vdi: CanonicalUUID) -> StorageError {
        .notImplemented(
            verb, driver: "LVM",
            reason: "VDI \(vdi) is a raw logical volume; only VHD VDIs (an SR made with dconf vdi_type=vhd) have copy-on-write")
    }
}
