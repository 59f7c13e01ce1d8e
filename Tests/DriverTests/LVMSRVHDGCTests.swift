import Foundation
import SMCore
import SMLVM
import Testing

/// sr_gc and sr_check of LVMSR with VHD VDIs, on loop devices with LVM's activation disabled:
/// everything LVM's metadata decides (findings from tags and names, garbage removal, the space
/// check, the recovery of a coalesce record at each fault point as far as it needs no device).
/// The merge itself, and kill -9 at each fault point, are the VM lane's `lvm-vhd-gc` group; the
/// states here are planted with LVM's own tools, as in `LVMSRVHDTests`.
@Suite(.serialized) struct LVMSRVHDGCTests {
    static func dconf(_ f: LVMSRFixture, type: String = "vhd") -> String { f.vhdDconf(type: type) }

    func call(_ f: LVMSRFixture, _ verb: String, _ arguments: String...) throws -> ProductResult {
        try f.vhdCall(verb, arguments)
    }

    func ok(_ f: LVMSRFixture, _ verb: String, _ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws
        -> ProductResult
    {
        try f.vhdOK(verb, arguments, sourceLocation: sourceLocation)
    }

    func vhdSR(megabytes: UInt64 = 64) throws -> LVMSRFixture { try LVMSRFixture.vhdSR(megabytes: megabytes) }

    func plant(
        _ f: LVMSRFixture, _ name: String, size: UInt64 = 8 << 20, parent: String? = nil, hidden: Bool = false, extents: Int = 1
    ) throws {
        var tags = ["sm_type=vhd", "sm_vsize=\(size)"]
        if let parent { tags.append("sm_parent=\(parent)") }
        if hidden { tags.append("sm_hidden") }
        let result = try LVMOracle.lvm(
            "lvcreate", ["--yes", "-an", "-Zn", "-l", "\(extents)", "-n", name] + tags.flatMap { ["--addtag", $0] } + [f.volumeGroup])
        #expect(result.status == 0, "lvcreate \(name): \(result)")
    }

    func addIntent(_ f: LVMSRFixture, _ record: String) throws {
        let result = try LVMOracle.lvm("vgchange", ["--addtag", "sm_intent=\(record)", f.volumeGroup])
        #expect(result.status == 0, "vgchange: \(result)")
    }

    func groupTags(_ f: LVMSRFixture) throws -> [String] {
        let row = try LVMOracle.report("vgs", section: "vg", ["-o", "vg_tags", f.volumeGroup])?.first
        return (row?["vg_tags"] ?? "").split(separator: ",").map(String.init)
    }

    /// Every volume's name and tags (as a set: LVM may order them).
    func volumes(_ f: LVMSRFixture) throws -> [String: Set<String>] {
        let rows = try LVMOracle.report("lvs", section: "lv", ["-o", "lv_name,lv_tags", f.volumeGroup]) ?? []
        return Dictionary(
            uniqueKeysWithValues: rows.map { ($0["lv_name"] ?? "", Set(($0["lv_tags"] ?? "").split(separator: ",").map(String.init))) })
    }

    func smlog(_ f: LVMSRFixture) -> String { (try? String(contentsOfFile: f.scratch.path("SMlog"), encoding: .utf8)) ?? "" }

    /// sr_check: clean on a sound SR (exit 0, `<clean>True</clean>`); each finding from metadata
    /// makes it EIO with the problems on stdout and changes nothing. sr_gc takes no decision
    /// while a chain is broken, then removes hidden VDIs without children.
    @Test(.timeLimit(.minutes(3))) func checkAndGarbage() throws {
        let f = try vhdSR()
        defer { f.tearDown() }
        let (base, leaf, garbage, orphan, missing) = (newUUID(), newUUID(), newUUID(), newUUID(), newUUID())
        try plant(f, "LV-\(base)", hidden: true)
        try plant(f, "LV-\(leaf)", parent: base)
        let clean = try ok(f, "sr_check", f.sr)
        #expect(clean.standardOutput.contains("<clean>True</clean>"), "\(clean)")
        #expect(clean.standardOutput.contains("<checked>2</checked>"), "\(clean)")

        try plant(f, "LV-\(garbage)", parent: base, hidden: true)
        try plant(f, "LV-\(orphan)", parent: missing)
        try plant(f, "LV-\(leaf).new", parent: base)
        let before = try volumes(f)
        let found = try call(f, "sr_check", f.sr)
        #expect(found.status == 5, "\(found)")
        #expect(found.reason.contains("sr_check found 3 problem(s)"), "\(found)")
        let out = found.standardOutput
        #expect(out.contains("<clean>False</clean>"), "\(out)")
        #expect(out.contains("parent tag names VDI \(missing), which has no logical volume"), "\(out)")
        #expect(out.contains("hidden VDI without children"), "\(out)")
        #expect(out.contains("LV-\(leaf).new is a temporary of an operation without a record"), "\(out)")
        #expect(try volumes(f) == before)

        // A broken chain: no decision at all.
        _ = try ok(f, "sr_gc", f.sr)
        #expect(try volumes(f) == before)
        #expect(smlog(f).contains("not coalescing or reclaiming"), "\(smlog(f))")
        _ = try LVMOracle.lvm("lvremove", ["--yes", "\(f.volumeGroup)/LV-\(orphan)"])
        _ = try LVMOracle.lvm("lvremove", ["--yes", "\(f.volumeGroup)/LV-\(leaf).new"])
        _ = try ok(f, "sr_gc", f.sr)
        #expect(Set(try volumes(f).keys) == ["LV-\(base)", "LV-\(leaf)"])
        // base has one child: a merge, which needs a device; skipped with the reason.
        #expect(smlog(f).contains("not coalescing \(base) into \(leaf) now: no device to merge on"), "\(smlog(f))")
        #expect(try groupTags(f) == ["sm_vdi_type=vhd"])
        _ = try ok(f, "sr_check", f.sr)
    }

    /// The space check comes first: a merge whose worst case does not fit the free extents is
    /// skipped with the ENOSPC text (bytes and extents needed and free), nothing changed, and
    /// sr_gc still succeeds. A child attached on this host is not merged either.
    @Test(.timeLimit(.minutes(3))) func spaceCheckAndAttachedChild() throws {
        let f = try vhdSR(megabytes: 64)
        defer { f.tearDown() }
        let (parent, child) = (newUUID(), newUUID())
        try plant(f, "LV-\(parent)", hidden: true, extents: 2)
        try plant(f, "LV-\(child)", parent: parent, extents: 3)
        let free = try #require(try LVMOracle.report("vgs", section: "vg", ["-o", "vg_free_count", f.volumeGroup])?.first?["vg_free_count"])
        let filler = try LVMOracle.lvm("lvcreate", ["--yes", "-an", "-Zn", "-l", "\(Int(free)! - 3)", "-n", "filler", f.volumeGroup])
        #expect(filler.status == 0, "\(filler)")
        let before = try volumes(f)
        _ = try ok(f, "sr_gc", f.sr)
        #expect(try volumes(f) == before)
        #expect(try groupTags(f) == ["sm_vdi_type=vhd"])
        // H (2 extents) must grow by C's 3 extents plus alignment: 6 extents, 4 more than it has.
        #expect(
            smlog(f).contains(
                "coalescing VDI \(parent) into \(child) needs 16777216 bytes (4 extents) in the worst case; "
                    + "the volume group has 12582912 bytes free (3 extents)"), "\(smlog(f))")
        _ = try LVMOracle.lvm("lvremove", ["--yes", "\(f.volumeGroup)/filler"])
        _ = try ok(f, "vdi_attach", f.sr, child)
        _ = try ok(f, "sr_gc", f.sr)
        #expect(smlog(f).contains("not coalescing \(parent) into \(child) now: VDI \(child) is attached on this host"), "\(smlog(f))")
        _ = try ok(f, "vdi_detach", f.sr, child)
    }

