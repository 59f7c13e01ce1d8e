extension VHDImage {
    /// Gives this VHD another disk's identity as a child records it: the unique id and the
    /// footer's timestamp (a child's header names its parent by both), and the hidden flag; both
    /// footers rewritten (end first, then the copy at 0), durable before returning. The last
    /// data step of coalescing on a block device (Docs/LVMSR.md), where the merged parent takes
    /// its child's place and the device's modification time means nothing. Idempotent.
    public func takeIdentity(of other: VHDFooter) throws(StorageError) {
        footer.uniqueID = other.uniqueID
        footer.timestamp = other.timestamp
        footer.hidden = other.hidden
        try writeFooters()
    }
}
