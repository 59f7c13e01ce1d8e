import Testing
@testable import SMCore

@Suite struct ConfigurationTests {
    /// Keys are the child elements' trimmed texts; comments and whitespace are ignored.
    @Test func parsesKeys() throws {
        let configuration = try DeviceConfiguration(xml: Array("""
            <?xml version="1.0"?>
            <dconf>
              <!-- a comment -->
              <server> nfs.example.com </server>
              <serverpath>/export/sm</serverpath>
              <targetIQN>iqn.2007-01.com.example:a</targetIQN>
            </dconf>
            """.utf8))
        #expect(configuration["server"] == "nfs.example.com")
        #expect(configuration["serverpath"] == "/export/sm")
        #expect(configuration["targetIQN"] == "iqn.2007-01.com.example:a")
        #expect(configuration["targetiqn"] == nil)
        #expect(throws: StorageError.invalid("dconf key 'device' is required")) { try configuration.required("device") }
    }

    /// Secrets are masked in the log description.
    @Test func redactsSecrets() throws {
        let configuration = DeviceConfiguration(values: ["chappassword": "s3cret", "chapuser": "me"])
        #expect(!configuration.redactedDescription.contains("s3cret"))
        #expect(configuration.redactedDescription.contains("chapuser=me"))
    }

    /// Each rejected document is EINVAL with a reason naming the problem.
    @Test func rejectsHostileDocuments() {
        let cases: [(String, String)] = [
            ("<!DOCTYPE d [<!ENTITY a 'b'>]><d><k>&a;</k></d>", "DOCTYPE"),
            ("<d><k>1</k><k>2</k></d>", "appears twice"),
            ("<d><k><inner/></k></d>", "text only"),
            ("<d><k>1</d>", "well-formed"),
            ("<d><k>&undefined;</k></d>", "well-formed"),
        ]
        for (document, expected) in cases {
            do {
                _ = try DeviceConfiguration(xml: Array(document.utf8))
                Issue.record("accepted \(document)")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains(expected), "\(error.message)")
            }
        }
    }

    /// The result document has DESIGN.md's declaration and escapes text.
    @Test func rendersResults() {
        let text = ResultDocument.render(ResultElement("sr", children: [ResultElement("path", "/a<b&c"), ResultElement("ok", true)]))
        #expect(text == "<?xml version=\"1.0\" ?>\n<sr>\n  <path>/a&lt;b&amp;c</path>\n  <ok>True</ok>\n</sr>\n")
    }
}
