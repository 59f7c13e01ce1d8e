import Testing

@testable import SMCore

@Suite struct ConfigurationTests {
    /// Keys are the child elements' trimmed texts; comments and whitespace are ignored.
    @Test func parsesKeys() throws {
        let configuration = try DeviceConfiguration(
            xml: Array(
                """
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
            ("<d><k>&undefined;</k></d>", "well-formed")
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

    /// No refusal quotes the document: a secret in any secret key, at any position, through every
    /// way a dconf is refused (libxml2 parse errors, entities, DOCTYPE, duplicates, nesting, size)
    /// never appears in the message, which still names the line and what is wrong.
    @Test func refusalsNeverQuoteASecret() {
        let secret = "S3cr3tXYZ42"
        let values = [
            "&\(secret);", "\(secret)&", "\(secret)&\(secret)", "\(secret)<", "<\(secret)>", "\(secret)</\(secret)>",
            "&#x\(secret);", "&#\(secret);", "\(secret)\u{1}", "<b>\(secret)</b>", "\(secret)<!--", "\(secret)]]>"
        ]
        var documents: [String] = []
        for key in DeviceConfiguration.secretKeys.sorted() {
            for value in values {
                documents += [
                    "<dconf><\(key)>\(value)</\(key)><target>a</target><chapuser>u</chapuser></dconf>",
                    "<dconf><target>a</target><\(key)>\(value)</\(key)><chapuser>u</chapuser></dconf>",
                    "<dconf><target>a</target><chapuser>u</chapuser><\(key)>\(value)</\(key)></dconf>"
                ]
            }
            documents += [
                "<dconf><\(key)>\(secret)</\(key)><\(key)>\(secret)</\(key)></dconf>",
                "<dconf><\(key) a=\"\(secret)\" a=\"\(secret)\">x</\(key)></dconf>",
                "<dconf><\(key) a=\"\(secret)<\">x</\(key)></dconf>",
                "<!DOCTYPE d [<!ENTITY e '\(secret)'>]><dconf><\(key)>&e;</\(key)></dconf>",
                "<!DOCTYPE d [<!ENTITY \(secret) '\(secret)'>]><dconf><\(key)>&\(secret);</\(key)></dconf>",
                "<?xml version=\"1.0\" encoding=\"\(secret)\"?><dconf><\(key)>\(secret)</\(key)></dconf>",
                "<dconf><\(key)>\(secret)</\(key)></dconf>\(secret)",
                "<dconf><\(key)>\(secret)</\(key)><pad>\(String(repeating: "x", count: DeviceConfiguration.maximumLength))</pad></dconf>"
            ]
        }
        var bytes = documents.map { Array($0.utf8) }
        bytes.append(Array("<dconf><chappassword>\(secret)".utf8) + [0xFF, 0xFE] + Array("</chappassword></dconf>".utf8))
        bytes.append(Array("<?xml version=\"1.0\" encoding=\"UTF-16\"?><dconf><chappassword>\(secret)</chappassword></dconf>".utf8))
        for document in bytes {
            do {
                _ = try DeviceConfiguration(xml: document)
                Issue.record("accepted \(String(decoding: document.prefix(120), as: UTF8.self))")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(!error.message.contains(secret), "\(error.message)")
                #expect(!error.message.contains("S3cr3t"), "\(error.message)")
            }
        }
    }

    /// A parse error reads as a fixed phrase with the line and libxml2's code.
    @Test func parseErrorsAreFixedPhrases() {
        do {
            _ = try DeviceConfiguration(xml: Array("<dconf>\n<chappassword>&Pw;</chappassword>\n</dconf>".utf8))
            Issue.record("accepted an undefined entity")
        } catch {
            #expect(
                error.message == "dconf is not well-formed XML: line 2: an undefined entity "
                    + "(write '&' as '&amp;' and '<' as '&lt;') (libxml2 error 26)")
        }
    }

    /// The result document has DESIGN.md's declaration, escapes text, and is indented as libxml2's
    /// formatted save wrote it before the streaming writer (the same bytes for these cases).
    @Test func rendersResults() {
        let text = ResultDocument.render(ResultElement("sr", children: [ResultElement("path", "/a<b&c"), ResultElement("ok", true)]))
        #expect(text == "<?xml version=\"1.0\" ?>\n<sr>\n  <path>/a&lt;b&amp;c</path>\n  <ok>True</ok>\n</sr>\n")
        // Empty text, an element without children, nesting, text that is not ASCII.
        let nested = ResultDocument.render(
            ResultElement(
                "sr",
                children: [
                    ResultElement("label", ""), ResultElement("vdis", children: []),
                    ResultElement("vdi", children: [ResultElement("name_label", "disque \u{e9}t\u{e9} > 2")])
                ]))
        #expect(
            nested == "<?xml version=\"1.0\" ?>\n<sr>\n  <label></label>\n  <vdis/>\n  <vdi>\n"
                + "    <name_label>disque \u{e9}t\u{e9} &gt; 2</name_label>\n  </vdi>\n</sr>\n")
    }
}
