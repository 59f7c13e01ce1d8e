#if canImport(Glibc)
    import Glibc
#endif

extension BlockDevice {
    /// The spec's "at least 100MB from the head" (sr_delete on EXT): 100 MiB.
    public static let headWipeLength: UInt64 = 100 << 20
    /// Also zeroed at the end of the device, where backup GPT headers and md 0.90/1.0 superblocks live.
    public static let tailWipeLength: UInt64 = 1 << 20
    /// The unit of writing; also the first region, written last (see `wipe`).
    static let wipeChunk: UInt64 = 1 << 20

    /// Makes the device blank: zeroes the first `bytes` (the whole device when it is smaller) and
    /// the last `tailWipeLength`, erases the magic of any signature libblkid still finds, and
    /// checks that a fresh probe finds nothing (EIO otherwise).
    ///
    /// Opens the device exclusively: EBUSY while it is mounted or held (an active volume group,
    /// a RAID array). Write order: the tail, then the head from its end back to the first
    /// mebibyte, fsync, then the first mebibyte, fsync. Every signature we create (and the
    /// primary superblocks, PV labels and partition tables blkid looks for) lives in that first
    /// mebibyte, so a crash part-way leaves the device recognisable as before until the very
    /// last write, and a repeated wipe finishes the job.
    public func wipe(bytes: UInt64 = headWipeLength) throws(StorageError) {
        let descriptor = try open(.readWrite, exclusive: true)
        defer { descriptor.closeIgnoringErrors() }
        let size = try size(of: descriptor)
        let head = min(bytes, size)
        let zeros = [UInt8](repeating: 0, count: Int(Self.wipeChunk))
        func zero(_ range: Range<UInt64>) throws(StorageError) {
            var offset = range.lowerBound
            while offset < range.upperBound {
                let count = Int(min(Self.wipeChunk, range.upperBound - offset))
                try descriptor.writeAll(zeros.prefix(count), at: offset, path: path)
                offset += UInt64(count)
            }
        }
        try zero(max(head, size - min(size, Self.tailWipeLength))..<size)
        var chunkStart = head > 0 ? (head - 1) / Self.wipeChunk * Self.wipeChunk : 0
        while chunkStart >= Self.wipeChunk {
            try zero(chunkStart..<min(chunkStart + Self.wipeChunk, head))
            chunkStart -= Self.wipeChunk
        }
        try descriptor.sync(path: path)
        try zero(0..<min(Self.wipeChunk, head))
        try descriptor.sync(path: path)

        let probe = try SignatureProbe(descriptor: descriptor, path: path)
        var erased = 0
        while erased < Self.maximumSignatures, let signature = try probe.next() {
            Diagnostics.debug("wipe \(path): erasing \(signature) at offset \(signature.offset.map(String.init) ?? "?")")
            try probe.eraseCurrent()
            erased += 1
        }
        try descriptor.sync(path: path)
        if let left = try probeSignatures().first {
            throw .io("wiping \(path) left a signature libblkid still finds: \(left)")
        }
    }
}
