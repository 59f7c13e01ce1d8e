import SMCore

/// sr_check of an LVM SR (Docs/LVMSR.md, "sr_check"). First from LVM's metadata alone (tags and
/// names, `tagProblems`): damaged tags, parent tags naming no volume, loops, chains over 30
/// VHDs, hidden VDIs without children (garbage sr_gc removes), temporaries (`.new`,
/// `.coalesced`) and intent records that recovery could not settle. Then, where LVM activation
/// works, each VHD VDI's footers and header are read (`VHDImage.openBlockDevice`): unreadable,
/// no valid end footer, a virtual size other than its tag's, a parent unique id other than its
/// parent's. Only inactive volumes are activated, and they are deactivated again; a volume that
/// cannot be activated here (active on another host of a shared group) is not read, and says so
/// in the log. A raw SR has no chains: its check is the metadata one (nothing to find).
extension LVMRepository {
    public func check(sr: CanonicalUUID) throws(StorageError) -> SRCheckReport {
        try requireAttached(sr)
        let group = try volumeGroup(sr)
        guard try type(of: group, sr: sr) == .vhd else {
            let volumes: [LogicalVolume.Report]
            do { volumes = try group.contents().volumes } catch { throw explain(error, sr: sr, group: group) }
            return SRCheckReport(uuid: sr, checkedVDIs: volumes.filter { Self.vdi(fromLogicalVolume: $0.name) != nil }.count, problems: [])
        }
        // Recovery first, as every verb does: what it settles is no problem.
        _ = try vhdState(sr: sr, group: group, holding: [])
        let contents: (group: VolumeGroup.Report, volumes: [LogicalVolume.Report])
        do { contents = try group.contents() } catch { throw explain(error, sr: sr, group: group) }
        // A record whose VDIs are locked here, or of another host that sanlock does not know
        // dead, is a live operation: its VDIs are skipped.
        var busy: Set<CanonicalUUID> = []
        var live: Set<String> = []
        let records = contents.group.tags.compactMap { tag in ((try? LVMIntent(tag: tag)) ?? nil).map { (tag, $0) } }
        for ((tag, intent), ownership) in zip(records, ownerships(of: records.map(\.1), group: group)) {
            if case .liveHost = ownership {
                busy.formUnion(intent.vdis)
                live.insert(tag)
                continue
            }
            var locks: [HostLock] = []
            defer { locks.forEach { $0.release() } }
            for vdi in intent.vdis {
                guard let lock = tryHold(sr: sr, vdi) else {
                    busy.formUnion(intent.vdis)
                    live.insert(tag)
                    break
                }
                locks.append(lock)
            }
        }
        if !busy.isEmpty {
            OperationLog.note(host: host, "sr_check \(sr): skipping VDIs of a running operation: \(busy.map(\.string).sorted())")
        }
        var problems = Self.tagProblems(volumes: contents.volumes, groupTags: contents.group.tags.filter { !live.contains($0) }, busy: busy)
        let readable = contents.volumes.filter { volume in
            guard let vdi = Self.vdi(fromLogicalVolume: volume.name), !busy.contains(vdi) else { return false }
            return (try? VDITags(tags: volume.tags, volume: volume.name))?.isVHD == true
        }
        problems += readHeaders(sr: sr, group: group, volumes: readable)
        let checked = contents.volumes.filter { Self.vdi(fromLogicalVolume: $0.name) != nil }.count
        return SRCheckReport(uuid: sr, checkedVDIs: checked, problems: problems)
    }

