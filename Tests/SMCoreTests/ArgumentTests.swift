import Testing

@testable import SMCore

@Suite struct ArgumentTests {
    /// UUIDs are accepted in either case and stored lower-case; anything else is refused.
    @Test func uuidForms() {
        #expect(CanonicalUUID("87B8646B-B800-9500-CB7B-AF3B74E02F5C")?.string == "87b8646b-b800-9500-cb7b-af3b74e02f5c")
        for bad in [
            "", "../etc", "87b8646b-b800-9500-cb7b-af3b74e02f5", "87b8646b-b800-9500-cb7b af3b74e02f5c",
            "87b8646b0b800-9500-cb7b-af3b74e02f5c", "g7b8646b-b800-9500-cb7b-af3b74e02f5c"
        ] {
            #expect(CanonicalUUID(bad) == nil, "\(bad)")
        }
    }
}
