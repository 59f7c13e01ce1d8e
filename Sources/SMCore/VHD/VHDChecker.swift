#if canImport(Glibc)
    import Glibc
#endif

/// Verifies one VHD file against every rule of VHD-NOTES.md that can be checked from the file
/// itself (the chain rules, which need the parent, are `parentProblems`). Never throws and never
/// traps on damaged input: every violation is one sentence in the result.
///
/// At least as strict as blktap's `vhd-util check` on everything it can see in one file: besides
/// checksums and reserved fields, every data block must begin at or after the end of all metadata
/// (header, BAT padded to a sector, batmap, parent locators: blktap's "block clobbers headers"),
/// end before the footer, and overlap nothing; locators must lie inside the file before the
/// footer, with zero reserved bits, sector-aligned offsets and no platform code twice; unused
/// locator slots and the parent fields of a base disk are all zero.
public enum VHDChecker {
    /// Problems of the file at `path`; empty when it is sound.
    public static func problems(ofFile path: String, now: UInt32 = VHDTime.now()) -> [String] {
        guard let (descriptor, status) = try? Syscall.openRegularFileWithStatus(path, .readOnly) else { return ["cannot open \(path)"] }
        defer { descriptor.closeIgnoringErrors() }
        let fileSize = UInt64(status.st_size)
        /// Offsets and counts come from the file: anything past its end is not read (and not allocated).
        func read(_ count: Int, at offset: UInt64) -> [UInt8] {
            guard offset < fileSize else { return [] }
            let count = Int(min(UInt64(max(count, 0)), fileSize - offset))
            return (try? descriptor.read(count: count, at: offset, path: path)) ?? []
        }
        let minimum = UInt64(VHDFooter.size * 2 + VHDDynamicHeader.size)
        guard fileSize >= minimum else { return ["file is \(fileSize) bytes, too short for a dynamic VHD (truncated?)"] }
        var problems: [String] = []
        if fileSize % VHDImage.sectorSize != 0 { problems.append("file size \(fileSize) is not a multiple of 512 (truncated?)") }
        let footerOffset = fileSize - UInt64(VHDFooter.size)
        let endBytes = read(VHDFooter.size, at: footerOffset)
        let copyBytes = read(VHDFooter.size, at: 0)
        var footer: VHDFooter?
        do throws(StorageError) { footer = try VHDFooter(bytes: endBytes) } catch { problems.append("footer at the end: \(error.message)") }
        do throws(StorageError) {
            let copy = try VHDFooter(bytes: copyBytes)
            if footer == nil { footer = copy }
        } catch { problems.append("footer copy at offset 0: \(error.message)") }
        if endBytes != copyBytes, problems.isEmpty { problems.append("footer copy at offset 0 differs from the footer at the end") }
        guard let footer else { return problems }
        problems += footerProblems(footer, raw: endBytes.count == VHDFooter.size ? endBytes : copyBytes, now: now)
        guard footer.diskType != .fixed, footer.dataOffset != VHDFooter.noDataOffset,
            footer.dataOffset <= footerOffset - UInt64(VHDDynamicHeader.size)
        else {
            problems.append("dynamic header offset \(footer.dataOffset) lies outside the file")
            return problems
        }
        let headerBytes = read(VHDDynamicHeader.size, at: footer.dataOffset)
        let header: VHDDynamicHeader
        do throws(StorageError) { header = try VHDDynamicHeader(bytes: headerBytes) } catch {
            problems.append("dynamic header: \(error.message)")
            return problems
        }
        if headerBytes[60..<64].contains(where: { $0 != 0 }) || headerBytes[768..<1024].contains(where: { $0 != 0 }) {
            problems.append("dynamic header reserved bytes are not zero")
        }
        if UInt64(header.maxTableEntries) * VHDImage.blockSize < footer.currentSize {
            problems.append("BAT holds \(header.maxTableEntries) entries, too few for size \(footer.currentSize)")
        }
        let differencing = footer.diskType == .differencing
        if !differencing {
            // Parent unique id, timestamp, name and locators: every byte, not just up to a NUL.
            if headerBytes[parentFields].contains(where: { $0 != 0 }) {
                problems.append("a dynamic (non-differencing) disk has parent fields set")
            }
        } else {
            if !header.parentUniqueID.contains(where: { $0 != 0 }) { problems.append("parent unique id is all zero") }
            if header.parentName.isEmpty { problems.append("parent name is empty") }
            if header.parentTimestamp > now &+ 300 { problems.append("parent timestamp \(header.parentTimestamp) is in the future") }
        }
        // Extents: everything that occupies the file must lie before the end footer and not overlap.
        var extents: [Extent] = [
            Extent(0, UInt64(VHDFooter.size), "footer copy"),
            Extent(footer.dataOffset, footer.dataOffset + UInt64(VHDDynamicHeader.size), "dynamic header"),
            Extent(footerOffset, fileSize, "footer")
        ]
        guard header.tableOffset <= fileSize else {
            problems.append("BAT offset \(header.tableOffset) lies past the end of the file")
            return problems
        }
        let tableEnd = header.tableOffset + UInt64(header.maxTableEntries) * 4
        extents.append(Extent(header.tableOffset, tableEnd, "BAT"))
        // blktap's end of metadata: the header and the BAT padded to a whole sector, then the
        // batmap and the locators below. No data block may begin before it.
        var metadataEnd = max(footer.dataOffset + UInt64(VHDDynamicHeader.size), roundUpToSector(tableEnd))
        var locatorsPresent = false
        var platformCodes: Set<UInt32> = []
        for (index, locator) in header.parentLocators.enumerated() {
            let name = "parent locator \(index)"
            let raw = headerBytes[(locatorTable + index * locatorEntrySize)..<(locatorTable + (index + 1) * locatorEntrySize)]
            if locator.isEmpty {
                if raw.contains(where: { $0 != 0 }) { problems.append("unused \(name) is not all zero") }
                continue
            }
            locatorsPresent = true
            if raw.dropFirst(12).prefix(4).contains(where: { $0 != 0 }) { problems.append("\(name) has reserved bits set") }
            guard [VHDParentLocator.macX, VHDParentLocator.w2ku, VHDParentLocator.w2ru].contains(locator.platformCode) else {
                problems.append("\(name) has unknown platform code \(locator.platformCode)")
                continue
            }
            if !platformCodes.insert(locator.platformCode).inserted {
                problems.append("\(name) has a duplicate platform code \(String(locator.platformCode, radix: 16))")
            }
            if locator.dataOffset % VHDImage.sectorSize != 0 {
                problems.append("\(name) at \(locator.dataOffset) is not sector aligned")
            }
            guard locator.dataOffset != 0, locator.dataSpace != 0, locator.dataLength != 0,
                UInt64(locator.dataLength) <= locator.dataSpaceInBytes
            else {
                problems.append("\(name) has a zero offset, space or length, or a length beyond its space")
                continue
            }
            guard locator.dataOffset <= fileSize else {
                problems.append("\(name) at \(locator.dataOffset) lies past the end of the file")
                continue
            }
            extents.append(Extent(locator.dataOffset, locator.dataOffset + locator.dataSpaceInBytes, name))
            metadataEnd = max(metadataEnd, locator.dataOffset + locator.dataSpaceInBytes)
            let data = read(Int(min(locator.dataLength, 4096)), at: locator.dataOffset)
            let target = VHDChain.decodeLocator(platformCode: locator.platformCode, data)
            if let target, target.split(separator: "/").last.map(String.init) != header.parentName {
                problems.append("\(name) names '\(target)' but the header's parent name is '\(header.parentName)'")
            } else if target == nil {
                problems.append("\(name) cannot be decoded")
            }
        }
        if differencing && !locatorsPresent { problems.append("differencing disk without parent locators") }
        let tableBytes = tableEnd <= footerOffset ? read(Int(header.maxTableEntries) * 4, at: header.tableOffset) : []
        if tableBytes.count != Int(header.maxTableEntries) * 4 {
            problems.append("BAT extends past the end of the file")
            return problems
        }
        let batmapPromised = footer.creatorApplication == VHDFooter.creatorApplication && footer.creatorVersion >= 0x0001_0002
        if batmapPromised {
            for extent in batmapExtents(read: read, header: header) {
                extents.append(extent)
                metadataEnd = max(metadataEnd, extent.end)
            }
        }
        // Per-block problems are counted past the first few: a damaged BAT of a million entries
        // must not become a million messages (nor the memory to hold them).
        var blockProblems = 0
        func blockProblem(_ message: @autoclosure () -> String) {
            blockProblems += 1
            if blockProblems <= Self.blockProblemsListed { problems.append(message()) }
        }
        for block in 0..<Int(header.maxTableEntries) {
            let entry = tableBytes.bigEndian32(at: block * 4)
            guard entry != VHDImage.unallocated else { continue }
            let start = UInt64(entry) * VHDImage.sectorSize
            let end = start + VHDImage.bitmapSize + VHDImage.blockSize
            if start < metadataEnd {
                blockProblem(
                    "block \(block) at \(start) begins before the end of the metadata at \(metadataEnd) "
                        + "(blktap: block clobbers headers)")
            }
            if end > footerOffset {
                blockProblem("BAT entry \(block) points past the end of the file (block at \(start), footer at \(footerOffset))")
                continue
            }
            extents.append(Extent(start, end, block: block))
        }
        extents.sort { $0.start < $1.start }
        for (first, second) in zip(extents, extents.dropFirst()) where first.end > second.start {
            blockProblem("\(first.what) overlaps \(second.what)")
        }
        if blockProblems > Self.blockProblemsListed {
            problems.append("and \(blockProblems - Self.blockProblemsListed) more problems of blocks like those above")
        }
        if batmapPromised {
            problems += batmapProblems(read: read, header: header, footer: footer, tableBytes: tableBytes)
        }
        return problems
    }

