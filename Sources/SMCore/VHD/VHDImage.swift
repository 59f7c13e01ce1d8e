import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// One dynamic or differencing VHD file, open for reading or writing.
///
/// Layout of a file this type creates (VHD-NOTES.md): footer copy at 0, dynamic header at 512,
/// the BAT at 1536 (sector-padded, with room to grow), then 2 MiB blocks, each a 512-byte sector
/// bitmap followed by its data area aligned to 4 KiB, then the footer.
///
/// Write order (each step fsynced before the next when `durable`):
/// - block allocation: the footer at the new end (past all metadata and the new block), then
///   bitmap and data into the space before it, then the BAT entry. The file ends in a valid
///   footer at every instant; a crash before the BAT entry leaves bytes nothing references.
/// - writes into an allocated block: data first, then the bitmap bits, so a set bit always
///   covers written data.
/// - resize: see `resize(to:)`.
public final class VHDImage {
    public static let sectorSize: UInt64 = 512
    public static let unallocated: UInt32 = 0xFFFF_FFFF
    /// The data area of each block starts on a 4 KiB boundary.
    public static let dataAlignment: UInt64 = 4096
    public static let blockSize = UInt64(VHDDynamicHeader.blockSize)
    public static let sectorsPerBlock = blockSize / sectorSize
    /// The bitmap in front of each block: one bit per sector, padded to a sector.
    public static let bitmapSize: UInt64 = 512
    /// The largest offset a header may name (4 EiB: past every filesystem's file size limit),
    /// so that an offset plus any length read from the file stays a valid `off_t`.
    static let maximumOffset: UInt64 = 1 << 62
    /// The most a parent locator may occupy when a resize moves it (blktap writes 512 bytes):
    /// a damaged space field must not make a resize read gigabytes.
    static let maximumLocatorSpace: UInt64 = 64 * 1024

    public let path: String
    public let writable: Bool
    let descriptor: FileDescriptor
    public internal(set) var footer: VHDFooter
    public private(set) var header: VHDDynamicHeader
    /// True when the footer at the end of the file was unreadable and the copy at 0 was used.
    public internal(set) var endFooterDamaged = false
    /// fsync between the steps of a metadata change (see the type's documentation).
    public var durable = true
    /// Fills the buffer with guest bytes of the parent at the offset, for sectors this
    /// differencing disk does not hold (`VHDChain` sets it).
    public var parentReader: ParentReader?
    public typealias ParentReader = (UInt64, UnsafeMutableRawBufferPointer) throws(StorageError) -> Void

    var table: [UInt32]?
    /// The file's status when `open` read it (nil for an image `create` wrote): sr_scan takes
    /// its allocated blocks from it rather than asking again.
    public private(set) var statusAtOpen: stat?
    /// On a block device (`VHDImage+BlockDevice.swift`): where the VHD ends (just past its end
    /// footer) and how many bytes the device holds. nil for a regular file, whose size is the end.
    var deviceEnd: UInt64?
    var deviceCapacity: UInt64 = 0

    init(
        path: String, writable: Bool, descriptor: FileDescriptor, footer: VHDFooter, header: VHDDynamicHeader,
        endFooterDamaged: Bool
    ) {
        self.path = path
        self.writable = writable
        self.descriptor = descriptor
        self.footer = footer
        self.header = header
        self.endFooterDamaged = endFooterDamaged
    }

    deinit { descriptor.closeIgnoringErrors() }

    // MARK: Opening and creating

    /// Opens an existing VHD; the footer at the end is preferred, the copy at 0 is the fallback.
    /// Only a regular file is opened: a symbolic link, FIFO, device or directory under a VHD's
    /// name is refused (EIO), never followed or waited on (`Syscall.openRegularFile`).
    public static func open(_ path: String, writable: Bool = false, listedRegular: Bool = false) throws(StorageError) -> VHDImage {
        let (descriptor, status) = try Syscall.openRegularFileWithStatus(
            path, writable ? .readWrite : .readOnly, listedRegular: listedRegular)
        do throws(StorageError) {
            let size = UInt64(status.st_size)
            guard size >= UInt64(VHDFooter.size + VHDDynamicHeader.size + VHDFooter.size) else {
                throw .malformed("file is \(size) bytes, too short for a dynamic VHD")
            }
            var damaged = false
            let footer: VHDFooter
            do throws(StorageError) {
                footer = try VHDFooter(bytes: try descriptor.read(count: VHDFooter.size, at: size - UInt64(VHDFooter.size), path: path))
            } catch {
                damaged = true
                do throws(StorageError) {
                    footer = try VHDFooter(bytes: try descriptor.read(count: VHDFooter.size, at: 0, path: path))
                } catch {
                    throw .malformed("no valid footer at the end of the file or at offset 0")
                }
            }
            let header = try readHeader(descriptor, footer: footer, size: size, path: path)
            let image = VHDImage(
                path: path, writable: writable, descriptor: descriptor, footer: footer, header: header,
                endFooterDamaged: damaged)
            image.statusAtOpen = status
            return image
        } catch {
            descriptor.closeIgnoringErrors()
            throw error
        }
    }

