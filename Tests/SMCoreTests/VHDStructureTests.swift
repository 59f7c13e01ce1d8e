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

    /// Parent names and Windows locators are UTF-16: decoded as the standard library's
    /// `String(decoding:as:)` decodes them, ill-formed units (lone surrogates) included.
    @Test func utf16NamesDecodeAsTheStandardLibraryDoes() {
        var generator = SystemRandomNumberGenerator()
        let samples: [[UInt16]] =
            [[], Array("disk-é-✓-😀.vhd".utf16), [0xD800], [0xDC00, 0x41], [0x41, 0xD83D], [0xD83D, 0xDE00, 0xDFFF]]
            + (0..<300).map { _ in
                (0..<Int.random(in: 1...24, using: &generator)).map { _ in
                    // Mostly ASCII, some surrogates of either half, some of the rest of the plane.
                    switch UInt8.random(in: 0...3, using: &generator) {
                    case 0: UInt16.random(in: 0xD800...0xDFFF, using: &generator)
                    case 1: UInt16.random(in: 0x80...0xFFFF, using: &generator)
                    default: UInt16.random(in: 0x20...0x7E, using: &generator)
                    }
                }
            }
        for units in samples {
            #expect(String(utf16Units: units) == String(decoding: units, as: UTF16.self), "\(units)")
        }
    }
}