    /// A range of the file that something occupies. A data block is named by its number, its
    /// words made only for a problem: a BAT of a million entries (a 2 TiB disk, or a damaged
    /// table) kept a string per block and was most of the check's time and memory.
    struct Extent {
        enum Owner {
            case named(String)
            case block(Int)
        }

        var start: UInt64
        var end: UInt64
        var owner: Owner

        init(_ start: UInt64, _ end: UInt64, _ name: String) {
            self.init(start: start, end: end, owner: .named(name))
        }

        init(_ start: UInt64, _ end: UInt64, block: Int) {
            self.init(start: start, end: end, owner: .block(block))
        }

        init(start: UInt64, end: UInt64, owner: Owner) {
            self.start = start
            self.end = end
            self.owner = owner
        }

        var what: String {
            switch owner {
            case .named(let name): name
            case .block(let block): "block \(block)"
            }
        }
    }

    /// How many problems of single blocks are spelled out before the rest are only counted.
    static let blockProblemsListed = 16

    /// The footer feature bit "temporary disk", the only optional one.
    static let temporaryFeature: UInt32 = 0x0000_0001
    /// Where the header's parent fields lie: unique id, timestamp, reserved word, unicode name, locators.
    static let parentFields = 40..<768
    /// The eight parent locator entries of the header, 24 bytes each.
    static let locatorTable = 576
    static let locatorEntrySize = 24

