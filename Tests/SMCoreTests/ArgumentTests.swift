import Testing

@testable import SMCore

@Suite struct ArgumentTests {
    /// UUIDs are accepted in either case and stored lower-case; anything else is refused.
    @Test func uuidForms() {
        #expect(CanonicalUUID("87B8646B-B800-9500-CB7B-AF3B74E02F5C")?.string == "87b8646b-b800-9500-cb7b-af3b74e02f5c")
        for bad in [
            "", "../etc", "87b8646b-b800-9500-cb7b-af3b74e02f5", "87b8646b-b800-9500-cb7b af3b74e02f5c",
            "87b8646b0b800-9500-cb7b-af3b74e02f5c", "g7b8646b-b800-9500-cb7b-af3b74e02f5c",
            "87b8646b-b800-9500-cb7b-af3b74e02f5c\0", "87b8646b-b800-9500-cb7b-af3b74e02\0f5c",
            "{87b8646b-b800-9500-cb7b-af3b74e02f}", "87b8646bb8009500cb7baf3b74e02f5c"
        ] {
            #expect(CanonicalUUID(bad) == nil, "\(bad)")
        }
    }

    /// A UUID is held as its 16 bytes: text, bytes and order agree with the canonical text
    /// (sr_scan lists VDIs in this order; VHD footers hold the bytes).
    @Test func uuidRepresentation() throws {
        var generator = SystemRandomNumberGenerator()
        let texts =
            (0..<200).map { _ in
                (0..<16).map { index in
                    let byte = UInt8.random(in: 0...255, using: &generator)
                    return ([4, 6, 8, 10].contains(index) ? "-" : "") + String(byte >> 4, radix: 16) + String(byte & 15, radix: 16)
                }.joined()
            } + ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "7fffffff-ffff-ffff-8000-000000000000"]
        let uuids = try texts.map { try #require(CanonicalUUID($0)) }
        #expect(uuids.map(\.string) == texts)
        #expect(uuids.map { CanonicalUUID(bytes: $0.bytes) } == uuids)
        #expect(uuids.sorted().map(\.string) == texts.sorted())
        #expect(Set(uuids).count == Set(texts).count)
        let random = CanonicalUUID.random()
        #expect(random.bytes[6] >> 4 == 4 && random.bytes[8] >> 6 == 2, "version 4, RFC 4122 variant: \(random)")
        #expect(CanonicalUUID(canonical: "87b8646b-b800-9500-cb7b-af3b74e02f5c")?.string == "87b8646b-b800-9500-cb7b-af3b74e02f5c")
        #expect(CanonicalUUID(canonical: "87b8646b-b800-9500-cb7b-af3b74e02f5C") == nil, "a name of another case is not the canonical one")
        #expect(CanonicalUUID(bytes: Array(0..<16)).string == "00010203-0405-0607-0809-0a0b0c0d0e0f")
    }
}
