/// Big-endian field access on on-disk structures (VHD is big-endian throughout).
extension Array where Element == UInt8 {
    func bigEndian16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    func bigEndian32(at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(self[offset + $1]) }
    }

    func bigEndian64(at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 << 8 | UInt64(self[offset + $1]) }
    }

    mutating func setBigEndian16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(value >> 8)
        self[offset + 1] = UInt8(value & 0xFF)
    }

    mutating func setBigEndian32(_ value: UInt32, at offset: Int) {
        for index in 0..<4 { self[offset + index] = UInt8((value >> (24 - 8 * UInt32(index))) & 0xFF) }
    }

    mutating func setBigEndian64(_ value: UInt64, at offset: Int) {
        for index in 0..<8 { self[offset + index] = UInt8((value >> (56 - 8 * UInt64(index))) & 0xFF) }
    }

    /// The VHD checksum: the ones' complement of the byte sum, with the checksum field counted as zero.
    /// (Summed through a buffer pointer: an `enumerated()` loop costs a metadata lookup per byte
    /// in debug builds, which made every header parse of a 10,000-VHD SR count. Every byte is
    /// summed and the field's own bytes taken off again: a loop without a test per byte.)
    func vhdChecksum(excludingFieldAt fieldOffset: Int) -> UInt32 {
        withUnsafeBufferPointer { bytes in
            var sum: UInt32 = 0
            for byte in bytes { sum &+= UInt32(byte) }
            for index in fieldOffset..<Swift.min(fieldOffset + 4, bytes.count) { sum &-= UInt32(bytes[index]) }
            return ~sum
        }
    }
}

/// VHD timestamps count seconds from 2000-01-01 00:00:00 UTC.
public enum VHDTime {
    public static let epochOffset: Int64 = 946_684_800

    public static func fromUnix(_ seconds: Int64) -> UInt32 {
        UInt32(clamping: max(0, seconds - epochOffset))
    }

    public static func now() -> UInt32 { fromUnix(Int64(Syscall.now())) }
}
