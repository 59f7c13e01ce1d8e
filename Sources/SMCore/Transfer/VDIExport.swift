import SystemPackage

/// vdi_export's writers: a `TransferSource` to stdout as raw bytes or as one dynamic VHD.
/// Unallocated blocks are never read; the caller holds what keeps the source still
/// (Docs/export.md, "Locks").
public enum VDIExport {
    /// Writes `source` to `output` as `format`, reporting progress in bytes of the disk.
    public static func write(_ source: TransferSource, as format: TransferFormat, to output: FileDescriptor) throws(StorageError) {
        let stream = TransferOutput(output)
        let progress = TransferProgress("vdi_export", total: source.size)
        defer { progress.finish() }
        switch format {
        case .raw: try writeRaw(source, to: stream, progress: progress)
        case .vhd: try writeVHD(source, to: stream, progress: progress)
        }
        try stream.finish()
    }

    /// Every byte of the disk in order. Into a seekable file, blocks at their offsets, several at
    /// once, unallocated blocks and pieces that read as zeros left as holes; into a pipe, in
    /// order, unallocated blocks as written zeros.
    static func writeRaw(_ source: TransferSource, to stream: TransferOutput, progress: TransferProgress) throws(StorageError) {
        let allocated = try source.allocation()
        if stream.seekable {
            // Every block has its place in the file: several at once, holes skipped.
            try inParallel(
                source, blocks: allocated.indices.map { ($0, UInt64($0) * TransferBlock.size, allocated[$0]) }, to: stream,
                progress: progress)
            stream.skipWritten(source.size)
            return
        }
        var buffer = [UInt8](repeating: 0, count: Int(TransferBlock.size))
        for block in allocated.indices {
            let length = TransferBlock.length(block, of: source.size)
            defer { progress.advance(UInt64(length)) }
            guard allocated[block] else {
                try stream.zeros(UInt64(length))
                continue
            }
            let outcome: Result<Void, StorageError> = buffer.withUnsafeMutableBytes { whole in
                do throws(StorageError) {
                    let slice = UnsafeMutableRawBufferPointer(rebasing: whole[0..<length])
                    try source.read(block: block, into: slice)
                    try stream.write(UnsafeRawBufferPointer(slice))
                    return .success(())
                } catch { return .failure(error) }
            }
            try outcome.get()
        }
    }

    /// How much of a block one worker reads and then writes in one go: small enough that the
    /// bytes just read are still in the core's cache when they are written.
    static let piece = 512 * 1024

