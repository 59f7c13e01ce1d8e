import CLibXML2

/// The dconf: the driver's key/value parameters, from an XML document.
///
/// Parsed by libxml2 with the network off and no DTD. A DOCTYPE, an entity, an XInclude, a
/// duplicate key, nested elements or more than 64 KiB is EINVAL. Keys are case-sensitive.
///
/// No message ever quotes the document's text: libxml2's own error strings do ("Entity 'x' not
/// defined", "Bytes: 0x.."), and the text may be a CHAP secret. A parse error is described by
/// its line and libxml2's error code only (`XMLParseFailure`), libxml2 reports nothing to stderr
/// while parsing, and the other refusals name at most the key (the element name), never a value.
public struct DeviceConfiguration: Sendable {
    /// The largest dconf document accepted.
    public static let maximumLength = 64 * 1024
    /// Keys whose values never appear in logs or messages.
    public static let secretKeys: Set<String> = ["chappassword", "password", "incoming_chappassword", "key"]

    public private(set) var values: [String: String]

    public init(values: [String: String] = [:]) {
        self.values = values
    }

    public subscript(key: String) -> String? { values[key] }

    /// The value of a key the driver needs; EINVAL naming the key when it is absent or empty.
    public func required(_ key: String) throws(StorageError) -> String {
        guard let value = values[key], !value.isEmpty else {
            throw .invalid("dconf key '\(key)' is required")
        }
        return value
    }

    /// A boolean key (`true`/`false`, `1`/`0`, `yes`/`no`), `defaultValue` when absent.
    public func flag(_ key: String, default defaultValue: Bool = false) throws(StorageError) -> Bool {
        guard let value = values[key] else { return defaultValue }
        switch value.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no", "": return false
        default: throw .invalid("dconf key '\(key)' must be true or false, got '\(ArgumentParsing.printable(value))'")
        }
    }

    /// The keys and values for a log line, with secrets masked.
    public var redactedDescription: String {
        values.keys.sorted().map { key in
            "\(key)=\(Self.secretKeys.contains(key.lowercased()) ? "***" : values[key] ?? "")"
        }.joinedText(separator: " ")
    }

    /// Parses a dconf document.
    public init(xml bytes: [UInt8]) throws(StorageError) {
        guard bytes.count <= Self.maximumLength else {
            throw .invalid("dconf is \(bytes.count) bytes; the limit is \(Self.maximumLength)")
        }
        guard !bytes.isEmpty else { throw .invalid("dconf is empty") }
        let options = Int32(
            XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue
                | XML_PARSE_NOCDATA.rawValue)
        xmlResetLastError()
        // Every libxml2 report (the parser's and the encoders', which would otherwise go to
        // stderr through xmlGenericError) lands in this handler, which drops it: only the last
        // error's code and line are read below.
        xmlSetStructuredErrorFunc(nil) { _, _ in }
        defer { xmlSetStructuredErrorFunc(nil, nil) }
        let parsed: xmlDocPtr? = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { pointer in
                xmlReadMemory(pointer, Int32(buffer.count), "dconf.xml", nil, options)
            }
        }
        let failure = XMLParseFailure.last()
        xmlResetLastError()
        guard let document = parsed else {
            throw .invalid("dconf is not well-formed XML: \(failure?.description ?? "libxml2 gave no reason")")
        }
        defer { xmlFreeDoc(document) }
        if document.pointee.intSubset != nil || document.pointee.extSubset != nil {
            throw .invalid("dconf must not contain a DOCTYPE")
        }
        guard let root = xmlDocGetRootElement(document) else { throw .invalid("dconf has no root element") }
        var values: [String: String] = [:]
        var node = root.pointee.children
        while let current = node {
            defer { node = current.pointee.next }
            switch current.pointee.type {
            case XML_ELEMENT_NODE:
                let key = String(cString: current.pointee.name)
                if let namespace = current.pointee.ns, let href = namespace.pointee.href,
                    String(cString: href).contains("XInclude")
                {
                    throw .invalid("dconf must not use XInclude")
                }
                var child = current.pointee.children
                while let inner = child {
                    switch inner.pointee.type {
                    case XML_TEXT_NODE, XML_COMMENT_NODE: break
                    case XML_ENTITY_REF_NODE, XML_ENTITY_NODE: throw .invalid("dconf must not contain entities")
                    default: throw .invalid("dconf key '\(ArgumentParsing.printable(key))' must hold text only")
                    }
                    child = inner.pointee.next
                }
                guard values[key] == nil else { throw .invalid("dconf key '\(ArgumentParsing.printable(key))' appears twice") }
                let content = xmlNodeGetContent(current)
                defer { free(content) }
                let text = content.map { String(cString: $0) } ?? ""
                values[key] = text.trimmingWhitespace()
            case XML_TEXT_NODE, XML_COMMENT_NODE:
                continue
            case XML_ENTITY_REF_NODE, XML_ENTITY_NODE, XML_ENTITY_DECL:
                throw .invalid("dconf must not contain entities")
            case XML_XINCLUDE_START, XML_XINCLUDE_END:
                throw .invalid("dconf must not use XInclude")
            default:
                throw .invalid("dconf holds an unexpected XML node")
            }
        }
        self.values = values
    }

}