    /// Recovery of `coalesce:H:C` from the state each fault point leaves (the VM lane reaches
    /// them with kill -9): before the commit (journaled, merged) it rolls back by removing the
    /// record; after the renames (renamed, committed) it completes from the names and tags alone;
    /// in between (child-set-aside, identity-written) H must take C's identity from its VHD, which
    /// needs a device: the record stays, nothing is changed, and sr_scan still answers.
    @Test(.timeLimit(.minutes(4))) func coalesceRecovery() throws {
        let f = try vhdSR(megabytes: 128)
        defer { f.tearDown() }
        let bystander = newUUID()
        try plant(f, "LV-\(bystander)")
        for point in FaultPoint.LVMCoalesce.names {
            let (h, c, grandchild) = (newUUID(), newUUID(), newUUID())
            let record = "coalesce:\(h):\(c)"
            var expected: [String: Set<String>]
            var recordStays = false
            switch point {
            case "lvm-coalesce.journaled", "lvm-coalesce.merged":
                try plant(f, "LV-\(h)", hidden: true)
                try plant(f, "LV-\(c)", size: 16 << 20, parent: h)
                expected = [
                    "LV-\(h)": ["sm_type=vhd", "sm_vsize=8388608", "sm_hidden"],
                    "LV-\(c)": ["sm_type=vhd", "sm_vsize=16777216", "sm_parent=\(h)"]
                ]
            case "lvm-coalesce.child-set-aside", "lvm-coalesce.identity-written":
                try plant(f, "LV-\(h)", hidden: true)
                try plant(f, "LV-\(c).coalesced", size: 16 << 20, parent: h)
                expected = [
                    "LV-\(h)": ["sm_type=vhd", "sm_vsize=8388608", "sm_hidden"],
                    "LV-\(c).coalesced": ["sm_type=vhd", "sm_vsize=16777216", "sm_parent=\(h)"]
                ]
                recordStays = true
            case "lvm-coalesce.renamed":
                try plant(f, "LV-\(c)", hidden: true)
                try plant(f, "LV-\(c).coalesced", size: 16 << 20, parent: h)
                expected = ["LV-\(c)": ["sm_type=vhd", "sm_vsize=16777216"]]
            case "lvm-coalesce.committed":
                try plant(f, "LV-\(c)", size: 16 << 20)
                expected = ["LV-\(c)": ["sm_type=vhd", "sm_vsize=16777216"]]
            default:
                Issue.record("fault point \(point) has no planted state in this test")
                continue
            }
            try plant(f, "LV-\(grandchild)", size: 16 << 20, parent: c)
            try addIntent(f, record)
            let scan = try ok(f, "sr_scan", f.sr)
            var all = try volumes(f)
            #expect(all.removeValue(forKey: "LV-\(bystander)") == ["sm_type=vhd", "sm_vsize=8388608"], "\(point)")
            #expect(all.removeValue(forKey: "LV-\(grandchild)") != nil, "\(point)")
            #expect(all == expected, "\(point): \(all); SMlog: \(smlog(f))")
            let tags = try groupTags(f)
            #expect(tags.contains("sm_intent=\(record)") == recordStays, "\(point): \(tags)")
            #expect(scan.standardOutput.contains("<uuid>\(bystander)</uuid>"), "\(point)")
            if !recordStays {
                #expect(scan.standardOutput.contains("<uuid>\(c)</uuid>"), "\(point): \(scan.standardOutput)")
                #expect(!scan.standardOutput.contains("<uuid>\(h)</uuid>"), "\(point)")
            } else {
                // The record is reported by sr_check and keeps sr_gc away from its VDIs.
                let check = try call(f, "sr_check", f.sr)
                #expect(check.status == 5 && check.standardOutput.contains("unfinished operation record"), "\(point): \(check)")
                _ = try ok(f, "sr_gc", f.sr)
                #expect(Set(try volumes(f).keys).isSuperset(of: expected.keys), "\(point)")
                _ = try LVMOracle.lvm("vgchange", ["--deltag", "sm_intent=\(record)", f.volumeGroup])
            }
            for name in Set(expected.keys).union(["LV-\(grandchild)"]) {
                _ = try LVMOracle.lvm("lvremove", ["--yes", "\(f.volumeGroup)/\(name)"])
            }
        }
    }

