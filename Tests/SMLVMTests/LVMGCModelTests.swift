import Testing

@testable import SMCore
@testable import SMLVM

/// sr_gc's and sr_check's decisions from LVM metadata alone (Docs/LVMSR.md, "sr_gc",
/// "sr_check"): the coalesce space rule and its error text, what keeps a pair from merging,
/// and every finding sr_check makes from tags and names. Pure: no LVM, no device.
@Suite struct LVMGCModelTests {
    let a = CanonicalUUID("11111111-1111-4111-8111-111111111111")!
    let b = CanonicalUUID("22222222-2222-4222-8222-222222222222")!
    let c = CanonicalUUID("33333333-3333-4333-8333-333333333333")!
    let d = CanonicalUUID("44444444-4444-4444-8444-444444444444")!
    let extent: UInt64 = 4 << 20

    func volume(
        _ name: String, size: UInt64 = 4 << 20, parent: CanonicalUUID? = nil, hidden: Bool = false, vsize: UInt64 = 40 << 20,
        open: Bool = false, tags: [String]? = nil
    ) -> LogicalVolume.Report {
        LogicalVolume.Report(
            name: name, size: size, attributes: "-wi-------", activation: .inactive, isOpen: open,
            tags: tags ?? VDITags(isVHD: true, virtualSize: vsize, parent: parent, hidden: hidden).tags)
    }

