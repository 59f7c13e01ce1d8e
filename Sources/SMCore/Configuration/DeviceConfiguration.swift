import CLibXML2

/// The dconf: the driver's key/value parameters, from an XML document.
///
/// Parsed by libxml2 with the network off and no DTD. A DOCTYPE, an entity, an XInclude, a
/// duplicate key, nested elements or more than 64 KiB is EINVAL. Keys are case-sensitive.
public struct DeviceConfiguration: Sendable {
    /// The largest dconf document accepted.
    public static let maximumLength = 64 * 1024
    /// Keys whose values never appear in logs or messages.
    public static let secretKeys: Set<String> = ["chappassword", "password", "incoming_chappassword"]

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
        }.joined(separator: " ")
    }

    /// Parses a dconf document.
    public init(xml bytes: [UInt8]) throws(StorageError) {
        guard bytes.count <= Self.maximumLength else {
            throw .invalid("dconf is \(bytes.count) bytes; the limit is \(Self.maximumLength)")
        }
        guard !bytes.isEmpty else { throw .invalid("dconf is empty") }
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue
                            | XML_PARSE_NOCDATA.rawValue)
        xmlResetLastError()
        let parsed: xmlDocPtr? = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { pointer in
                xmlReadMemory(pointer, Int32(buffer.count), "dconf.xml", nil, options)
            }
        }
        guard let document = parsed else {
            throw .invalid("dconf is not well-formed XML: \(Self.lastXMLError())")
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
                   String(cString: href).contains("XInclude") {
                    throw .invalid("dconf must not use XInclude")
                }
                var child = current.pointee.children
                while let inner = child {
                    switch inner.pointee.type {
                    case XML_TEXT_NODE, XML_COMMENT_NODE: break
                    case XML_ENTITY_REF_NODE, XML_ENTITY_NODE: throw .invalid("dconf must not contain entities")
                    default: throw .invalid("dconf key '\(key)' must hold text only")
                    }
                    child = inner.pointee.next
                }
                guard values[key] == nil else { throw .invalid("dconf key '\(key)' appears twice") }
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

    private static func lastXMLError() -> String {
        guard let error = xmlGetLastError(), let message = error.pointee.message else { return "unknown error" }
        let text = String(cString: message).trimmingWhitespace()
        return error.pointee.line > 0 ? "line \(error.pointee.line): \(text)" : text
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