    /// The findings of LVM's metadata alone: `volumes` as `lvs` reports them and the group's tags
    /// (intent records still there after recovery). VDIs in `busy` are not judged.
    static func tagProblems(volumes reports: [LogicalVolume.Report], groupTags: [String], busy: Set<CanonicalUUID>) -> [SRCheckReport
        .Problem]
    {
        var problems: [SRCheckReport.Problem] = []
        var sound: [LogicalVolume.Report] = []
        for volume in reports {
            let vdi = vdi(fromLogicalVolume: volume.name)
            if let vdi, busy.contains(vdi) { continue }
            do throws(StorageError) {
                _ = try VDITags(tags: volume.tags, volume: volume.name)
                sound.append(volume)
            } catch {
                problems.append(.init(vdi: vdi, message: error.message))
            }
        }
        var recordNames: Set<String> = []
        for tag in groupTags where tag.hasPrefix(LVMIntent.prefix) {
            guard let intent = (try? LVMIntent(tag: tag)) ?? nil else {
                problems.append(.init(vdi: nil, message: "intent record '\(tag)' cannot be read; it is left in place"))
                continue
            }
            problems.append(.init(vdi: intent.vdis.first, message: "unfinished operation record '\(tag)' was not recovered"))
            for vdi in intent.vdis {
                recordNames.formUnion([temporaryName(for: vdi), setAsideName(for: vdi)])
            }
        }
        guard let volumes = try? VDIVolumes(sound) else { return problems }
        for name in volumes.names.sorted() where vdi(fromLogicalVolume: name) == nil && !recordNames.contains(name) {
            for suffix in [".new", ".coalesced"] where name.hasSuffix(suffix) {
                let owner = vdi(fromLogicalVolume: String(name.dropLast(suffix.count)))
                if let owner, busy.contains(owner) { continue }
                problems.append(
                    .init(
                        vdi: owner,
                        message: "logical volume \(name) is a temporary of an operation without a record (left by a crash; "
                            + "remove it with lvremove once nothing uses it)"))
            }
        }
        for vdi in volumes.byVDI.keys.sorted() {
            guard let volume = volumes.byVDI[vdi], volume.tags.isVHD else { continue }
            if let parent = volume.tags.parent, volumes.byVDI[parent] == nil {
                problems.append(.init(vdi: vdi, message: "parent tag names VDI \(parent), which has no logical volume (broken chain)"))
                continue
            }
            do throws(StorageError) {
                let length = try volumes.ancestors(of: vdi).count + 1
                if length > VHDChain.maximumLength {
                    problems.append(.init(vdi: vdi, message: "chain of \(length) VHDs, more than \(VHDChain.maximumLength)"))
                }
            } catch {
                problems.append(.init(vdi: vdi, message: error.message))
                continue
            }
            if let parent = volume.tags.parent, let parentVolume = volumes.byVDI[parent], !parentVolume.tags.isVHD {
                problems.append(.init(vdi: vdi, message: "parent \(parent) is a raw volume, not a VHD"))
            }
            if volume.tags.hidden, volumes.children[vdi]?.isEmpty != false {
                problems.append(.init(vdi: vdi, message: "hidden VDI without children (garbage: sr_gc removes it)"))
            }
        }
        return problems
    }

    /// Reads each VHD's footers and header where activation works; findings as problems.
    private func readHeaders(sr: CanonicalUUID, group: VolumeGroup, volumes: [LogicalVolume.Report]) -> [SRCheckReport.Problem] {
        var problems: [SRCheckReport.Problem] = []
        var footers: [CanonicalUUID: VHDFooter] = [:]
        var parents: [CanonicalUUID: (parent: CanonicalUUID, named: [UInt8])] = [:]
        var unread = 0
        for volume in volumes.sorted(by: { $0.name < $1.name }) {
            guard let vdi = Self.vdi(fromLogicalVolume: volume.name), let tags = try? VDITags(tags: volume.tags, volume: volume.name)
            else { continue }
            let logicalVolume = group.logicalVolume(volume.name)
            let activated = volume.activation != .active
            if activated {
                do throws(StorageError) {
                    try logicalVolume.activate()
                } catch {
                    OperationLog.note(host: host, "sr_check \(sr): \(volume.name) not read: \(error.message)")
                    unread += 1
                    continue
                }
            }
            defer { if activated { try? logicalVolume.deactivate() } }
            guard Self.isBlockDevice(logicalVolume.path) else {
                unread += 1
                continue
            }
            do throws(StorageError) {
                let image = try VHDImage.openBlockDevice(logicalVolume.path)
                footers[vdi] = image.footer
                if image.endFooterDamaged {
                    problems.append(.init(vdi: vdi, message: "no valid footer at the end of the VHD (the copy at offset 0 is used)"))
                }
                if image.size != tags.virtualSize {
                    problems.append(
                        .init(vdi: vdi, message: "the VHD's virtual size \(image.size) differs from the size tag \(tags.virtualSize ?? 0)"))
                }
                if image.isDifferencing != (tags.parent != nil) {
                    problems.append(
                        .init(
                            vdi: vdi,
                            message: image.isDifferencing
                                ? "a differencing VHD without a parent tag" : "parent tag on a VHD that is not differencing"))
                }
                if let parent = tags.parent { parents[vdi] = (parent, image.header.parentUniqueID) }
            } catch {
                problems.append(.init(vdi: vdi, message: "the VHD cannot be read: \(error.message)"))
            }
        }
        for (vdi, link) in parents.sorted(by: { $0.key < $1.key }) {
            guard let parentFooter = footers[link.parent], parentFooter.uniqueID != link.named else { continue }
            problems.append(
                .init(
                    vdi: vdi,
                    message: "its VHD names parent unique id \(CanonicalUUID(bytes: link.named)), VDI \(link.parent)'s VHD has "
                        + "\(CanonicalUUID(bytes: parentFooter.uniqueID))"))
        }
        if unread > 0 {
            OperationLog.note(
                host: host, "sr_check \(sr): \(unread) VHD(s) checked from LVM's metadata only (no device: activation disabled or refused)")
        }
        return problems
    }
}
