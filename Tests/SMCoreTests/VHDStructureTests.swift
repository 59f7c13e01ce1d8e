import Testing

@testable import SMCore

@Suite struct VHDStructureTests {
    /// Footers round-trip through bytes with a valid checksum; a flipped bit is detected.
    @Test func footerRoundTrip() throws {
        var footer = VHDFooter(size: 10 << 30, diskType: .dynamic, uniqueID: CanonicalUUID.random().bytes, timestamp: 12345)
        footer.hidden = true
        let bytes = footer.bytes
        #expect(try VHDFooter(bytes: bytes) == footer)
        #expect(bytes[85] == 1)
        var damaged = bytes
        damaged[100] ^= 0x01
        #expect(throws: StorageError.malformed("footer checksum mismatch")) { try VHDFooter(bytes: damaged) }
    }

    /// Geometry follows the specification's algorithm and never exceeds the size.
    @Test func geometry() {
        #expect(VHDGeometry(size: 2 << 20) == VHDGeometry(cylinders: 60, heads: 4, sectorsPerTrack: 17))
        #expect(VHDGeometry(size: 1 << 30).sectorCount <= (1 << 30) / 512)
        #expect(VHDGeometry(size: 2040 << 30) == VHDGeometry(cylinders: 65535, heads: 16, sectorsPerTrack: 255))
        for size in stride(from: UInt64(2 << 20), through: 200 << 30, by: 7 << 28) {
            #expect(VHDGeometry(size: size).sectorCount <= size / 512)
        }
    }

    /// The dynamic header round-trips, including the UTF-16 parent name.
    @Test func headerRoundTrip() throws {
        var header = VHDDynamicHeader(tableOffset: 1536, maxTableEntries: 512)
        header.setParentName("87b8646b-b800-9500-cb7b-af3b74e02f5c.vhd")
        let parsed = try VHDDynamicHeader(bytes: header.bytes)
        #expect(parsed == header)
        #expect(parsed.parentName == "87b8646b-b800-9500-cb7b-af3b74e02f5c.vhd")
    }
}