    /// The worst case holds H's volume and every byte of C's, plus alignment; a larger child adds
    /// the BAT growth. The ENOSPC text names the pair, the bytes and extents needed and free.
    @Test func coalesceSpaceRule() throws {
        let same = LVMSpacePlan.coalesceExtents(
            parentBytes: 8 << 20, childBytes: 12 << 20, parentSize: 40 << 20, childSize: 40 << 20, extentSize: extent)
        #expect(same * extent >= (20 << 20) + 8 * VHDImage.dataAlignment)
        #expect(same == 6)
        let larger = LVMSpacePlan.coalesceExtents(
            parentBytes: 8 << 20, childBytes: 12 << 20, parentSize: 40 << 20, childSize: 4 << 30, extentSize: extent)
        #expect(larger > same)
        // A child of every block of its VHD: H's volume must be able to take all of them.
        let full = VHDImage.fullyAllocatedSize(virtualSize: 40 << 20)
        let worst = LVMSpacePlan.coalesceExtents(
            parentBytes: 4 << 20, childBytes: full, parentSize: 40 << 20, childSize: 40 << 20, extentSize: extent)
        #expect(worst * extent >= (4 << 20) + full)
        let report = try VolumeGroup.Report(
            LVMReport.Row(fields: [
                "vg_size": "67108864", "vg_free": "8388608", "vg_extent_size": "4194304", "vg_extent_count": "16",
                "vg_free_count": "2", "pv_count": "1", "vg_missing_pv_count": "0", "lv_count": "2"
            ]))
        let error = StorageError.noRoomForWorstCase("coalescing VDI \(a) into \(b)", extents: same - 2, in: report)
        #expect(error.code == .noSpace)
        #expect(
            error.message
                == "coalescing VDI \(a) into \(b) needs 16777216 bytes (4 extents) in the worst case; "
                + "the volume group has 8388608 bytes free (2 extents)")
    }

    /// A pair is not merged while the child, or a VDI reading through it, is attached here, while
    /// either volume is open, or when the parent is larger than the child.
    @Test func coalesceHazards() throws {
        let volumes = try VDIVolumes([
            volume("LV-\(a)", hidden: true), volume("LV-\(b)", parent: a), volume("LV-\(c)", parent: b), volume("LV-\(d)", parent: c)
        ])
        let h = try #require(volumes.byVDI[a])
        let child = try #require(volumes.byVDI[b])
        #expect(LVMRepository.coalesceHazard(parent: h, child: child, volumes: volumes, attached: []) == nil)
        #expect(
            LVMRepository.coalesceHazard(parent: h, child: child, volumes: volumes, attached: [b]) == "VDI \(b) is attached on this host")
        #expect(
            LVMRepository.coalesceHazard(parent: h, child: child, volumes: volumes, attached: [d])
                == "VDI \(d), which reads through \(b), is attached on this host")
        var open = child
        open.report.isOpen = true
        #expect(LVMRepository.coalesceHazard(parent: h, child: open, volumes: volumes, attached: [])?.contains("is open") == true)
        var big = h
        big.tags.virtualSize = 80 << 20
        #expect(
            LVMRepository.coalesceHazard(parent: big, child: child, volumes: volumes, attached: [])
                == "parent \(a) is larger than its child \(b)")
    }

    /// The record round-trips and fits LVM's tag limit.
    @Test func coalesceRecord() throws {
        let intent = LVMIntent(.coalesce, [a, b])
        #expect(intent.tag == "sm_intent=coalesce:\(a):\(b)")
        #expect(intent.tag.count <= 128)
        #expect(try LVMIntent(tag: intent.tag) == intent)
        #expect(throws: StorageError.self) { try LVMIntent(tag: "sm_intent=coalesce:\(a)") }
        #expect(LVMRepository.pendingVDIs(["x", intent.tag, "sm_intent=bogus:1"]) == [a, b])
    }

    /// A sound SR has no findings: a chain with a hidden parent that has a child, a temporary
    /// of a live operation (its VDI busy here: sr_check leaves its record and VDIs alone).
    @Test func soundSRHasNoFindings() {
        let problems = LVMRepository.tagProblems(
            volumes: [
                volume("LV-\(a)", hidden: true), volume("LV-\(b)", parent: a), volume("LV-\(c).new", parent: b),
                volume("other", tags: [])
            ],
            groupTags: ["sm_vdi_type=vhd"], busy: [c])
        #expect(problems.isEmpty, "\(problems)")
    }

    /// Each finding from tags and names, naming its VDI.
    @Test func findingsFromTags() {
        func findings(_ volumes: [LogicalVolume.Report], tags: [String] = [], busy: Set<CanonicalUUID> = []) -> [String] {
            LVMRepository.tagProblems(volumes: volumes, groupTags: tags, busy: busy).map { "\($0.vdi?.string ?? "-"): \($0.message)" }
        }
        // A parent tag naming no volume.
        #expect(findings([volume("LV-\(b)", parent: a)]) == ["\(b): parent tag names VDI \(a), which has no logical volume (broken chain)"])
        // Hidden without children: garbage.
        #expect(findings([volume("LV-\(a)", hidden: true)]) == ["\(a): hidden VDI without children (garbage: sr_gc removes it)"])
        // Temporaries without a record; with one, nothing; of a busy VDI, nothing.
        let temporaries = findings([volume("LV-\(a).new"), volume("LV-\(b).coalesced")])
        #expect(temporaries.count == 2)
        #expect(temporaries.allSatisfy { $0.contains("is a temporary of an operation without a record") }, "\(temporaries)")
        #expect(findings([volume("LV-\(a).new")], busy: [a]).isEmpty)
        // A record that recovery left: reported; an unreadable one too; their temporaries are not.
        let records = findings(
            [volume("LV-\(a)"), volume("LV-\(a).new", parent: b), volume("LV-\(b)")],
            tags: ["sm_intent=snapshot:\(a):\(b)", "sm_intent=merge:\(a)"])
        #expect(
            records == [
                "\(a): unfinished operation record 'sm_intent=snapshot:\(a):\(b)' was not recovered",
                "-: intent record 'sm_intent=merge:\(a)' cannot be read; it is left in place"
            ], "\(records)")
        // A loop.
        let loop = findings([volume("LV-\(a)", parent: b), volume("LV-\(b)", parent: a)])
        #expect(loop.count == 2 && loop.allSatisfy { $0.contains("loops") }, "\(loop)")
        // A damaged tag.
        #expect(
            findings([volume("LV-\(a)", tags: ["sm_type=vhd", "sm_vsize=x"])])
                == ["\(a): logical volume LV-\(a) has a damaged size tag 'sm_vsize=x'"])
        // A raw parent.
        #expect(findings([volume("LV-\(a)", tags: []), volume("LV-\(b)", parent: a)]) == ["\(b): parent \(a) is a raw volume, not a VHD"])
    }

    /// A chain over 30 VHDs is reported at each VDI past the limit.
    @Test func chainOverTheLimit() {
        var uuids: [CanonicalUUID] = []
        for _ in 0..<32 { uuids.append(CanonicalUUID.random()) }
        var volumes = [volume("LV-\(uuids[0])")]
        for index in 1..<uuids.count { volumes.append(volume("LV-\(uuids[index])", parent: uuids[index - 1])) }
        let problems = LVMRepository.tagProblems(volumes: volumes, groupTags: [], busy: [])
        #expect(Set(problems.compactMap(\.vdi)) == [uuids[30], uuids[31]])
        #expect(problems.first { $0.vdi == uuids[31] }?.message == "chain of 32 VHDs, more than 30")
    }
}
