/// sr_check: every VHD file against VHD-NOTES.md (`VHDChecker`), and every chain: parents found
/// through the locators, unique ids and timestamps agreeing, at most 30 links, no loops, no
/// hidden VDI without children, no two files with one unique id, no unfinished intent record.
/// VDIs a running operation (a live intent record, e.g. a merge in progress) is changing are
/// skipped and logged, not reported.
///
/// Bounded whatever the SR holds: only regular files are opened (a FIFO, device, directory or
/// symbolic link under a VDI's name is reported, never opened), each file is read twice (once
/// for the tree, once by `VHDChecker`), and parents are looked up in the tree's map rather than
/// opened again, so the time grows linearly with the number of VHDs: a 10,000-deep chain is
/// checked in seconds (Docs/copy-on-write.md).
extension VHDRepository {
    public func check() throws(StorageError) -> SRCheckReport {
        try requireAttached()
        var busy: Set<CanonicalUUID> = []
        var problems: [SRCheckReport.Problem] = []
        for record in journal.records() {
            if isRunning(record), let intent = record.intent {
                busy.formUnion(Self.namedVDIs(intent))
            } else {
                problems.append(.init(vdi: nil, message: "unfinished operation record \(record.path) was not recovered"))
            }
        }
        let tree = try tree(resolvingLocators: true)
        let brokenLinks = tree.brokenLinks
        let files = try allVDIFiles()
        var owners: [[UInt8]: CanonicalUUID] = [:]
        for vdi in files where !busy.contains(vdi) {
            let path = vdiPath(vdi)
            if let status = Syscall.lstatus(path), let kind = Syscall.nonRegularKind(status.st_mode) {
                problems.append(
                    .init(
                        vdi: vdi,
                        message: "\(path) is \(kind), not a regular file; it is not read or written "
                            + "(remove it, or put the VHD file back in its place)"))
                continue
            }
            for message in VHDChecker.problems(ofFile: path) { problems.append(.init(vdi: vdi, message: message)) }
            guard let node = tree.nodes[vdi] else { continue }
            if let other = owners[node.uniqueID] {
                problems.append(.init(vdi: vdi, message: "has the same unique id as VDI \(other)"))
            }
            owners[node.uniqueID] = vdi
            let children = tree.childrenOf(vdi)
            if node.hidden && children.isEmpty {
                problems.append(.init(vdi: vdi, message: "hidden VDI without children was not reclaimed (run sr_gc)"))
            }
            if let reason = brokenLinks[vdi] {
                problems.append(.init(vdi: vdi, message: reason))
            } else if let parent = node.parent, let parentNode = tree.nodes[parent] {
                if let message = Self.parentProblem(node, parent: parentNode, parentPath: vdiPath(parent)) {
                    problems.append(.init(vdi: vdi, message: message))
                }
            }
            // Reported once per chain end: every VDI of a too-long chain is below some leaf.
            if children.isEmpty, case .sound(let length)? = tree.chains[vdi], length > VHDChain.maximumLength {
                problems.append(.init(vdi: vdi, message: "chain has \(length) VHDs, more than \(VHDChain.maximumLength)"))
            }
        }
        if !busy.isEmpty {
            OperationLog.note(
                host: host,
                "sr_check \(sr): skipped VDIs a running operation is changing: "
                    + busy.sorted().map(\.string).joinedText(separator: " "))
        }
        return SRCheckReport(uuid: sr, checkedVDIs: files.count - busy.intersection(files).count, problems: problems)
    }

    /// For a differencing VDI whose parent name designates `parent`, a sound link of this SR: the
    /// locators (which blktap follows first) must lead to the same file, and the parent's
    /// modification time must be the one the header recorded (as `VHDChecker.parentProblems`
    /// says it, from the tree instead of opening the parent again).
    static func parentProblem(_ node: SRTree.Node, parent: SRTree.Node, parentPath: String) -> String? {
        guard node.locatedParent == parentPath else {
            return "parent locators lead to \(node.locatedParent ?? "no file"), not to VDI \(parent.vdi) that the parent name "
                + "designates (blktap follows the locators)"
        }
        let parentTime = VHDTime.fromUnix(Int64(parent.modificationTime))
        guard parentTime == node.parentTimestamp else {
            return "parent timestamp \(node.parentTimestamp) differs from the parent's modification time \(parentTime)"
        }
        return nil
    }
}
