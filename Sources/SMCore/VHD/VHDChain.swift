/// A differencing disk and its ancestors, opened together so that guest reads go through the
/// whole chain: sectors a disk does not hold come from its parent, and a parent smaller than
/// its child (the child was resized) reads as zeros past its end.
///
/// Parents are found as blktap finds them: the locators in header order (`MacX`, `W2ku`,
/// `W2ru`), each relative to the child's directory, the first that names an existing file; the
/// header's parent name in the same directory is the last resort (what libvhdi does).
public final class VHDChain {
    /// The longest chain the SR manager builds (leaf included); snapshot and clone refuse to pass it.
    public static let maximumLength = 30
    /// The longest chain this reader follows at all (guards against loops in damaged files).
    static let readableLength = 256

    /// Leaf first, base last.
    public let images: [VHDImage]

    public var leaf: VHDImage { images[0] }
    public var length: Int { images.count }
    public var size: UInt64 { leaf.size }

    private init(images: [VHDImage]) {
        self.images = images
    }

    /// Opens `path` (writable if asked: only the leaf is ever written) and every ancestor read-only.
    /// With `directory` (an SR's root), every parent the locators lead to must be a file directly
    /// in that directory: one anywhere else (`../x.vhd`, an absolute path) is refused, not opened.
    /// Every file is opened once and only if it is a regular file (`VHDImage.open`); at most
    /// `readableLength` of them. With `blockDevices`, every VHD is on a block device
    /// (`VHDImage.openBlockDevice`: an LVM SR's logical volumes) and only block devices are opened.
    public static func open(
        _ path: String, writable: Bool = false, confinedTo directory: String? = nil, blockDevices: Bool = false
    ) throws(StorageError) -> VHDChain {
        func openImage(_ path: String, writable: Bool) throws(StorageError) -> VHDImage {
            blockDevices ? try VHDImage.openBlockDevice(path, writable: writable) : try VHDImage.open(path, writable: writable)
        }
        var images = [try openImage(path, writable: writable)]
        var seen: Set<String> = [path]
        while let child = images.last, child.isDifferencing {
            guard images.count < readableLength else {
                throw .malformed("\(path): chain longer than \(readableLength) links (a loop?)")
            }
            let parentPath = try resolveParent(of: child)
            if let directory, Syscall.parentDirectory(of: parentPath) != directory {
                throw .malformed("\(child.path): parent \(parentPath) lies outside \(directory)")
            }
            guard !seen.contains(parentPath) else { throw .malformed("\(path): chain loops back to \(parentPath)") }
            seen.insert(parentPath)
            let parent = try openImage(parentPath, writable: false)
            // A parent carrying the child's own unique id is a merge caught between its identity
            // write and its rename (VHDRepository+GC.swift, step 3): it holds every sector the
            // child holds and more, so the chain reads the same through it.
            guard parent.footer.uniqueID == child.header.parentUniqueID || parent.footer.uniqueID == child.footer.uniqueID else {
                throw .malformed(
                    "\(child.path): parent \(parentPath) has unique id \(CanonicalUUID(bytes: parent.footer.uniqueID)), "
                        + "the header expects \(CanonicalUUID(bytes: child.header.parentUniqueID))")
            }
            let parentSize = parent.size
            child.parentReader = { [parent] (offset: UInt64, buffer: UnsafeMutableRawBufferPointer) throws(StorageError) in
                let inside = offset >= parentSize ? 0 : Int(min(UInt64(buffer.count), parentSize - offset))
                if inside > 0 { try parent.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<inside])) }
                if inside < buffer.count {
                    UnsafeMutableRawBufferPointer(rebasing: buffer[inside...]).initializeMemory(as: UInt8.self, repeating: 0)
                }
            }
            images.append(parent)
        }
        return VHDChain(images: images)
    }

    public func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] {
        try leaf.read(at: offset, count: count)
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) {
        try leaf.read(at: offset, into: buffer)
    }

    public func write(at offset: UInt64, bytes: [UInt8]) throws(StorageError) {
        try leaf.write(at: offset, bytes: bytes)
    }

    // MARK: Parent locators

    /// The path a differencing disk's parent is at: the first locator naming an existing file.
    public static func resolveParent(of image: VHDImage) throws(StorageError) -> String {
        let directory = Syscall.parentDirectory(of: image.path)
        var tried: [String] = []
        for locator in image.header.parentLocators where !locator.isEmpty {
            guard let target = try? locatorTarget(locator, in: image) else { continue }
            let path = target.hasPrefix("/") ? target : "\(directory)/\(target)"
            if Syscall.exists(path) { return path }
            tried.append(path)
        }
        let name = image.header.parentName
        if !name.isEmpty, !name.contains("/") {
            let path = "\(directory)/\(name)"
            if Syscall.exists(path) { return path }
            tried.append(path)
        }
        throw .malformed("\(image.path): parent not found (tried \(tried.isEmpty ? "no locator" : tried.joinedText(separator: ", ")))")
    }

    /// The relative or absolute path one locator names, `./` and `.\` prefixes removed.
    static func locatorTarget(_ locator: VHDParentLocator, in image: VHDImage) throws(StorageError) -> String? {
        guard locator.dataLength > 0, locator.dataLength <= 4096 else { return nil }
        let bytes = try image.descriptor.read(count: Int(locator.dataLength), at: locator.dataOffset, path: image.path)
        guard bytes.count == Int(locator.dataLength) else { return nil }
        return decodeLocator(platformCode: locator.platformCode, bytes)
    }

    /// Decodes locator data: `MacX` is a UTF-8 file URL, `W2ku`/`W2ru` UTF-16LE Windows paths.
    public static func decodeLocator(platformCode: UInt32, _ bytes: [UInt8]) -> String? {
        var text: String
        switch platformCode {
        case VHDParentLocator.macX:
            text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            guard text.hasPrefix("file://") else { return nil }
            text.removeFirst("file://".count)
        case VHDParentLocator.w2ku, VHDParentLocator.w2ru:
            var units: [UInt16] = []
            for index in stride(from: 0, to: bytes.count - 1, by: 2) {
                let unit = UInt16(bytes[index]) | UInt16(bytes[index + 1]) << 8
                if unit == 0 { break }
                units.append(unit)
            }
            text = String(utf16Units: units).replacingBackslashes()
        default:
            return nil
        }
        while text.hasPrefix("./") { text.removeFirst(2) }
        return text.isEmpty ? nil : text
    }
}

extension String {
    func replacingBackslashes() -> String {
        String(map { $0 == "\\" ? "/" : $0 })
    }
}
