import Testing

@testable import SMCore
@testable import SMLVM

/// The metadata model of a VHD SR on LVM: VDI tags, intent records, the chain walk over tags
/// and the space rule (Docs/LVMSR.md). Pure: no LVM, no device.
@Suite struct VDITagsTests {
    let a = CanonicalUUID("11111111-1111-4111-8111-111111111111")!
    let b = CanonicalUUID("22222222-2222-4222-8222-222222222222")!
    let c = CanonicalUUID("33333333-3333-4333-8333-333333333333")!

    /// Tags round-trip; a volume without `sm_type=vhd` is raw whatever else it carries.
    @Test func tagsRoundTrip() throws {
        let tags = VDITags(isVHD: true, virtualSize: 1 << 30, parent: a, hidden: true)
        #expect(tags.tags == ["sm_type=vhd", "sm_vsize=1073741824", "sm_parent=\(a)", "sm_hidden"])
        #expect(try VDITags(tags: tags.tags, volume: "LV-x") == tags)
        #expect(try VDITags(tags: ["other", "sm_vsize=5"], volume: "LV-x").isVHD == false)
        #expect(VDITags(isVHD: false).tags.isEmpty)
    }

    /// A damaged size or parent tag, or a VHD without a size, is EIO naming the volume.
    @Test func damagedTags() {
        for tags in [["sm_type=vhd"], ["sm_type=vhd", "sm_vsize=12x"], ["sm_type=vhd", "sm_vsize=1", "sm_parent=nope"]] {
            #expect(throws: StorageError.self) { try VDITags(tags: tags, volume: "LV-x") }
            do {
                _ = try VDITags(tags: tags, volume: "LV-x")
            } catch {
                #expect(error.code == .ioError && error.message.contains("LV-x"), "\(error)")
            }
        }
    }

    /// The dconf choice: absent is raw (a group made before VHD support), `vhd` or `raw`, else EINVAL.
    @Test func vdiTypeChoice() throws {
        #expect(try LVMVDIType(configuration: nil) == .raw)
        #expect(try LVMVDIType(configuration: "vhd") == .vhd)
        #expect(try LVMVDIType(configuration: "raw") == .raw)
        #expect(throws: StorageError.self) { try LVMVDIType(configuration: "qcow2") }
        #expect(LVMVDIType(groupTags: ["x", "sm_vdi_type=vhd"]) == .vhd)
        #expect(LVMVDIType(groupTags: []) == .raw)
    }

    /// Intent records round-trip through a tag; an unknown operation or a wrong count is EIO; a
    /// tag that is no record is nil. Every record fits LVM's 128-character tag limit.
    @Test func intentRecords() throws {
        for intent in [
            LVMIntent(.create, [a]), LVMIntent(.resize, [a]), LVMIntent(.snapshot, [a, b]), LVMIntent(.clone, [a, b, c]),
            LVMIntent(.cloneChild, [a, b])
        ] {
            #expect(try LVMIntent(tag: intent.tag) == intent)
            #expect(intent.tag.count <= 128)
        }
        #expect(try LVMIntent(tag: "sm_vdi_type=vhd") == nil)
        #expect(throws: StorageError.self) { try LVMIntent(tag: "sm_intent=merge:\(a)") }
        #expect(throws: StorageError.self) { try LVMIntent(tag: "sm_intent=snapshot:\(a)") }
        #expect(throws: StorageError.self) { try LVMIntent(tag: "sm_intent=snapshot:\(a):xyz") }
    }

    func volume(_ vdi: CanonicalUUID, parent: CanonicalUUID? = nil, hidden: Bool = false, suffix: String = "") -> LogicalVolume.Report {
        LogicalVolume.Report(
            name: "LV-\(vdi)\(suffix)", size: 4 << 20, attributes: "-wi-------", activation: .inactive, isOpen: false,
            tags: VDITags(isVHD: true, virtualSize: 1 << 20, parent: parent, hidden: hidden).tags)
    }

    /// The chain walk: ancestors nearest first, the nearest listed parent skips hidden ones,
    /// temporaries are not VDIs, a missing parent or a loop is EIO.
    @Test func chainWalk() throws {
        let volumes = try VDIVolumes([volume(a), volume(b, parent: a, hidden: true), volume(c, parent: b), volume(c, suffix: ".new")])
        #expect(try volumes.ancestors(of: c).map(\.vdi) == [b, a])
        #expect(volumes.listedParent(of: c) == a)
        #expect(volumes.children[a] == [b])
        #expect(volumes.byVDI.count == 3)
        #expect(volumes.names.contains("LV-\(c).new"))
        let orphan = try VDIVolumes([volume(c, parent: b)])
        #expect(throws: StorageError.self) { try orphan.ancestors(of: c) }
        let loop = try VDIVolumes([volume(a, parent: b), volume(b, parent: a)])
        #expect(throws: StorageError.self) { try loop.ancestors(of: a) }
    }

    /// The space rule: an empty VHD fits one extent up to large sizes; inflated, a VHD needs its
    /// virtual size plus the bitmaps, padding and metadata, never less; the worst case of a
    /// clone is two inflated children.
    @Test func spaceRule() {
        let extent: UInt64 = 4 << 20
        #expect(LVMSpacePlan.emptyExtents(virtualSize: 40 << 20, extentSize: extent) == 1)
        #expect(LVMSpacePlan.emptyExtents(virtualSize: 2040 << 30, extentSize: extent) == 1)
        for size: UInt64 in [1, 2 << 20, 40 << 20, 1 << 30, 2040 << 30] {
            let inflated = VHDImage.fullyAllocatedSize(virtualSize: size)
            let blocks = (size + VHDImage.blockSize - 1) / VHDImage.blockSize
            #expect(inflated >= blocks * (VHDImage.blockSize + VHDImage.bitmapSize) + VHDImage.metadataSize(virtualSize: size))
            #expect(inflated <= size + blocks * 8192 + VHDImage.metadataSize(virtualSize: size) + (2 << 20) + 8192)
        }
        #expect(
            LVMSpacePlan.worstCase(children: 2, virtualSize: 40 << 20, extentSize: extent)
                == 2 * LVMSpacePlan.inflatedExtents(virtualSize: 40 << 20, extentSize: extent))
    }
}
