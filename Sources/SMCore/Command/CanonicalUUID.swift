import CLibUUID

/// An SR or VDI identifier in the canonical 8-4-4-4-12 hexadecimal form, printed lower-case.
///
/// Parsing happens before any path is built from a UUID, so `../etc` can never reach the disk.
/// The value is the UUID's 16 bytes held inline (big-endian, as in RFC 4122 and in VHD footers):
/// hashing, comparing and sorting touch no heap string (a 50,000-VDI sr_scan spent a tenth of its
/// time hashing and comparing 36-character strings), and the text is made when asked for.
public struct CanonicalUUID: Hashable, Comparable, CustomStringConvertible, Sendable {
    /// Bytes 0-7 and 8-15, big-endian: ordering them as numbers orders the canonical text.
    let high: UInt64
    let low: UInt64

    /// Accepts exactly 36 characters: hex digits (either case) with dashes at 8, 13, 18 and 23
    /// (libuuid's `uuid_parse`; the length is checked first, so a NUL inside the text is refused).
    public init?(_ text: String) {
        guard text.utf8.count == 36 else { return nil }
        var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let parsed = text.withCString { characters in
            withUnsafeMutableBytes(of: &raw) { uuid_parse(characters, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        }
        guard parsed == 0 else { return nil }
        self = withUnsafeBytes(of: raw) { CanonicalUUID(raw: $0) }
    }

    /// Accepts only the canonical text itself (lower-case): a name this software made, such as a
    /// VDI's file or volume, and not another name for the same UUID.
    public init?(canonical text: String) {
        guard !text.utf8.contains(where: { (UInt8(ascii: "A")...UInt8(ascii: "F")).contains($0) }) else { return nil }
        self.init(text)
    }

    /// A new random (version 4) UUID.
    public static func random() -> CanonicalUUID {
        var generator = SystemRandomNumberGenerator()
        var high = generator.next() as UInt64
        var low = generator.next() as UInt64
        high = (high & ~0xF000) | 0x4000  // byte 6: version 4
        low = (low & ~(0xC0 << 56)) | (0x80 << 56)  // byte 8: the RFC 4122 variant
        return CanonicalUUID(high: high, low: low)
    }

    /// The UUID for 16 raw bytes (as stored in a VHD footer).
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "a UUID is 16 bytes")
        self = bytes.withUnsafeBytes { CanonicalUUID(raw: $0) }
    }

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From the 16 bytes at `raw`, as `raw` below lays them out.
    private init(raw: UnsafeRawBufferPointer) {
        self.init(
            high: UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)),
            low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    /// The 16 bytes in memory, big-endian (what libuuid reads and `bytes` returns).
    private var raw: (UInt64, UInt64) { (high.bigEndian, low.bigEndian) }

    /// The 16 raw bytes, big-endian as in RFC 4122 (and in VHD footers).
    public var bytes: [UInt8] {
        withUnsafeBytes(of: raw) { Array($0) }
    }

    /// The canonical text, lower-case (libuuid's `uuid_unparse_lower`).
    public var string: String {
        String(unsafeUninitializedCapacity: 37) { text in
            withUnsafeBytes(of: raw) { uuid in
                text.withMemoryRebound(to: CChar.self) {
                    uuid_unparse_lower(uuid.baseAddress!.assumingMemoryBound(to: UInt8.self), $0.baseAddress!)
                }
            }
            return 36
        }
    }

    public var description: String { string }

    public static func < (lhs: CanonicalUUID, rhs: CanonicalUUID) -> Bool { (lhs.high, lhs.low) < (rhs.high, rhs.low) }
}