    static func roundUpToSector(_ offset: UInt64) -> UInt64 {
        (offset + VHDImage.sectorSize - 1) / VHDImage.sectorSize * VHDImage.sectorSize
    }

    /// The batmap header sector and the map it names, when the header is there (metadata blocks must follow).
    static func batmapExtents(read: (Int, UInt64) -> [UInt8], header: VHDDynamicHeader) -> [Extent] {
        let headerOffset = roundUpToSector(header.tableOffset + UInt64(header.maxTableEntries) * 4)
        let bytes = read(512, headerOffset)
        guard bytes.count == 512, Array(bytes[0..<8]) == Array("tdbatmap".utf8) else { return [] }
        let mapOffset = bytes.bigEndian64(at: 8)
        let mapSectors = UInt64(bytes.bigEndian32(at: 16))
        guard mapOffset <= VHDImage.maximumOffset else { return [Extent(headerOffset, headerOffset + 512, "batmap header")] }
        return [Extent(headerOffset, headerOffset + 512, "batmap header"), Extent(mapOffset, mapOffset + mapSectors * 512, "batmap")]
    }

    /// The footer rules beyond what parsing enforces.
    static func footerProblems(_ footer: VHDFooter, raw: [UInt8], now: UInt32) -> [String] {
        var problems: [String] = []
        if footer.features & VHDFooter.requiredFeatures == 0 { problems.append("footer features lack the reserved bit 0x2") }
        if footer.features & ~(VHDFooter.requiredFeatures | temporaryFeature) != 0 {
            problems.append("footer features \(String(footer.features, radix: 16)) have bits beyond temporary and reserved")
        }
        if footer.savedState > 1 { problems.append("saved-state flag is \(footer.savedState), not 0 or 1") }
        if footer.diskType == .fixed { problems.append("fixed disks are not used in this SR") }
        if footer.diskType != .fixed && footer.dataOffset != UInt64(VHDFooter.size) {
            problems.append("footer data offset is \(footer.dataOffset), expected 512")
        }
        if !footer.uniqueID.contains(where: { $0 != 0 }) { problems.append("footer unique id is all zero") }
        if footer.timestamp > now &+ 300 { problems.append("footer timestamp \(footer.timestamp) is in the future") }
        if footer.creatorApplication == VHDFooter.creatorApplication, footer.creatorVersion > 0x0001_0003 {
            problems.append("creator 'tap' with version \(String(footer.creatorVersion, radix: 16)), above 1.3")
        }
        if raw.count == VHDFooter.size {
            if raw[VHDFooter.hiddenOffset] > 1 { problems.append("hidden flag is \(raw[VHDFooter.hiddenOffset]), not 0 or 1") }
            if raw[86..<512].contains(where: { $0 != 0 }) { problems.append("footer reserved bytes are not zero") }
        }
        if footer.currentSize % VHDImage.sectorSize != 0 { problems.append("size \(footer.currentSize) is not a whole number of sectors") }
        let expected = VHDGeometry(size: footer.currentSize)
        if footer.geometry != expected {
            problems.append(
                "geometry \(footer.geometry.cylinders)/\(footer.geometry.heads)/\(footer.geometry.sectorsPerTrack) "
                    + "differs from \(expected.cylinders)/\(expected.heads)/\(expected.sectorsPerTrack) computed from the size")
        }
        if footer.geometry.sectorCount * VHDImage.sectorSize > footer.currentSize {
            problems.append("geometry describes more than the size")
        }
        return problems
    }

