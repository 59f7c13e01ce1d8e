import SystemPackage

extension FaultPoint {
    /// vdi_import (Docs/export.md, "Crash safety"): the new VDI is built where nothing lists it
    /// (a claimed temporary file, a logical volume under a temporary name) and published last.
    public enum Import: String, NamedFaultPoint {
        /// After the first block of data is written.
        case blockWritten = "import.block-written"
        /// Everything written and synced, not yet published.
        case written = "import.written"
    }
}

/// Where vdi_import puts the blocks: a new VHD file or a raw device. Blocks arrive in any
/// order, each at most once; a block never written reads as zeros after `finish`.
public protocol TransferSink: AnyObject {
    /// The block's bytes (its length inside the disk).
    func write(block: Int, _ data: UnsafeRawBufferPointer) throws(StorageError)
    /// Everything is written: make it durable.
    func finish() throws(StorageError)
}

/// vdi_import's reader, in two steps: `begin` reads what comes before any data (for a VHD: the
/// footer copy, header and BAT), so that the caller knows the disk's size and how much data is
/// coming before it creates anything; `copy` moves the data into a sink and checks the end.
///
/// Refusals: a stream that ends early is EIO (a transfer cut short); one that is too long, not
/// the declared size, or not a valid dynamic VHD is EINVAL. Either way before `copy` returns,
/// and the caller removes what it built.
public final class VDIImport {
    public let format: TransferFormat
    /// The disk's size in bytes: Size for raw, the footer's current size for vhd.
    public let size: UInt64
    /// For vhd: how many blocks hold data (the BAT says so); nil for raw (any block may).
    public let dataBlocks: Int?
    let input: StreamInput
    var footer: VHDFooter?
    /// (block, sector of its bitmap in the stream), in stream order.
    var blocks: [(block: Int, sector: UInt64)] = []

    /// The most bytes a VHD may hold after its last block (the footer, and padding).
    static let trailingLimit = 4 << 20
    /// The most BAT entries read (a 2040 GiB disk needs 1,044,480).
    static let maximumTableEntries: UInt32 = 1 << 22
    /// How far into the stream the header may start.
    static let maximumHeaderOffset: UInt64 = 1 << 20

    init(format: TransferFormat, size: UInt64, dataBlocks: Int?, input: StreamInput) {
        self.format = format
        self.size = size
        self.dataBlocks = dataBlocks
        self.input = input
    }

    /// Reads the stream's preamble. `declared` is the Size argument (for vhd, 0 or the VHD's size).
    public static func begin(format: TransferFormat, declaredSize declared: UInt64, from descriptor: FileDescriptor) throws(StorageError)
        -> VDIImport
    {
        let input = StreamInput(descriptor)
        switch format {
        case .raw:
            return VDIImport(format: .raw, size: declared, dataBlocks: nil, input: input)
        case .vhd:
            let first = try input.read(VHDFooter.size, expected: "expected a VHD footer (512 bytes)")
            let footer: VHDFooter
            do { footer = try VHDFooter(bytes: first) } catch {
                throw .badStream("the stream is not a dynamic VHD: no valid footer copy at its start (\(error.message))")
            }
            switch footer.diskType {
            case .dynamic: break
            case .differencing:
                throw .badStream("the stream is a differencing VHD, which needs its parent; export it flattened (vdi_export ... vhd)")
            case .fixed:
                throw .badStream("the stream is a fixed VHD; send it as raw (its data without the last 512 bytes)")
            }
            let size = footer.currentSize
            guard size > 0, size <= ArgumentParsing.maximumVDISize else {
                throw .badStream("the VHD's size \(size) is not 1 byte to 2040 GiB")
            }
            guard declared == 0 || declared == size else {
                throw .badStream("the VHD holds a disk of \(size) bytes, not the Size \(declared) given (give 0 to take the VHD's)")
            }
            guard footer.dataOffset >= UInt64(VHDFooter.size), footer.dataOffset <= maximumHeaderOffset else {
                throw .badStream("the VHD's header offset \(footer.dataOffset) is not where a dynamic VHD has it")
            }
            try input.skip(to: footer.dataOffset, what: "header")
            let header: VHDDynamicHeader
            do { header = try VHDDynamicHeader(bytes: try input.read(VHDDynamicHeader.size, expected: "expected the VHD's header")) } catch
            {
                if error.code == .ioError, error.cause != .malformed { throw error }
                throw .badStream("the VHD's header is not valid (\(error.message))")
            }
            let count = TransferBlock.count(size)
            guard header.maxTableEntries >= count, header.maxTableEntries <= maximumTableEntries else {
                throw .badStream("the VHD's BAT has \(header.maxTableEntries) entries for \(count) blocks")
            }
            try input.skip(to: header.tableOffset, what: "BAT")
            let tableBytes = try input.read(Int(header.maxTableEntries) * 4, expected: "expected the VHD's BAT")
            let tableEnd = header.tableOffset + UInt64(tableBytes.count)
            var blocks: [(block: Int, sector: UInt64)] = []
            for block in 0..<Int(header.maxTableEntries) {
                let entry = tableBytes.bigEndian32(at: block * 4)
                guard entry != VHDImage.unallocated else { continue }
                guard block < count else { throw .badStream("the VHD's BAT allocates block \(block), past its size of \(size) bytes") }
                guard UInt64(entry) * VHDImage.sectorSize >= tableEnd else {
                    throw .badStream("the VHD's block \(block) at sector \(entry) lies before the end of its BAT")
                }
                blocks.append((block, UInt64(entry)))
            }
            blocks.sort { $0.sector < $1.sector }
            let plan = VDIImport(format: .vhd, size: size, dataBlocks: blocks.count, input: input)
            plan.footer = footer
            plan.blocks = blocks
            return plan
        }
    }