    /// The dynamic header `footer` points at, checked against a file (or device) of `size` bytes:
    /// not a fixed VHD, the header inside, no offset that no file can have (the sums of offsets
    /// and lengths computed later must not overflow), a BAT large enough for the size.
    static func readHeader(
        _ descriptor: FileDescriptor, footer: VHDFooter, size: UInt64, path: String, medium: String = "file"
    ) throws(StorageError) -> VHDDynamicHeader {
        guard footer.diskType != .fixed else { throw .malformed("fixed VHDs are not supported") }
        // Subtracted, not added: a damaged offset near UInt64.max must not overflow.
        guard footer.dataOffset <= size - UInt64(VHDDynamicHeader.size) else {
            throw .malformed("header offset \(footer.dataOffset) lies outside the \(medium)")
        }
        let header = try VHDDynamicHeader(bytes: try descriptor.read(count: VHDDynamicHeader.size, at: footer.dataOffset, path: path))
        guard header.tableOffset <= maximumOffset else {
            throw .malformed("BAT offset \(header.tableOffset) is not a \(medium) offset")
        }
        for locator in header.parentLocators where !locator.isEmpty && locator.dataOffset > maximumOffset {
            throw .malformed("parent locator offset \(locator.dataOffset) is not a \(medium) offset")
        }
        guard UInt64(header.maxTableEntries) * blockSize >= footer.currentSize else {
            throw .malformed("BAT holds \(header.maxTableEntries) entries, too few for size \(footer.currentSize)")
        }
        return header
    }

    /// The BAT room reserved at creation, in entries: enough for the size, padded to 4 KiB of
    /// table, so that small resizes never move data.
    static func reservedEntries(for size: UInt64) -> UInt64 {
        let needed = (size + blockSize - 1) / blockSize
        let perPage = dataAlignment / 4
        return max(perPage, (needed + perPage - 1) / perPage * perPage)
    }

    /// Creates a new dynamic (or, with `parent`, differencing) VHD at `path`, failing if it exists.
    /// The caller publishes it (rename/link) after this returns; the file is fsynced (with
    /// `synced` false it is not: the caller calls `sync()` before the name that publishes it is
    /// made durable, so as to flush several new files in one batch). With
    /// `claimed`, the file is the empty one the caller already created and holds
    /// (`ClaimedTemporary.create`); the image owns that descriptor from then on.
    @discardableResult
    public static func create(
        at path: String, size: UInt64, uniqueID: [UInt8],
        differencing: DifferencingSetup? = nil, claimed: FileDescriptor? = nil, deviceCapacity: UInt64? = nil,
        synced: Bool = true
    ) throws(StorageError) -> VHDImage {
        let descriptor: FileDescriptor
        if let claimed {
            descriptor = claimed
        } else {
            descriptor = try Syscall.open(path, .readWrite, options: [.create, .exclusiveCreate])
        }
        let entries = reservedEntries(for: size)
        let tableOffset = UInt64(VHDFooter.size + VHDDynamicHeader.size)
        var header = VHDDynamicHeader(tableOffset: tableOffset, maxTableEntries: UInt32((size + blockSize - 1) / blockSize))
        var footer = VHDFooter(size: size, diskType: differencing == nil ? .dynamic : .differencing, uniqueID: uniqueID)
        var metadataEnd = tableOffset + entries * 4
        var locatorWrites: [(UInt64, [UInt8])] = []
        if let differencing {
            header.parentUniqueID = differencing.parentUniqueID
            header.parentTimestamp = differencing.parentTimestamp
            header.setParentName(differencing.parentFileName)
            for (index, locator) in differencing.locators.prefix(VHDDynamicHeader.locatorCount).enumerated() {
                let space = (UInt64(locator.data.count) + 511) / 512 * 512
                header.parentLocators[index] = VHDParentLocator(
                    platformCode: locator.platformCode, dataSpace: UInt32(max(space, 512)),
                    dataLength: UInt32(locator.data.count), dataOffset: metadataEnd)
                locatorWrites.append((metadataEnd, locator.data))
                metadataEnd += max(space, 512)
            }
            footer.hidden = false
        }
        let footerOffset = (metadataEnd + 511) / 512 * 512
        if let deviceCapacity, footerOffset + UInt64(VHDFooter.size) > deviceCapacity {
            descriptor.closeIgnoringErrors()
            throw .noSpace(
                "\(path): the VHD's metadata needs \(footerOffset + UInt64(VHDFooter.size)) bytes; the device holds \(deviceCapacity)")
        }
        do throws(StorageError) {
            try descriptor.writeAll(footer.bytes, at: 0, path: path)
            try descriptor.writeAll(header.bytes, at: UInt64(VHDFooter.size), path: path)
            // The empty BAT (2 MiB for 1 TiB) from one small buffer: a buffer of its whole size
            // cost a fresh mapping and a page fault per 4 KiB, more than the write itself.
            let tableBytes = entries * 4
            let chunk = [UInt8](repeating: 0xFF, count: Int(min(tableBytes, 128 * 1024)))
            var written: UInt64 = 0
            while written < tableBytes {
                let count = Int(min(UInt64(chunk.count), tableBytes - written))
                try descriptor.writeAll(count == chunk.count ? chunk : Array(chunk[..<count]), at: tableOffset + written, path: path)
                written += UInt64(count)
            }
            for (offset, data) in locatorWrites { try descriptor.writeAll(data, at: offset, path: path) }
            try descriptor.writeAll(footer.bytes, at: footerOffset, path: path)
            if synced {
                try descriptor.sync(path: path)
            } else {
                // Its writeback begins now, while the caller prepares the rest of its batch (a
                // clone's second child, links, attributes): the caller's sync() finds it done.
                Syscall.startWriteback(descriptor, at: 0, count: 0)
            }
        } catch {
            descriptor.closeIgnoringErrors()
            // A device is never unlinked: only a file this call created.
            if deviceCapacity == nil { try? Syscall.unlinkIfPresent(path) }
            throw error
        }
        let image = VHDImage(
            path: path, writable: true, descriptor: descriptor, footer: footer, header: header,
            endFooterDamaged: false)
        // The table is read back on first use (`allocationTable`): snapshot, clone and
        // vdi_create never use it, and building it here cost 4 bytes per entry for nothing.
        if let deviceCapacity {
            image.deviceCapacity = deviceCapacity
            image.deviceEnd = footerOffset + UInt64(VHDFooter.size)
        }
        return image
    }