    /// blktap's batmap (creator tap 1.2 and later): header after the BAT, map bits only for full blocks.
    static func batmapProblems(
        read: (Int, UInt64) -> [UInt8], header: VHDDynamicHeader, footer: VHDFooter,
        tableBytes: [UInt8]
    ) -> [String] {
        let headerOffset = (header.tableOffset + UInt64(header.maxTableEntries) * 4 + 511) / 512 * 512
        let bytes = read(512, headerOffset)
        guard bytes.count == 512, Array(bytes[0..<8]) == Array("tdbatmap".utf8) else {
            return ["creator tap \(String(footer.creatorVersion, radix: 16)) promises a batmap, none follows the BAT"]
        }
        let mapOffset = bytes.bigEndian64(at: 8)
        let mapSectors = bytes.bigEndian32(at: 16)
        let checksum = bytes.bigEndian32(at: 24)
        let covered = max(1, Int(((footer.currentSize >> 24) + 511) / 512))
        let map = read(covered * 512, mapOffset)
        guard map.count == covered * 512, covered <= Int(mapSectors) else { return ["batmap lies past the end of the file"] }
        var sum: UInt32 = 0
        for byte in map { sum &+= UInt32(byte) }
        var problems: [String] = []
        if ~sum != checksum { problems.append("batmap checksum mismatch") }
        return problems
    }

    /// The rules between a differencing disk and its parent: unique id and modification time.
    public static func parentProblems(child: VHDImage, parentPath: String) -> [String] {
        guard let parent = try? VHDImage.open(parentPath) else { return ["parent \(parentPath) cannot be read"] }
        var problems: [String] = []
        if parent.footer.uniqueID != child.header.parentUniqueID {
            problems.append(
                "parent \(parentPath) has unique id \(CanonicalUUID(bytes: parent.footer.uniqueID)), "
                    + "the header expects \(CanonicalUUID(bytes: child.header.parentUniqueID))")
        }
        if let time = try? parent.modificationTime(), VHDTime.fromUnix(Int64(time.tv_sec)) != child.header.parentTimestamp {
            problems.append(
                "parent timestamp \(child.header.parentTimestamp) differs from the parent's modification time "
                    + "\(VHDTime.fromUnix(Int64(time.tv_sec)))")
        }
        return problems
    }
}
