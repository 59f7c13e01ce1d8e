/// One parent locator entry of a differencing disk's header.
public struct VHDParentLocator: Equatable, Sendable {
    /// `MacX` (UTF-8 file URL), `W2ku` and `W2ru` (UTF-16LE relative paths), as blktap writes them.
    public static let macX: UInt32 = 0x4D61_6358
    public static let w2ku: UInt32 = 0x5732_6B75
    public static let w2ru: UInt32 = 0x5732_7275

    public var platformCode: UInt32
    /// Bytes reserved for the locator data (blktap stores bytes, the spec says sectors).
    public var dataSpace: UInt32
    public var dataLength: UInt32
    public var dataOffset: UInt64

    public init(platformCode: UInt32, dataSpace: UInt32, dataLength: UInt32, dataOffset: UInt64) {
        self.platformCode = platformCode
        self.dataSpace = dataSpace
        self.dataLength = dataLength
        self.dataOffset = dataOffset
    }

    public static let empty = VHDParentLocator(platformCode: 0, dataSpace: 0, dataLength: 0, dataOffset: 0)

    public var isEmpty: Bool { platformCode == 0 && dataSpace == 0 && dataLength == 0 && dataOffset == 0 }

    /// The reserved space in bytes: values under 512 are sectors (spec), otherwise bytes (blktap).
    public var dataSpaceInBytes: UInt64 { dataSpace < 512 ? UInt64(dataSpace) * 512 : UInt64(dataSpace) }
}

/// The 1024-byte dynamic disk header at the footer's data offset.
public struct VHDDynamicHeader: Equatable, Sendable {
    public static let size = 1024
    public static let cookie: [UInt8] = Array("cxsparse".utf8)
    public static let version: UInt32 = 0x0001_0000
    /// Every block is 2 MiB: blktap's arithmetic assumes it.
    public static let blockSize: UInt32 = 2 << 20
    public static let locatorCount = 8
    static let checksumOffset = 36

    public var tableOffset: UInt64
    public var maxTableEntries: UInt32
    public var blockSize: UInt32 = VHDDynamicHeader.blockSize
    public var parentUniqueID: [UInt8] = [UInt8](repeating: 0, count: 16)
    public var parentTimestamp: UInt32 = 0
    /// UTF-16 big-endian, 512 bytes.
    public var parentUnicodeName: [UInt8] = [UInt8](repeating: 0, count: 512)
    public var parentLocators: [VHDParentLocator] = Array(repeating: .empty, count: VHDDynamicHeader.locatorCount)

    public init(tableOffset: UInt64, maxTableEntries: UInt32) {
        self.tableOffset = tableOffset
        self.maxTableEntries = maxTableEntries
    }

    public init(bytes: [UInt8]) throws(StorageError) {
        guard bytes.count == Self.size else { throw .malformed("dynamic header is \(bytes.count) bytes, expected 1024") }
        guard Array(bytes[0..<8]) == Self.cookie else { throw .malformed("dynamic header cookie is not 'cxsparse'") }
        guard bytes.bigEndian32(at: Self.checksumOffset) == bytes.vhdChecksum(excludingFieldAt: Self.checksumOffset) else {
            throw .malformed("dynamic header checksum mismatch")
        }
        guard bytes.bigEndian64(at: 8) == VHDFooter.noDataOffset else { throw .malformed("dynamic header data offset is not all ones") }
        guard bytes.bigEndian32(at: 24) == Self.version else { throw .malformed("dynamic header version is not 1.0") }
        tableOffset = bytes.bigEndian64(at: 16)
        maxTableEntries = bytes.bigEndian32(at: 28)
        blockSize = bytes.bigEndian32(at: 32)
        guard blockSize == Self.blockSize else {
            throw .malformed("block size \(blockSize) is not 2 MiB")
        }
        guard tableOffset % 512 == 0 else { throw .malformed("BAT offset \(tableOffset) is not sector aligned") }
        parentUniqueID = Array(bytes[40..<56])
        parentTimestamp = bytes.bigEndian32(at: 56)
        parentUnicodeName = Array(bytes[64..<576])
        parentLocators = (0..<Self.locatorCount).map { index in
            let base = 576 + 24 * index
            return VHDParentLocator(
                platformCode: bytes.bigEndian32(at: base), dataSpace: bytes.bigEndian32(at: base + 4),
                dataLength: bytes.bigEndian32(at: base + 8), dataOffset: bytes.bigEndian64(at: base + 16))
        }
    }

    public var bytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.replaceSubrange(0..<8, with: Self.cookie)
        bytes.setBigEndian64(VHDFooter.noDataOffset, at: 8)
        bytes.setBigEndian64(tableOffset, at: 16)
        bytes.setBigEndian32(Self.version, at: 24)
        bytes.setBigEndian32(maxTableEntries, at: 28)
        bytes.setBigEndian32(blockSize, at: 32)
        bytes.replaceSubrange(40..<56, with: parentUniqueID.prefix(16))
        bytes.setBigEndian32(parentTimestamp, at: 56)
        bytes.replaceSubrange(64..<576, with: parentUnicodeName.prefix(512))
        for (index, locator) in parentLocators.prefix(Self.locatorCount).enumerated() {
            let base = 576 + 24 * index
            bytes.setBigEndian32(locator.platformCode, at: base)
            bytes.setBigEndian32(locator.dataSpace, at: base + 4)
            bytes.setBigEndian32(locator.dataLength, at: base + 8)
            bytes.setBigEndian64(locator.dataOffset, at: base + 16)
        }
        bytes.setBigEndian32(bytes.vhdChecksum(excludingFieldAt: Self.checksumOffset), at: Self.checksumOffset)
        return bytes
    }

    /// The parent's file name, decoded from UTF-16 big-endian (empty for a non-differencing disk).
    public var parentName: String {
        var units: [UInt16] = []
        for index in stride(from: 0, to: parentUnicodeName.count, by: 2) {
            let unit = UInt16(parentUnicodeName[index]) << 8 | UInt16(parentUnicodeName[index + 1])
            if unit == 0 { break }
            units.append(unit)
        }
        return String(utf16Units: units)
    }

    /// Stores `name` as UTF-16 big-endian (truncated to 256 code units).
    public mutating func setParentName(_ name: String) {
        var bytes = [UInt8](repeating: 0, count: 512)
        for (index, unit) in name.utf16.prefix(256).enumerated() {
            bytes[2 * index] = UInt8(unit >> 8)
            bytes[2 * index + 1] = UInt8(unit & 0xFF)
        }
        parentUnicodeName = bytes
    }
}

extension String {
    /// The text of UTF-16 code units (a VHD's parent name, a Windows locator), decoded by the
    /// standard library's `UTF16` decoder a scalar at a time, ill-formed units becoming U+FFFD as
    /// `String(decoding:as:)` makes them: that generic entry point is not specialized for us, and
    /// its first call in a process scans every conformance record of the executable
    /// (Docs/performance.md), in every verb that reads a differencing disk.
    init(utf16Units units: [UInt16]) {
        var decoder = UTF16()
        var input = units.makeIterator()
        var scalars = String.UnicodeScalarView()
        while true {
            switch decoder.decode(&input) {
            case .scalarValue(let scalar): scalars.append(scalar)
            case .error: scalars.append("\u{FFFD}")
            case .emptyInput:
                self.init(scalars)
                return
            }
        }
    }
}