    /// What a differencing disk records about its parent.
    public struct DifferencingSetup: Sendable {
        public var parentUniqueID: [UInt8]
        public var parentTimestamp: UInt32
        public var parentFileName: String
        public var locators: [(platformCode: UInt32, data: [UInt8])]

        /// Locators as blktap writes them for a parent file in the same directory.
        public init(parentUniqueID: [UInt8], parentTimestamp: UInt32, parentFileName: String) {
            self.parentUniqueID = parentUniqueID
            self.parentTimestamp = parentTimestamp
            self.parentFileName = parentFileName
            func utf16LittleEndian(_ text: String) -> [UInt8] { text.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } }
            locators = [
                (VHDParentLocator.macX, Array("file://./\(parentFileName)".utf8)),
                (VHDParentLocator.w2ku, utf16LittleEndian(".\\\(parentFileName)")),
                (VHDParentLocator.w2ru, utf16LittleEndian(".\\\(parentFileName)"))
            ]
        }
    }

    // MARK: Geometry of the file

    public var size: UInt64 { footer.currentSize }
    public var blockCount: Int { Int((footer.currentSize + Self.blockSize - 1) / Self.blockSize) }
    public var isDifferencing: Bool { footer.diskType == .differencing }
    public var uniqueID: CanonicalUUID { CanonicalUUID(bytes: footer.uniqueID) }

    public func fileSize() throws(StorageError) -> UInt64 {
        if let deviceEnd { return deviceEnd }
        return try descriptor.size(path: path)
    }

    /// Cuts a file to `size` bytes; on a block device, only moves the recorded end.
    func setEnd(_ size: UInt64) throws(StorageError) {
        if deviceEnd != nil {
            deviceEnd = size
            return
        }
        try descriptor.resize(to: size, path: path)
    }

    /// The BAT (loaded on first use; `sr_scan` never needs it).
    public func allocationTable() throws(StorageError) -> [UInt32] {
        if let table { return table }
        let count = Int(header.maxTableEntries)
        // Checked before reading: a damaged entry count must not allocate gigabytes.
        guard header.tableOffset + UInt64(count) * 4 <= (try fileSize()) else { throw .malformed("BAT extends past end of file") }
        let bytes = try descriptor.read(count: count * 4, at: header.tableOffset, path: path)
        guard bytes.count == count * 4 else { throw .malformed("BAT extends past end of file") }
        let loaded = (0..<count).map { bytes.bigEndian32(at: $0 * 4) }
        table = loaded
        return loaded
    }

    /// The first byte after every piece of metadata, every allocated block and the BAT room
    /// reserved at creation (which ends where the footer of a file without blocks sits).
    func endOfUsedSpace() throws(StorageError) -> UInt64 {
        let table = try allocationTable()
        var end = max(header.tableOffset + UInt64(header.maxTableEntries) * 4, try currentFooterOffset())
        for locator in header.parentLocators where !locator.isEmpty {
            end = max(end, locator.dataOffset + locator.dataSpaceInBytes)
        }
        for entry in table where entry != Self.unallocated {
            end = max(end, UInt64(entry) * Self.sectorSize + Self.bitmapSize + Self.blockSize)
        }
        return end
    }

    /// The start of the first allocated block or locator after the BAT (how far the BAT may grow in place).
    func firstObstacleAfterTable() throws(StorageError) -> UInt64 {
        var first = UInt64.max
        for locator in header.parentLocators where !locator.isEmpty && locator.dataOffset > header.tableOffset {
            first = min(first, locator.dataOffset)
        }
        for entry in try allocationTable() where entry != Self.unallocated {
            first = min(first, UInt64(entry) * Self.sectorSize)
        }
        return first
    }

    // MARK: Reading

    /// The sector bitmap of an allocated block, nil when the block is not allocated.
    public func bitmap(ofBlock block: Int) throws(StorageError) -> [UInt8]? {
        let table = try allocationTable()
        guard block < table.count, table[block] != Self.unallocated else { return nil }
        let bitmap = try descriptor.read(count: Int(Self.bitmapSize), at: UInt64(table[block]) * Self.sectorSize, path: path)
        guard bitmap.count == Int(Self.bitmapSize) else { throw .malformed("block \(block) bitmap lies past end of file") }
        return bitmap
    }

    /// Guest bytes at `offset` (any alignment), through the parent where this disk holds nothing.
    public func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        let outcome: Result<Void, StorageError> = result.withUnsafeMutableBytes { buffer in
            do throws(StorageError) {
                try read(at: offset, into: buffer)
                return .success(())
            } catch { return .failure(error) }
        }
        try outcome.get()
        return result
    }

    /// Guest bytes at `offset` into `buffer` (any alignment). Sectors this disk does not hold
    /// come from `parentReader` (differencing) or read as zeros; nothing is copied twice.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) {
        let count = buffer.count
        guard offset <= size, UInt64(count) <= size - offset else {
            throw .malformed("read of \(count) bytes at \(offset) is beyond the disk size \(size)")
        }
        let table = try allocationTable()
        let end = offset + UInt64(count)
        var position = offset
        while position < end {
            let block = Int(position / Self.blockSize)
            let blockEnd = min(end, UInt64(block + 1) * Self.blockSize)
            let done = Int(position - offset)
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + Int(blockEnd - position)])
            guard block < table.count, table[block] != Self.unallocated, let bitmap = try bitmap(ofBlock: block) else {
                try fromParent(position, slice)
                position = blockEnd
                continue
            }
            let dataStart = UInt64(table[block]) * Self.sectorSize + Self.bitmapSize
            // Runs of sectors with the same bitmap state are read in one call.
            while position < blockEnd {
                let sector = Int((position % Self.blockSize) / Self.sectorSize)
                let present = Self.bit(bitmap, sector)
                let blockBase = UInt64(block) * Self.blockSize
                let runEnd = min(blockEnd, blockBase + UInt64(Self.runEnd(bitmap, from: sector, present: present)) * Self.sectorSize)
                let runStart = Int(position - offset)
                let run = UnsafeMutableRawBufferPointer(rebasing: buffer[runStart..<runStart + Int(runEnd - position)])
                if present {
                    let got = try descriptor.read(into: run, at: dataStart + position % Self.blockSize, path: path)
                    guard got == run.count else { throw .malformed("\(path): block \(block) data lies past the end of the file") }
                } else {
                    try fromParent(position, run)
                }
                position = runEnd
            }
        }
    }

    private func fromParent(_ offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(StorageError) {
        if isDifferencing {
            // Zeros would be silently wrong: a differencing disk is read (and partially written) through its chain.
            guard let parentReader else { throw .io("\(path) is a differencing disk opened without its parent; use VHDChain") }
            try parentReader(offset, buffer)
        } else {
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
        }
    }

    /// The first sector at or after `sector` whose bit differs from `present` (whole bytes at a time).
    static func runEnd(_ bitmap: [UInt8], from sector: Int, present: Bool) -> Int {
        let uniform: UInt8 = present ? 0xFF : 0x00
        var current = sector
        let limit = Int(sectorsPerBlock)
        while current < limit {
            if current & 7 == 0, bitmap[current >> 3] == uniform {
                current += 8
                continue
            }
            if bit(bitmap, current) != present { return current }
            current += 1
        }
        return limit
    }

    static func bit(_ bitmap: [UInt8], _ sector: Int) -> Bool {
        bitmap[sector >> 3] & (0x80 >> UInt8(sector & 7)) != 0
    }

    static func setBit(_ bitmap: inout [UInt8], _ sector: Int) {
        bitmap[sector >> 3] |= 0x80 >> UInt8(sector & 7)
    }

    // MARK: Writing

    /// Writes guest bytes at `offset` (any alignment; partial sectors are completed from the
    /// current contents, through the parent if need be).
    public func write(at offset: UInt64, bytes: [UInt8]) throws(StorageError) {
        guard writable else { throw .openReadOnly(path) }
        guard offset <= size, UInt64(bytes.count) <= size - offset else {
            throw .malformed("write of \(bytes.count) bytes at \(offset) is beyond the disk size \(size)")
        }
        if bytes.isEmpty { return }
        let firstSector = offset / Self.sectorSize
        let lastSector = (offset + UInt64(bytes.count) - 1) / Self.sectorSize
        var data = bytes
        let alignedStart = firstSector * Self.sectorSize
        let alignedEnd = (lastSector + 1) * Self.sectorSize
        if alignedStart != offset {
            data = try read(at: alignedStart, count: Int(offset - alignedStart)) + data
        }
        let end = offset + UInt64(bytes.count)
        if alignedEnd != end {
            data += try read(at: end, count: Int(alignedEnd - end))
        }
        var position = alignedStart
        var consumed = 0
        while position < alignedEnd {
            let block = Int(position / Self.blockSize)
            let blockEnd = min(alignedEnd, UInt64(block + 1) * Self.blockSize)
            let length = Int(blockEnd - position)
            try writeSectors(block: block, offsetInBlock: position % Self.blockSize, Array(data[consumed..<consumed + length]))
            consumed += length
            position = blockEnd
        }
    }

    /// Writes whole sectors inside one block, allocating it if needed.
    private func writeSectors(block: Int, offsetInBlock: UInt64, _ data: [UInt8]) throws(StorageError) {
        let firstSector = Int(offsetInBlock / Self.sectorSize)
        let sectorCount = data.count / Int(Self.sectorSize)
        if var bitmap = try bitmap(ofBlock: block) {
            let blockStart = UInt64(try allocationTable()[block]) * Self.sectorSize
            try descriptor.writeAll(data, at: blockStart + Self.bitmapSize + offsetInBlock, path: path)
            var changed = false
            for sector in firstSector..<firstSector + sectorCount where !Self.bit(bitmap, sector) {
                Self.setBit(&bitmap, sector)
                changed = true
            }
            if changed {
                try barrier()
                try descriptor.writeAll(bitmap, at: blockStart, path: path)
            }
            return
        }
        // A new block: in a differencing disk the untouched sectors stay clear (read from the parent).
        var bitmap = [UInt8](repeating: 0, count: Int(Self.bitmapSize))
        for sector in firstSector..<firstSector + sectorCount { Self.setBit(&bitmap, sector) }
        let blockStart = try placeNewBlock()
        // The footer moves to the new end first, so that the file never ends in anything else.
        try extendFile(footerAt: blockStart + Self.bitmapSize + Self.blockSize)
        try descriptor.writeAll(bitmap, at: blockStart, path: path)
        try descriptor.writeAll(data, at: blockStart + Self.bitmapSize + offsetInBlock, path: path)
        try barrier()
        try setTableEntry(block, UInt32(blockStart / Self.sectorSize))
        try barrier()
    }

    /// Where the next block goes: past all used space (and `floor`), data area 4 KiB aligned.
    /// EIO when that is past what a BAT entry can name (sector 2^32 - 2; a damaged BAT entry or
    /// locator offset puts the used space there): the entry must not be truncated or trap.
    func placeNewBlock(atOrAfter floor: UInt64 = 0) throws(StorageError) -> UInt64 {
        let end = max(try endOfUsedSpace(), floor)
        let start = (end + Self.bitmapSize + Self.dataAlignment - 1) / Self.dataAlignment * Self.dataAlignment - Self.bitmapSize
        guard start / Self.sectorSize < UInt64(Self.unallocated) else {
            throw .malformed("\(path): no room for a new block: used space ends at \(end), past what a BAT entry can address")
        }
        return start
    }

    func currentFooterOffset() throws(StorageError) -> UInt64 {
        let size = try fileSize()
        return size >= UInt64(VHDFooter.size) ? size - UInt64(VHDFooter.size) : 0
    }

    func setTableEntry(_ block: Int, _ value: UInt32) throws(StorageError) {
        var bytes = [UInt8](repeating: 0, count: 4)
        bytes.setBigEndian32(value, at: 0)
        try descriptor.writeAll(bytes, at: header.tableOffset + UInt64(block) * 4, path: path)
        if table == nil { _ = try allocationTable() }
        table?[block] = value
    }

    func writeEndFooter(at offset: UInt64) throws(StorageError) {
        if let deviceEnd {
            guard offset + UInt64(VHDFooter.size) <= deviceCapacity else {
                throw .noSpace(
                    "\(path): the VHD needs \(offset + UInt64(VHDFooter.size)) bytes; the device holds \(deviceCapacity)")
            }
            try descriptor.writeAll(footer.bytes, at: offset, path: path)
            self.deviceEnd = max(deviceEnd, offset + UInt64(VHDFooter.size))
            return
        }
        try descriptor.writeAll(footer.bytes, at: offset, path: path)
    }

    /// Rewrites both footer copies (end first, then offset 0), e.g. after changing the hidden flag.
    /// With `time`, the file's modification time is set back to it after the copy at 0 (the
    /// writes changed it; children record their parent's), and the same fsync makes both durable.
    public func writeFooters(keepingModificationTime time: timespec? = nil) throws(StorageError) {
        let end = max(try endOfUsedSpace(), try currentFooterOffset())
        let footerOffset = (end + 511) / 512 * 512
        try writeEndFooter(at: footerOffset)
        try barrier()
        try descriptor.writeAll(footer.bytes, at: 0, path: path)
        if let time { try setModificationTime(time) }
        try barrier()
    }

    /// Sets blktap's hidden flag in both footers (and, with `time`, the modification time back).
    public func setHidden(_ hidden: Bool, keepingModificationTime time: timespec? = nil) throws(StorageError) {
        footer.hidden = hidden
        try writeFooters(keepingModificationTime: time)
    }

    /// Gives this file another disk's identity (unique id and hidden flag) in both footers: the
    /// last step of coalescing, where the merged parent takes its child's place (with `time`,
    /// the child's modification time too, durable with the copy at 0).
    public func setIdentity(uniqueID: [UInt8], hidden: Bool, keepingModificationTime time: timespec? = nil) throws(StorageError) {
        footer.uniqueID = uniqueID
        footer.hidden = hidden
        try writeFooters(keepingModificationTime: time)
    }

    /// The file's modification time (a child records its parent's, in seconds since 2000).
    public func modificationTime() throws(StorageError) -> timespec {
        try descriptor.status(path: path).st_mtim
    }

    /// Restores a modification time after a metadata change, so that children still agree with it.
    public func setModificationTime(_ time: timespec) throws(StorageError) {
        try descriptor.setModificationTime(time, path: path)
    }

    /// fsync when `durable`.
    func barrier() throws(StorageError) {
        guard durable else { return }
        try descriptor.sync(path: path)
    }

    public func sync() throws(StorageError) {
        try descriptor.sync(path: path)
    }

    // MARK: Resizing

    /// Grows the virtual size. Guest data is unchanged; new space reads as zeros (or, in a
    /// differencing disk, from the parent, which is the same size or smaller and reads zeros).
    ///
    /// Two invariants hold at every instant, whatever kills the process: the file ends in a
    /// valid footer, and every piece of metadata (header, BAT, parent locators) lies before every
    /// data block, as blktap's `vhd-util check` requires ("block clobbers headers").
    /// Order, each step durable before the next (fault points in brackets):
    /// 1. if the BAT outgrows its room: its new end, and after it (and after the old ones, which
    ///    stay intact while the header names them) new places for the locators it would cover,
    ///    give the new end of metadata M. Disk space for everything written past the end of the
    ///    file is reserved first (fallocate, size kept): ENOSPC there changes nothing;
    /// 2. each block that begins before M is moved past everything, one at a time: the footer
    ///    at the new end first (the file grows with a footer as its last sector)
    ///    [`resize.file-extended`], then the bitmap and data copied into the space before it
    ///    [`resize.block-copied`], then the BAT entry repointed [`resize.block-moved`]: a crash
    ///    leaves the entry on the old or the new copy, both complete. Without blocks, the footer
    ///    alone moves past M (one write);
    /// 3. the locators' data at their new places, then the header naming them [`resize.locators-moved`];
    /// 4. the new BAT entries as unallocated (over bytes nothing references any more), then the
    ///    header with the new entry count [`resize.table-grown`];
    /// 5. the footer at the end, then the copy at offset 0, with the new size [`resize.end-footer-written`].
    /// A crash before 5 leaves the old size with spare (unallocated) BAT entries: valid, and
    /// repeating the resize completes it. A crash inside 5 leaves the end footer new and the copy
    /// at 0 old: the end copy is authoritative (`repairFooters`, which the next resize, snapshot or
    /// clone runs first). A failed step (ENOSPC without a reservation) is undone back to the old
    /// end of the file, so the file ends in its old footer again.
    public func resize(to newSize: UInt64) throws(StorageError) {
        guard writable else { throw .openReadOnly(path) }
        guard newSize >= size else { throw .malformed("cannot shrink from \(size) to \(newSize)") }
        let newEntries = UInt32((newSize + Self.blockSize - 1) / Self.blockSize)
        if newEntries > header.maxTableEntries {
            try growTable(to: newEntries)
        }
        footer.resize(to: newSize)
        let end = max(try endOfUsedSpace(), try currentFooterOffset())
        try writeEndFooter(at: Self.roundUpToSector(end))
        try barrier()
        FaultPoint.Resize.endFooterWritten.reach()
        try descriptor.writeAll(footer.bytes, at: 0, path: path)
        try barrier()
    }

    /// Steps 1 to 4 of `resize(to:)`.
    private func growTable(to newEntries: UInt32) throws(StorageError) {
        let oldEntries = header.maxTableEntries
        let tableEnd = Self.roundUpToSector(header.tableOffset + UInt64(newEntries) * 4)
        let table = try allocationTable()
        let firstBlock = table.filter { $0 != Self.unallocated }.map { UInt64($0) * Self.sectorSize }.min() ?? UInt64.max
        // Locators the larger BAT would cover, or (left by older versions) lying behind a block, move.
        let locators = header.parentLocators
        let moving = locators.indices.filter {
            !locators[$0].isEmpty && locators[$0].dataOffset >= header.tableOffset
                && (locators[$0].dataOffset < tableEnd || locators[$0].dataOffset > firstBlock)
        }
        for index in moving where locators[index].dataSpaceInBytes > Self.maximumLocatorSpace {
            throw .malformed(
                "parent locator \(index) claims \(locators[index].dataSpaceInBytes) bytes; "
                    + "at most \(Self.maximumLocatorSpace) are moved")
        }
        var newLocators = locators
        if !moving.isEmpty {
            var next = tableEnd
            for locator in locators where !locator.isEmpty {
                next = max(next, Self.roundUpToSector(locator.dataOffset + locator.dataSpaceInBytes))
            }
            for index in moving {
                newLocators[index].dataOffset = next
                next += Self.roundUpToSector(locators[index].dataSpaceInBytes)
            }
        }
        var metadataEnd = tableEnd
        for locator in newLocators where !locator.isEmpty {
            metadataEnd = max(metadataEnd, locator.dataOffset + locator.dataSpaceInBytes)
        }
        let inTheWay = table.indices.filter { table[$0] != Self.unallocated && UInt64(table[$0]) * Self.sectorSize < metadataEnd }
        let startSize = try fileSize()
        let growth =
            UInt64(inTheWay.count) * (Self.bitmapSize + Self.blockSize + Self.dataAlignment)
            + (metadataEnd > startSize ? metadataEnd - startSize : 0) + 2 * UInt64(VHDFooter.size) + Self.dataAlignment
        do throws(StorageError) {
            if deviceEnd != nil {
                guard startSize + growth <= deviceCapacity else {
                    throw StorageError.noSpace("\(path): the device holds \(deviceCapacity) bytes")
                }
            } else {
                _ = try Syscall.reserveSpace(descriptor, at: startSize, length: growth, path: path)
            }
        } catch {
            try? setEnd(startSize)
            throw error.code == .noSpace
                ? error.reworded("\(path): growing the BAT needs \(growth) more bytes than the filesystem has") : error
        }
        // Whatever happens next, nothing stays reserved past the end of the file.
        defer { try? setEnd((try? self.fileSize()) ?? startSize) }
        var moved = false
        for block in inTheWay {
            try moveBlock(block, atOrAfter: metadataEnd, first: !moved)
            moved = true
        }
        if try currentFooterOffset() < metadataEnd {
            try extendFile(footerAt: Self.roundUpToSector(max(metadataEnd, try endOfUsedSpace())))
        }
        if !moving.isEmpty {
            for index in moving {
                let data = try descriptor.read(count: Int(locators[index].dataSpaceInBytes), at: locators[index].dataOffset, path: path)
                try descriptor.writeAll(data, at: newLocators[index].dataOffset, path: path)
            }
            try barrier()
            header.parentLocators = newLocators
            try writeHeader()
            FaultPoint.Resize.locatorsMoved.reach()
        }
        let fresh = [UInt8](repeating: 0xFF, count: Int(tableEnd - header.tableOffset) - Int(oldEntries) * 4)
        try descriptor.writeAll(fresh, at: header.tableOffset + UInt64(oldEntries) * 4, path: path)
        try barrier()
        header.maxTableEntries = newEntries
        try writeHeader()
        self.table?.append(contentsOf: [UInt32](repeating: Self.unallocated, count: Int(newEntries - oldEntries)))
        FaultPoint.Resize.tableGrown.reach()
    }

    /// Moves one block past everything (and past `floor`): footer at the new end, copy, BAT entry.
    private func moveBlock(_ block: Int, atOrAfter floor: UInt64, first: Bool) throws(StorageError) {
        let source = UInt64(try allocationTable()[block]) * Self.sectorSize
        let destination = try placeNewBlock(atOrAfter: floor)
        let length = Int(Self.bitmapSize + Self.blockSize)
        let oldSize = try fileSize()
        try extendFile(footerAt: destination + UInt64(length))
        if first { FaultPoint.Resize.fileExtended.reach() }
        do throws(StorageError) {
            let bytes = try descriptor.read(count: length, at: source, path: path)
            try descriptor.writeAll(bytes + [UInt8](repeating: 0, count: length - bytes.count), at: destination, path: path)
            try barrier()
        } catch {
            try? restoreEnd(oldSize)
            throw error
        }
        if first { FaultPoint.Resize.blockCopied.reach() }
        try setTableEntry(block, UInt32(destination / Self.sectorSize))
        try barrier()
        if first { FaultPoint.Resize.blockMoved.reach() }
    }

    /// Grows the file by writing the footer at `offset` (past the current end): the new end is a
    /// footer from the first instant. A failed (short) write is cut back to the old end, whose
    /// footer was never touched.
    func extendFile(footerAt offset: UInt64) throws(StorageError) {
        let oldSize = try fileSize()
        do throws(StorageError) {
            try writeEndFooter(at: offset)
        } catch {
            try? setEnd(oldSize)
            throw error
        }
        try barrier()
    }

    /// Puts the footer back at `size - 512` and cuts the file there (undoing `extendFile`).
    private func restoreEnd(_ size: UInt64) throws(StorageError) {
        try writeEndFooter(at: size - UInt64(VHDFooter.size))
        try barrier()
        try setEnd(size)
        try barrier()
    }

    private func writeHeader() throws(StorageError) {
        try descriptor.writeAll(header.bytes, at: footer.dataOffset, path: path)
        try barrier()
    }

    static func roundUpToSector(_ offset: UInt64) -> UInt64 { (offset + sectorSize - 1) / sectorSize * sectorSize }

    // MARK: Footer repair

    /// True when the end footer is readable and the copy at offset 0 is byte for byte the same.
    public func footersAgree() throws(StorageError) -> Bool {
        guard !endFooterDamaged else { return false }
        let end = try descriptor.read(count: VHDFooter.size, at: try currentFooterOffset(), path: path)
        return end == (try descriptor.read(count: VHDFooter.size, at: 0, path: path))
    }

    /// Makes the two footer copies one again after a crash between their writes; true when it
    /// wrote anything. Every write order here writes the end footer first and the copy at 0
    /// last, so when both are readable the end copy is the newer one and wins. When the end
    /// holds no valid footer (the copy at 0 was used at open), `repairTail` puts one back after
    /// the last byte in use. Resize, snapshot and clone run this before anything else, so that a
    /// damaged pair is never frozen into a read-only parent.
    @discardableResult
    public func repairFooters() throws(StorageError) -> Bool {
        guard writable else { throw .openReadOnly(path) }
        if endFooterDamaged {
            // A missing end footer is repaired only when every referenced byte is still in the
            // file (bytes past it were being added when the writer died); a file cut into its
            // blocks, BAT or locators lost data, and inventing a footer would hide that.
            var referencedEnd = header.tableOffset + UInt64(header.maxTableEntries) * 4
            for locator in header.parentLocators where !locator.isEmpty {
                referencedEnd = max(referencedEnd, locator.dataOffset + locator.dataSpaceInBytes)
            }
            for entry in try allocationTable() where entry != Self.unallocated {
                referencedEnd = max(referencedEnd, UInt64(entry) * Self.sectorSize + Self.bitmapSize + Self.blockSize)
            }
            guard referencedEnd <= (try fileSize()) else {
                throw .malformed("\(path) is truncated: its metadata or blocks reach \(referencedEnd), past the end of the file")
            }
            try repairTail()
            endFooterDamaged = false
            return true
        }
        guard try !footersAgree() else { return false }
        let end = try descriptor.read(count: VHDFooter.size, at: try currentFooterOffset(), path: path)
        try descriptor.writeAll(end, at: 0, path: path)
        try barrier()
        return true
    }
}
