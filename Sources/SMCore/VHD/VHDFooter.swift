/// The 512-byte VHD footer, kept at the end of the file and copied at offset 0.
public struct VHDFooter: Equatable, Sendable {
    public static let size = 512
    public static let cookie: [UInt8] = Array("conectix".utf8)
    /// Feature bit 0x2 is reserved and must always be set.
    public static let requiredFeatures: UInt32 = 0x0000_0002
    public static let formatVersion: UInt32 = 0x0001_0000
    /// The data offset of a fixed disk (no dynamic header).
    public static let noDataOffset: UInt64 = 0xFFFF_FFFF_FFFF_FFFF
    /// Creator `tap\0`, version 1.1: we write what blktap reads. qemu trusts the footer's size
    /// (not the CHS geometry) only for a few creators, `tap` among them; versions from 1.2 on
    /// would promise a batmap, which we do not write, so 1.1 (see Docs/vhd-format.md).
    public static let creatorApplication: [UInt8] = [0x74, 0x61, 0x70, 0x00]
    public static let creatorVersion: UInt32 = 0x0001_0001
    /// Creator host OS `Lnux`: informational only; blktap, qemu and libvhdi ignore it.
    public static let creatorHostOS: UInt32 = 0x4C6E_7578

    public enum DiskType: UInt32, Sendable {
        case fixed = 2
        case dynamic = 3
        case differencing = 4
    }

    static let checksumOffset = 64
    static let hiddenOffset = 85

    public var features: UInt32 = requiredFeatures
    public var dataOffset: UInt64 = 512
    public var timestamp: UInt32
    public var creatorApplication: [UInt8] = VHDFooter.creatorApplication
    public var creatorVersion: UInt32 = VHDFooter.creatorVersion
    public var creatorHostOS: UInt32 = VHDFooter.creatorHostOS
    public var originalSize: UInt64
    public var currentSize: UInt64
    public var geometry: VHDGeometry
    public var diskType: DiskType
    public var uniqueID: [UInt8]
    public var savedState: UInt8 = 0
    /// blktap's hidden flag (byte 85): set on parents users must not see.
    public var hidden: Bool = false

    public init(size: UInt64, diskType: DiskType, uniqueID: [UInt8], timestamp: UInt32 = VHDTime.now()) {
        self.timestamp = timestamp
        self.originalSize = size
        self.currentSize = size
        self.geometry = VHDGeometry(size: size)
        self.diskType = diskType
        self.uniqueID = uniqueID
    }

    /// Parses and validates a footer: cookie, checksum, version, disk type, unique id.
    public init(bytes: [UInt8]) throws(StorageError) {
        guard bytes.count == Self.size else { throw .malformed("footer is \(bytes.count) bytes, expected 512") }
        guard Array(bytes[0..<8]) == Self.cookie else { throw .malformed("footer cookie is not 'conectix'") }
        let stored = bytes.bigEndian32(at: Self.checksumOffset)
        guard stored == bytes.vhdChecksum(excludingFieldAt: Self.checksumOffset) else {
            throw .malformed("footer checksum mismatch")
        }
        features = bytes.bigEndian32(at: 8)
        guard bytes.bigEndian32(at: 12) == Self.formatVersion else { throw .malformed("footer format version is not 1.0") }
        dataOffset = bytes.bigEndian64(at: 16)
        timestamp = bytes.bigEndian32(at: 24)
        creatorApplication = Array(bytes[28..<32])
        creatorVersion = bytes.bigEndian32(at: 32)
        creatorHostOS = bytes.bigEndian32(at: 36)
        originalSize = bytes.bigEndian64(at: 40)
        currentSize = bytes.bigEndian64(at: 48)
        geometry = VHDGeometry(cylinders: bytes.bigEndian16(at: 56), heads: bytes[58], sectorsPerTrack: bytes[59])
        guard let type = DiskType(rawValue: bytes.bigEndian32(at: 60)) else {
            throw .malformed("footer disk type \(bytes.bigEndian32(at: 60)) is not fixed, dynamic or differencing")
        }
        diskType = type
        uniqueID = Array(bytes[68..<84])
        savedState = bytes[84]
        hidden = bytes[Self.hiddenOffset] != 0
    }

    /// The 512 bytes with a fresh checksum.
    public var bytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.replaceSubrange(0..<8, with: Self.cookie)
        bytes.setBigEndian32(features, at: 8)
        bytes.setBigEndian32(Self.formatVersion, at: 12)
        bytes.setBigEndian64(dataOffset, at: 16)
        bytes.setBigEndian32(timestamp, at: 24)
        bytes.replaceSubrange(28..<32, with: creatorApplication.prefix(4))
        bytes.setBigEndian32(creatorVersion, at: 32)
        bytes.setBigEndian32(creatorHostOS, at: 36)
        bytes.setBigEndian64(originalSize, at: 40)
        bytes.setBigEndian64(currentSize, at: 48)
        bytes.setBigEndian16(geometry.cylinders, at: 56)
        bytes[58] = geometry.heads
        bytes[59] = geometry.sectorsPerTrack
        bytes.setBigEndian32(diskType.rawValue, at: 60)
        bytes.replaceSubrange(68..<84, with: uniqueID.prefix(16))
        bytes[84] = savedState
        bytes[Self.hiddenOffset] = hidden ? 1 : 0
        bytes.setBigEndian32(bytes.vhdChecksum(excludingFieldAt: Self.checksumOffset), at: Self.checksumOffset)
        return bytes
    }

    /// Sets the size and recomputes the geometry from it.
    /// Both sizes change: libvhdi reports the original size as the media size.
    public mutating func resize(to size: UInt64) {
        originalSize = size
        currentSize = size
        geometry = VHDGeometry(size: size)
    }
}
