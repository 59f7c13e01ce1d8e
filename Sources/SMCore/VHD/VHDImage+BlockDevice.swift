import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A VHD written straight onto a block device (an LVM logical volume: Docs/LVMSR.md).
///
/// The layout is the file layout: the footer copy at 0, header, BAT, locators, blocks, and the
/// end footer just past the last byte in use. A device has no file size, so the VHD's end is
/// found, not read: past everything the header and BAT reference (the referenced end E), the
/// first sector within `footerSearchWindow` that holds a valid footer with the unique id of the
/// copy at 0. Bytes past the VHD's end are whatever the device held (a deflated LV ends a few
/// KiB after it; an inflated one has room for every block). When no such footer is found (a
/// crash between writes), the copy at 0 is used, `endFooterDamaged` is set, and the end is taken
/// as E: `repairFooters` then puts the footer back there, exactly as for a file cut short.
///
/// Every write past the device's capacity is ENOSPC before anything is written.
extension VHDImage {
    /// How far past the referenced end the end footer may lie: the BAT room a new VHD reserves
    /// (up to 4 KiB past its last entry) and alignment padding.
    static let footerSearchWindow: UInt64 = 64 * 1024

    /// Opens a VHD on the block device `path` (only a block device: anything else is EIO).
    public static func openBlockDevice(_ path: String, writable: Bool = false) throws(StorageError) -> VHDImage {
        let descriptor = try Syscall.open(path, writable ? .readWrite : .readOnly)
        do throws(StorageError) {
            let status = try descriptor.status(path: path)
            guard (status.st_mode & S_IFMT) == S_IFBLK else { throw .malformed("\(path) is not a block device") }
            let capacity = try deviceCapacity(descriptor, path: path)
            let minimum = UInt64(VHDFooter.size + VHDDynamicHeader.size + VHDFooter.size)
            guard capacity >= minimum else { throw .malformed("\(path) holds \(capacity) bytes, too few for a dynamic VHD") }
            let atZero = try? VHDFooter(bytes: try descriptor.read(count: VHDFooter.size, at: 0, path: path))
            guard let first = atZero else { throw .malformed("\(path): no valid VHD footer at offset 0") }
            let header = try readHeader(descriptor, footer: first, size: capacity, path: path, medium: "device")
            let image = VHDImage(
                path: path, writable: writable, descriptor: descriptor, footer: first, header: header,
                endFooterDamaged: false)
            image.deviceCapacity = capacity
            image.deviceEnd = capacity
            let referenced = roundUpToSector(try image.referencedEnd())
            guard referenced + UInt64(VHDFooter.size) <= capacity else {
                throw .malformed("\(path): the VHD's metadata and blocks reach \(referenced), past the device's \(capacity) bytes")
            }
            let windowEnd = min(capacity, referenced + footerSearchWindow)
            let window = try descriptor.read(count: Int(windowEnd - referenced), at: referenced, path: path)
            var found: (offset: UInt64, footer: VHDFooter)?
            var offset = 0
            while found == nil, offset + VHDFooter.size <= window.count {
                if window[offset] == 0x63, let footer = try? VHDFooter(bytes: Array(window[offset..<offset + VHDFooter.size])),
                    footer.uniqueID == first.uniqueID
                {
                    found = (referenced + UInt64(offset), footer)
                }
                offset += VHDFooter.size
            }
            if let found {
                image.footer = found.footer
                image.deviceEnd = found.offset + UInt64(VHDFooter.size)
            } else {
                image.endFooterDamaged = true
                image.deviceEnd = referenced + UInt64(VHDFooter.size)
            }
            return image
        } catch {
            descriptor.closeIgnoringErrors()
            throw error
        }
    }

    /// Writes a new dynamic (or differencing) VHD at the start of the block device `path`,
    /// whatever it held. ENOSPC when the device cannot hold the metadata.
    @discardableResult
    public static func createOnBlockDevice(
        at path: String, size: UInt64, uniqueID: [UInt8], differencing: DifferencingSetup? = nil
    ) throws(StorageError) -> VHDImage {
        let descriptor = try Syscall.open(path, .readWrite)
        let capacity: UInt64
        do throws(StorageError) {
            let status = try descriptor.status(path: path)
            guard (status.st_mode & S_IFMT) == S_IFBLK else { throw .malformed("\(path) is not a block device") }
            capacity = try deviceCapacity(descriptor, path: path)
        } catch {
            descriptor.closeIgnoringErrors()
            throw error
        }
        return try create(
            at: path, size: size, uniqueID: uniqueID, differencing: differencing, claimed: descriptor,
            deviceCapacity: capacity)
    }

    /// The bytes the VHD occupies on its device: up to and including its end footer.
    public var occupiedBytes: UInt64 { deviceEnd ?? ((try? fileSize()) ?? 0) }

    /// The size of the device the VHD is on (the file size for a file).
    public var capacity: UInt64 { deviceEnd == nil ? ((try? fileSize()) ?? 0) : deviceCapacity }

    /// The most a VHD of `virtualSize` this engine writes can occupy once every block is
    /// allocated: its metadata (footer copy, header, the BAT room, three parent locators), every
    /// block with its bitmap and alignment padding, and the end footer. What an inflated LV holds.
    public static func fullyAllocatedSize(virtualSize: UInt64) -> UInt64 {
        let blocks = (virtualSize + blockSize - 1) / blockSize
        return metadataSize(virtualSize: virtualSize) + blocks * (blockSize + dataAlignment) + dataAlignment
            + UInt64(VHDFooter.size)
    }

    /// The most a new (empty) VHD of `virtualSize` occupies: metadata and end footer. What a
    /// deflated new child holds.
    public static func metadataSize(virtualSize: UInt64) -> UInt64 {
        let table = UInt64(VHDFooter.size + VHDDynamicHeader.size) + reservedEntries(for: virtualSize) * 4
        let locators = UInt64(VHDDynamicHeader.locatorCount) * 512
        return roundUpToSector(table) + locators + UInt64(VHDFooter.size)
    }

    /// The first byte after the BAT (as the header sizes it), every locator and every allocated block.
    func referencedEnd() throws(StorageError) -> UInt64 {
        var end = header.tableOffset + UInt64(header.maxTableEntries) * 4
        for locator in header.parentLocators where !locator.isEmpty {
            end = max(end, locator.dataOffset + locator.dataSpaceInBytes)
        }
        for entry in try allocationTable() where entry != Self.unallocated {
            end = max(end, UInt64(entry) * Self.sectorSize + Self.bitmapSize + Self.blockSize)
        }
        return end
    }

    static func deviceCapacity(_ descriptor: FileDescriptor, path: String) throws(StorageError) -> UInt64 {
        let end = lseek(descriptor.rawValue, 0, SEEK_END)
        guard end >= 0 else { throw .system(Errno(rawValue: errno), "lseek", path: path) }
        return UInt64(end)
    }
}
