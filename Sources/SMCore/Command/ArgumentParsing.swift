/// Validation of the scalar command-line arguments DESIGN.md defines. Each returns the value or
/// throws EINVAL naming the argument; nothing here touches the system.
public enum ArgumentParsing {
    /// The largest VDI size on VHD-based SRs: 2040 GiB.
    public static let maximumVDISize: UInt64 = 2040 << 30

    public static func uuid(_ text: String, role: String) throws(StorageError) -> CanonicalUUID {
        guard let uuid = CanonicalUUID(text) else {
            throw .invalid("\(role) '\(printable(text))' is not a UUID (expected 8-4-4-4-12 hexadecimal digits)")
        }
        return uuid
    }

    /// Plain decimal bytes: digits only, no sign, exponent or hex, and no overflow.
    public static func size(_ text: String, role: String) throws(StorageError) -> UInt64 {
        guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let value = UInt64(text)
        else {
            throw .invalid("\(role) '\(printable(text))' is not a size in bytes (plain decimal digits)")
        }
        return value
    }

    /// A VDI size: 1 byte to 2040 GiB (drivers round up to their granularity).
    public static func vdiSize(_ text: String, role: String) throws(StorageError) -> UInt64 {
        let value = try size(text, role: role)
        guard value > 0 else { throw .invalid("\(role) must be greater than 0") }
        guard value <= maximumVDISize else {
            throw .invalid("\(role) \(value) exceeds the maximum VDI size of 2040 GiB (\(maximumVDISize) bytes)")
        }
        return value
    }

    /// TRUE/FALSE in any case, or 1/0.
    public static func force(_ text: String) throws(StorageError) -> Bool {
        switch text.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw .invalid("Force '\(printable(text))' must be TRUE or FALSE")
        }
    }

    /// 1 to 128 characters from letters, digits, `-`, `_`, `:`, `.`; it becomes part of a file name.
    public static func userString(_ text: String) throws(StorageError) -> String {
        let allowed = text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                UInt8(ascii: ":"), UInt8(ascii: "."):
                return true
            default:
                return false
            }
        }
        guard (1...128).contains(text.utf8.count), allowed, text != ".", text != ".." else {
            throw .invalid("UserString '\(printable(text))' must be 1 to 128 characters from letters, digits, '-', '_', ':' and '.'")
        }
        return text
    }

    /// A small non-negative decimal (at most six digits, nothing else) inside `range`, or nil.
    /// The one check behind numeric dconf values (ports, LUN numbers, NFS timeouts).
    public static func boundedDecimal(_ text: String, in range: ClosedRange<Int>) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 6, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let value = Int(text), range.contains(value)
        else { return nil }
        return value
    }

    /// An argument as it may appear in a message: control characters replaced, at most 64 characters.
    public static func printable(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : Character($0) })
        return cleaned.count > 64 ? String(cleaned.prefix(64)) + "..." : cleaned
    }
}