    /// Moves every block of data into `sink`, then checks that the stream ends where it should.
    public func copy(into sink: TransferSink) throws(StorageError) {
        let progress = TransferProgress("vdi_import", total: size)
        defer { progress.finish() }
        var buffer = [UInt8](repeating: 0, count: Int(TransferBlock.size))
        var delivered = 0
        func deliver(_ block: Int, _ length: Int) throws(StorageError) {
            try buffer.withTransferBytes { whole throws(StorageError) in
                try sink.write(block: block, UnsafeRawBufferPointer(rebasing: whole[0..<length]))
            }
            delivered += 1
            if delivered == 1 { FaultPoint.Import.blockWritten.reach() }
            progress.advance(UInt64(length))
        }
        switch format {
        case .raw:
            for block in 0..<TransferBlock.count(size) {
                let length = TransferBlock.length(block, of: size)
                // A hole of a sparse file is zeros: not read, not written (sinks zero what they are not given).
                if try input.skipHole(UInt64(length)) {
                    progress.advance(UInt64(length))
                    continue
                }
                let outcome: Result<Void, StorageError> = buffer.withUnsafeMutableBytes { whole in
                    do throws(StorageError) {
                        try input.fillExactly(
                            UnsafeMutableRawBufferPointer(rebasing: whole[0..<length]), expected: "expected Size \(size) bytes")
                        return .success(())
                    } catch { return .failure(error) }
                }
                try outcome.get()
                try deliver(block, length)
            }
            guard let rest = try input.rest(limit: 0), rest.isEmpty else {
                throw .badStream("the stream is longer than Size \(size) bytes")
            }
        case .vhd:
            guard let footer else { throw .io("vdi_import: VHD stream without its footer") }
            for (block, sector) in blocks {
                try input.skip(to: sector * VHDImage.sectorSize, what: "block \(block)")
                let bitmap = try input.read(Int(VHDImage.bitmapSize), expected: "expected the bitmap of block \(block)")
                let outcome: Result<Void, StorageError> = buffer.withUnsafeMutableBytes { whole in
                    do throws(StorageError) {
                        try input.fillExactly(whole, expected: "expected the data of block \(block)")
                        // In a dynamic disk a clear bit reads as zeros, whatever the data area holds.
                        if bitmap.contains(where: { $0 != 0xFF }) {
                            for sector in 0..<Int(VHDImage.sectorsPerBlock) where !VHDImage.bit(bitmap, sector) {
                                let start = sector * Int(VHDImage.sectorSize)
                                UnsafeMutableRawBufferPointer(rebasing: whole[start..<start + Int(VHDImage.sectorSize)])
                                    .initializeMemory(as: UInt8.self, repeating: 0)
                            }
                        }
                        return .success(())
                    } catch { return .failure(error) }
                }
                try outcome.get()
                try deliver(block, TransferBlock.length(block, of: size))
            }
            guard let rest = try input.rest(limit: Self.trailingLimit) else {
                throw .badStream("the stream is longer than a VHD: more than \(Self.trailingLimit) bytes follow its last block")
            }
            guard rest.count >= VHDFooter.size else {
                throw .streamEnded(after: input.position, expected: "expected the VHD's footer after its last block")
            }
            let end: VHDFooter
            do { end = try VHDFooter(bytes: Array(rest.suffix(VHDFooter.size))) } catch {
                throw .badStream("the stream does not end in the VHD's footer (\(error.message)): too long, or not a VHD")
            }
            guard end.uniqueID == footer.uniqueID, end.currentSize == footer.currentSize, end.diskType == footer.diskType else {
                throw .badStream("the VHD's footer at its end differs from the copy at its start")
            }
        }
        if progress.done < size { progress.advance(size - progress.done) }
    }
}
