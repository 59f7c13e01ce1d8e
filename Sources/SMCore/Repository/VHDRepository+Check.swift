/// sr_check: every VHD file against VHD-NOTES.md (`VHDChecker`), and every chain: parents found
/// through the locators, unique ids and timestamps agreeing, at most 30 links, no loops, no
/// hidden VDI without children, no two files with one unique id, no unfinished intent record.
/// VDIs a running operation (a live intent record, e.g. a merge in progress) is changing are
/// skipped and logged, not reported.
extension VHDRepository {
    public func check() throws(StorageError) -> SRCheckReport {
        try requireAttached()
        var busy: Set<CanonicalUUID> = []
        var problems: [SRCheckReport.Problem] = []
        for record in journal.records() {
            if record.live, let intent = record.intent {
                busy.formUnion(Self.namedVDIs(intent))
            } else {
                problems.append(.init(vdi: nil, message: "unfinished operation record \(record.path) was not recovered"))
            }
        }
        let tree = try tree()
        let files = try allVDIFiles()
        var owners: [[UInt8]: CanonicalUUID] = [:]
        for vdi in files where !busy.contains(vdi) {
            for message in VHDChecker.problems(ofFile: vdiPath(vdi)) { problems.append(.init(vdi: vdi, message: message)) }
            guard let node = tree.nodes[vdi] else { continue }
            if let other = owners[node.uniqueID] {
                problems.append(.init(vdi: vdi, message: "has the same unique id as VDI \(other)"))
            }
            owners[node.uniqueID] = vdi
            if node.hidden && tree.childrenOf(vdi).isEmpty {
                problems.append(.init(vdi: vdi, message: "hidden VDI without children was not reclaimed (run sr_gc)"))
            }
            guard node.differencing else { continue }
            do throws(VHDError) {
                let image = try VHDImage.open(vdiPath(vdi))
                let parentPath = try VHDChain.resolveParent(of: image)
                for message in VHDChecker.parentProblems(child: image, parentPath: parentPath) {
                    problems.append(.init(vdi: vdi, message: message))
                }
                if node.parent == nil || parentPath != vdiPath(node.parent ?? vdi) {
                    problems.append(.init(vdi: vdi, message: "parent \(parentPath) is not a VDI of this SR"))
                }
            } catch {
                problems.append(.init(vdi: vdi, message: "chain: \(error)"))
            }
            let chain = tree.chain(from: vdi)
            if let last = chain.last, let top = tree.nodes[last]?.parent, chain.contains(top) {
                problems.append(.init(vdi: vdi, message: "chain loops back to \(top)"))
            } else if chain.count > VHDChain.maximumLength {
                problems.append(.init(vdi: vdi, message: "chain has \(chain.count) VHDs, more than \(VHDChain.maximumLength)"))
            }
        }
        if !busy.isEmpty {
            OperationLog.note(host: host, "sr_check \(sr): skipped VDIs a running operation is changing: "
                + busy.sorted().map(\.string).joined(separator: " "))
        }
        return SRCheckReport(uuid: sr, checkedVDIs: files.count - busy.intersection(files).count, problems: problems)
    }
}
