import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Blocks into a new dynamic VHD that nothing lists yet (vdi_import on a file-based SR, or onto
/// a new logical volume of a VHD LVM SR, which must hold every block written): each block of
/// data is placed after the previous one (a full bitmap, the data 4 KiB aligned), its BAT entry
/// set; blocks of zeros are not written at all. Without fsyncs on the way: the VHD is published
/// only after `finish` has written the footers and synced it once.
public final class VHDFileSink: TransferSink {
    let image: VHDImage
    var next: UInt64

    public init(_ image: VHDImage) throws(StorageError) {
        self.image = image
        image.durable = false
        next = try image.placeNewBlock()
    }

    public func write(block: Int, _ data: UnsafeRawBufferPointer) throws(StorageError) {
        if TransferBlock.isZero(data) { return }
        guard next / VHDImage.sectorSize < UInt64(VHDImage.unallocated) else {
            throw .io("\(image.path): no room for block \(block): past what a BAT entry can address")
        }
        var bitmap = [UInt8](repeating: 0, count: Int(VHDImage.bitmapSize))
        for sector in 0..<(data.count + Int(VHDImage.sectorSize) - 1) / Int(VHDImage.sectorSize) { VHDImage.setBit(&bitmap, sector) }
        try image.descriptor.writeAll(bitmap, at: next, path: image.path)
        try image.descriptor.writeAll(data, at: next + VHDImage.bitmapSize, path: image.path)
        if data.count < Int(TransferBlock.size) {
            // A short last block still occupies a whole block in the file.
            try image.descriptor.writeAll(
                [UInt8](repeating: 0, count: Int(TransferBlock.size) - data.count),
                at: next + VHDImage.bitmapSize + UInt64(data.count), path: image.path)
        }
        try image.setTableEntry(block, UInt32(next / VHDImage.sectorSize))
        next += VDIExport.VHDLayout.stride
    }

    public func finish() throws(StorageError) {
        try image.writeFooters()
        try image.sync()
    }
}

/// Blocks onto a raw device (a new logical volume): data blocks are written in place; every
/// block not written (zeros in the stream, or no block in a VHD) is zeroed at the end, since a
/// new volume may hold what an old one left on its extents (FALLOC_FL_ZERO_RANGE, which the
/// kernel turns into WRITE ZEROES or written zeros; written zeros here where it cannot).
public final class RawDiskSink: TransferSink {
    let descriptor: FileDescriptor
    let path: String
    let size: UInt64
    var written: [Bool]

    public init(descriptor: FileDescriptor, path: String, size: UInt64) {
        self.descriptor = descriptor
        self.path = path
        self.size = size
        written = [Bool](repeating: false, count: TransferBlock.count(size))
    }

    public func write(block: Int, _ data: UnsafeRawBufferPointer) throws(StorageError) {
        if TransferBlock.isZero(data) { return }
        try descriptor.writeAll(data, at: UInt64(block) * TransferBlock.size, path: path)
        written[block] = true
    }

    public func finish() throws(StorageError) {
        var block = 0
        while block < written.count {
            guard !written[block] else {
                block += 1
                continue
            }
            var end = block
            while end < written.count, !written[end] { end += 1 }
            let start = UInt64(block) * TransferBlock.size
            let length = min(size, UInt64(end) * TransferBlock.size) - start
            try zero(at: start, length: length)
            block = end
        }
        try descriptor.sync(path: path)
    }

    /// FALLOC_FL_ZERO_RANGE from <linux/falloc.h>.
    static let zeroRange: Int32 = 0x10

    func zero(at start: UInt64, length: UInt64) throws(StorageError) {
        if let fallocate = Syscall.fallocate {
            switch Syscall.attempt({ fallocate(descriptor.rawValue, Self.zeroRange, off_t(start), off_t(length)) }) {
            case .success: return
            case .failure(.notSupported), .failure(.noFunction), .failure(.invalidArgument), .failure(.badFileDescriptor): break
            case .failure(let code): throw .system(code, "fallocate (zero range)", path: path)
            }
        }
        let zeros = [UInt8](repeating: 0, count: Int(TransferBlock.size))
        var offset = start
        while offset < start + length {
            let step = Int(min(UInt64(zeros.count), start + length - offset))
            try descriptor.writeAll(zeros[0..<step], at: offset, path: path)
            offset += UInt64(step)
        }
    }
}
