/// An SR or VDI identifier in the canonical 8-4-4-4-12 hexadecimal form, stored lower-case.
///
/// Parsing happens before any path is built from a UUID, so `../etc` can never reach the disk.
public struct CanonicalUUID: Hashable, Comparable, CustomStringConvertible, Sendable {
    public let string: String

    /// Accepts exactly 36 characters: hex digits (either case) with dashes at 8, 13, 18 and 23.
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return nil }
        var lowered = [UInt8]()
        lowered.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                lowered.append(byte)
                continue
            }
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"):
                lowered.append(byte)
            case UInt8(ascii: "A")...UInt8(ascii: "F"):
                lowered.append(byte + 32)
            default:
                return nil
            }
        }
        string = String(decoding: lowered, as: UTF8.self)
    }

    /// A new random (version 4) UUID.
    public static func random() -> CanonicalUUID {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return CanonicalUUID(bytes: bytes)
    }

    /// The UUID for 16 raw bytes (as stored in a VHD footer).
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "a UUID is 16 bytes")
        let hex = bytes.map { byte -> String in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
        let characters = Array(hex)
        let groups = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }
        string = groups.joined(separator: "-")
    }

    /// The 16 raw bytes, big-endian as in RFC 4122 (and in VHD footers).
    public var bytes: [UInt8] {
        let hex = Array(string.utf8.filter { $0 != UInt8(ascii: "-") })
        return stride(from: 0, to: 32, by: 2).map { index in
            UInt8(String(decoding: hex[index..<index + 2], as: UTF8.self), radix: 16) ?? 0
        }
    }

    public var description: String { string }

    public static func < (lhs: CanonicalUUID, rhs: CanonicalUUID) -> Bool { lhs.string < rhs.string }
}