/// Why libxml2 refused a document, without libxml2's message: that text quotes the document
/// (entity names, tag names, raw bytes), which may be a secret. A fixed phrase for the codes a
/// hand-written dconf commonly hits, the bare code otherwise.
struct XMLParseFailure: Equatable, CustomStringConvertible {
    let code: Int32
    let line: Int32

    /// libxml2's last error (code and line only), nil when it recorded none.
    static func last() -> XMLParseFailure? {
        guard let error = xmlGetLastError(), error.pointee.code != 0 else { return nil }
        return XMLParseFailure(code: error.pointee.code, line: error.pointee.line)
    }

    static let phrases: [xmlParserErrors: String] = [
        XML_ERR_DOCUMENT_EMPTY: "the document is empty",
        XML_ERR_DOCUMENT_END: "text after the root element",
        XML_ERR_EXTRA_CONTENT: "text after the root element",
        XML_ERR_INVALID_HEX_CHARREF: "an invalid character reference",
        XML_ERR_INVALID_DEC_CHARREF: "an invalid character reference",
        XML_ERR_INVALID_CHARREF: "an invalid character reference",
        XML_ERR_INVALID_CHAR: "a character XML does not allow",
        XML_ERR_UNDECLARED_ENTITY: "an undefined entity (write '&' as '&amp;' and '<' as '&lt;')",
        XML_WAR_UNDECLARED_ENTITY: "an undefined entity (write '&' as '&amp;' and '<' as '&lt;')",
        XML_ERR_ENTITYREF_SEMICOL_MISSING: "an '&' that starts no entity (write '&' as '&amp;')",
        XML_ERR_NAME_REQUIRED: "a '<' or '&' that starts no name (write them as '&lt;' and '&amp;')",
        XML_ERR_UNKNOWN_ENCODING: "an unknown encoding",
        XML_ERR_UNSUPPORTED_ENCODING: "an unsupported encoding",
        XML_ERR_INVALID_ENCODING: "bytes that are not valid in the document's encoding",
        XML_ERR_ATTRIBUTE_REDEFINED: "an attribute given twice",
        XML_ERR_LT_IN_ATTRIBUTE: "a '<' in an attribute value",
        XML_ERR_GT_REQUIRED: "a tag without its closing '>'",
        XML_ERR_LT_REQUIRED: "no root element",
        XML_ERR_TAG_NAME_MISMATCH: "an end tag that does not match its start tag",
        XML_ERR_TAG_NOT_FINISHED: "an element that is never closed",
        XML_ERR_ENTITY_LOOP: "an entity that refers to itself"
    ]

    var description: String {
        let phrase = Self.phrases[xmlParserErrors(rawValue: UInt32(bitPattern: code))] ?? "libxml2 error \(code)"
        return line > 0 ? "line \(line): \(phrase) (libxml2 error \(code))" : "\(phrase) (libxml2 error \(code))"
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and line breaks.
    public func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