    /// A raw SR has no chains: sr_gc succeeds doing nothing, sr_check is clean.
    @Test(.timeLimit(.minutes(2))) func rawSR() throws {
        let f = try LVMSRFixture(devices: 1, megabytes: 64)
        defer { f.tearDown() }
        let raw = Self.dconf(f, type: "raw")
        #expect(try f.scratch.run("LVMSR", [raw, "sr_create", f.sr, "0"]).status == 0)
        #expect(try f.scratch.run("LVMSR", [raw, "sr_attach", f.sr]).status == 0)
        #expect(try f.scratch.run("LVMSR", [raw, "vdi_create", f.sr, newUUID(), "\(4 << 20)"]).status == 0)
        let gc = try f.scratch.run("LVMSR", [raw, "sr_gc", f.sr])
        #expect(gc.status == 0, "\(gc)")
        let check = try f.scratch.run("LVMSR", [raw, "sr_check", f.sr])
        #expect(check.status == 0 && check.standardOutput.contains("<checked>1</checked>"), "\(check)")
        #expect(smlog(f).contains("a raw SR (thick volumes, no chains): nothing to collect"))
    }
}

/// The merge's data steps on block devices (loop devices, no device-mapper needed), as sr_gc runs
/// them: H's device sized by the space rule (`LVMSpacePlan.coalesceExtents`), C larger than H
/// (a leaf resized after its snapshot) so that absorbing grows H's BAT and may move its blocks on
/// the device, C's sectors copied in, H takes C's identity: H alone then reads exactly what C
/// read through the chain, its end footer is found again, it fits the device, and a child of C
/// opens through it.
@Suite(.serialized) struct LVMCoalesceOnBlockDeviceTests {
    @Test(.timeLimit(.minutes(3))) func absorbIntoALargerChildOnDevices() throws {
        let scratch = try Scratch("lvm-coalesce")
        let (parentSize, childSize): (UInt64, UInt64) = (8 << 20, 40 << 20)
        let extent: UInt64 = 4 << 20
        let (parentBytes, childBytes): (UInt64, UInt64) = (8 << 20, 12 << 20)
        let wanted = LVMSpacePlan.coalesceExtents(
            parentBytes: parentBytes, childBytes: childBytes, parentSize: parentSize, childSize: childSize, extentSize: extent)
        let parentDevice = try LoopDevice(size: wanted * extent, in: scratch.path("data"))
        defer { parentDevice.release() }
        let childDevice = try LoopDevice(size: childBytes, in: scratch.path("data"))
        defer { childDevice.release() }
        let grandchildDevice = try LoopDevice(size: 4 << 20, in: scratch.path("data"))
        defer { grandchildDevice.release() }
        let parentID = CanonicalUUID.random().bytes
        do {
            let parent = try VHDImage.createOnBlockDevice(at: parentDevice.path, size: parentSize, uniqueID: parentID)
            try parent.write(at: 0, bytes: [UInt8](repeating: 0x11, count: 3 << 20))
            try parent.write(at: 6 << 20, bytes: [UInt8](repeating: 0x22, count: 4096))
            #expect(parent.occupiedBytes <= parentBytes)
        }
        let parent = try VHDImage.openBlockDevice(parentDevice.path)
        let childID = CanonicalUUID.random().bytes
        let parentName = String(parentDevice.path.split(separator: "/").last!)
        try VHDImage.createOnBlockDevice(
            at: childDevice.path, size: childSize, uniqueID: childID,
            differencing: VHDImage.DifferencingSetup(
                parentUniqueID: parentID, parentTimestamp: parent.footer.timestamp, parentFileName: parentName))
        do {
            let chain = try VHDChain.open(childDevice.path, writable: true, blockDevices: true)
            try chain.write(at: 1 << 20, bytes: [UInt8](repeating: 0x33, count: 2 << 20))
            try chain.write(at: 30 << 20, bytes: [UInt8](repeating: 0x44, count: 1 << 20))
        }
        let expected = try VHDChain.open(childDevice.path, blockDevices: true).read(at: 0, count: Int(childSize))
        let child = try VHDImage.openBlockDevice(childDevice.path)
        #expect(child.occupiedBytes <= childBytes)

        let target = try VHDImage.openBlockDevice(parentDevice.path, writable: true)
        try target.absorb(child)
        try target.takeIdentity(of: child.footer)
        let merged = try VHDImage.openBlockDevice(parentDevice.path)
        #expect(!merged.endFooterDamaged)
        #expect(merged.size == childSize)
        #expect(merged.footer.uniqueID == childID && merged.footer.timestamp == child.footer.timestamp)
        #expect(merged.occupiedBytes <= wanted * extent)
        #expect(try merged.read(at: 0, count: Int(childSize)) == expected)

        // A child of C finds the merged volume as its parent (unique id and name).
        try VHDImage.createOnBlockDevice(
            at: grandchildDevice.path, size: childSize, uniqueID: CanonicalUUID.random().bytes,
            differencing: VHDImage.DifferencingSetup(
                parentUniqueID: childID, parentTimestamp: child.footer.timestamp, parentFileName: parentName))
        let chain = try VHDChain.open(grandchildDevice.path, blockDevices: true)
        #expect(chain.length == 2)
        #expect(try chain.read(at: 0, count: Int(childSize)) == expected)
    }
}