    /// Writes blocks of `source` into a seekable `stream` at their offsets (from the stream's
    /// start), a few at once (`ParallelBlocks`), each in pieces read into a buffer and written
    /// (pread, pwrite); a piece that reads as zeros is not written (the file is fresh there, so
    /// it reads as zeros). Blocks marked not present are holes (nothing read, nothing written).
    ///
    /// Not `copy_file_range`: on a filesystem without shared extents (ext4) the kernel copies
    /// then from the source's page cache to the output's while holding the output's inode lock,
    /// so every copy waits for the others and reads memory no cache holds; with a buffer, the
    /// reads (one copy each) run beside the writes, and each write copies from bytes still in
    /// the cache, as qemu-img's do (Docs/performance.md).
    static func inParallel(
        _ source: TransferSource, blocks: [(block: Int, offset: UInt64, present: Bool)], to stream: TransferOutput,
        progress: TransferProgress
    ) throws(StorageError) {
        let buffers = (0..<ParallelBlocks.threads).map { _ in
            UnsafeMutableRawBufferPointer.allocate(byteCount: piece, alignment: Int(VHDImage.dataAlignment))
        }
        defer { buffers.forEach { $0.deallocate() } }
        try ParallelBlocks.run(count: blocks.count) { index, worker throws(StorageError) in
            let (block, offset, present) = blocks[index]
            let length = TransferBlock.length(block, of: source.size)
            defer { progress.advance(UInt64(length)) }
            guard present else { return }
            let buffer = buffers[worker]
            var start = 0
            while start < length {
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(piece, length - start)])
                try source.read(at: UInt64(block) * TransferBlock.size + UInt64(start), into: slice)
                if !TransferBlock.isZero(UnsafeRawBufferPointer(slice)) {
                    let at = stream.base + offset + UInt64(start)
                    try stream.descriptor.writeAll(UnsafeRawBufferPointer(slice), at: at, path: stream.name)
                }
                start += slice.count
            }
        }
    }

    /// The layout of the VHD stream (VHD-NOTES.md): footer copy, header, BAT, then the blocks
    /// that hold data in disk order, each a full bitmap and its 2 MiB with the data 4 KiB
    /// aligned, then the footer. The BAT comes first, so which blocks hold data must be known
    /// before any is written: a VHD source says so from its BATs; a raw one is read once to
    /// find its zero blocks, then again to write the others.
    public struct VHDLayout {
        static let tableOffset = UInt64(VHDFooter.size + VHDDynamicHeader.size)
        /// From one block's bitmap to the next: bitmap, data, and padding to the 4 KiB boundary.
        static let stride = TransferBlock.size + VHDImage.dataAlignment

        let size: UInt64
        let entries: Int
        let present: [Int]

        init(size: UInt64, present: [Int]) {
            self.size = size
            entries = TransferBlock.count(size)
            self.present = present
        }

        var tableLength: UInt64 { (UInt64(entries) * 4 + VHDImage.sectorSize - 1) / VHDImage.sectorSize * VHDImage.sectorSize }
        var tableEnd: UInt64 { Self.tableOffset + tableLength }
        /// Where the first bitmap goes: its data area starts on a 4 KiB boundary.
        var firstBlock: UInt64 {
            (tableEnd + VHDImage.bitmapSize + VHDImage.dataAlignment - 1) / VHDImage.dataAlignment * VHDImage.dataAlignment
                - VHDImage.bitmapSize
        }
        func start(ofNth index: Int) -> UInt64 { firstBlock + UInt64(index) * Self.stride }
        var footerOffset: UInt64 {
            present.isEmpty ? tableEnd : start(ofNth: present.count - 1) + VHDImage.bitmapSize + TransferBlock.size
        }

        var table: [UInt8] {
            var bytes = [UInt8](repeating: 0xFF, count: Int(tableLength))
            for (index, block) in present.enumerated() {
                bytes.setBigEndian32(UInt32(start(ofNth: index) / VHDImage.sectorSize), at: block * 4)
            }
            return bytes
        }
    }

    static func writeVHD(_ source: TransferSource, to stream: TransferOutput, progress: TransferProgress) throws(StorageError) {
        var buffer = [UInt8](repeating: 0, count: Int(TransferBlock.size))
        func readBlock(_ block: Int) throws(StorageError) -> Bool {
            let length = TransferBlock.length(block, of: source.size)
            let outcome: Result<Bool, StorageError> = buffer.withUnsafeMutableBytes { whole in
                do throws(StorageError) {
                    if length < whole.count {
                        UnsafeMutableRawBufferPointer(rebasing: whole[length...]).initializeMemory(as: UInt8.self, repeating: 0)
                    }
                    try source.read(block: block, into: UnsafeMutableRawBufferPointer(rebasing: whole[0..<length]))
                    return .success(!TransferBlock.isZero(UnsafeRawBufferPointer(whole)))
                } catch { return .failure(error) }
            }
            return try outcome.get()
        }
        let allocated = try source.allocation()
        var present: [Int] = []
        for block in allocated.indices where allocated[block] {
            if source.knowsAllocation {
                present.append(block)
            } else if try readBlock(block) {
                present.append(block)
            }
        }
        let layout = VHDLayout(size: source.size, present: present)
        guard layout.footerOffset / VHDImage.sectorSize < UInt64(VHDImage.unallocated) else {
            throw .io("a VHD of \(source.size) bytes with \(present.count) blocks of data would pass what a BAT entry can address")
        }
        let footer = VHDFooter(size: source.size, diskType: .dynamic, uniqueID: CanonicalUUID.random().bytes).bytes
        try stream.write(footer)
        try stream.write(VHDDynamicHeader(tableOffset: VHDLayout.tableOffset, maxTableEntries: UInt32(layout.entries)).bytes)
        try stream.write(layout.table)
        let fullBitmap = [UInt8](repeating: 0xFF, count: Int(VHDImage.bitmapSize))
        if stream.seekable {
            // Every block's place is in the layout: several at once, the gaps left as holes.
            let bitmaps = stream.position
            for index in present.indices {
                try stream.descriptor.writeAll(fullBitmap, at: stream.base + layout.start(ofNth: index), path: stream.name)
            }
            let places = present.enumerated().map { ($1, layout.start(ofNth: $0) + VHDImage.bitmapSize, true) }
            try inParallel(source, blocks: places, to: stream, progress: progress)
            stream.skipWritten(layout.footerOffset - bitmaps)
            try stream.write(footer)
            if progress.done < source.size { progress.advance(source.size - progress.done) }
            return
        }
        var done = 0
        for (index, block) in present.enumerated() {
            try stream.zeros(layout.start(ofNth: index) - stream.position)
            // Blocks between the previous one and this one hold nothing: progress passes them.
            progress.advance(UInt64(block - done) * TransferBlock.size)
            try stream.write(fullBitmap)
            let length = TransferBlock.length(block, of: source.size)
            _ = try readBlock(block)
            try buffer.withTransferBytes { whole throws(StorageError) in try stream.write(whole) }
            progress.advance(UInt64(length))
            done = block + 1
        }
        try stream.zeros(layout.footerOffset - stream.position)
        try stream.write(footer)
        if progress.done < source.size { progress.advance(source.size - progress.done) }
    }
}
