import CLibXML2

/// A result element: text, or children in order. Rendered by libxml2.
public struct ResultElement: Sendable, Equatable {
    public var name: String
    public var text: String?
    public var children: [ResultElement]

    public init(_ name: String, _ text: String) {
        self.name = name
        self.text = text
        self.children = []
    }

    public init(_ name: String, children: [ResultElement]) {
        self.name = name
        self.text = nil
        self.children = children
    }

    public init(_ name: String, _ value: UInt64) { self.init(name, String(value)) }
    public init(_ name: String, _ value: Bool) { self.init(name, value ? "True" : "False") }
}

/// The `<sr>` document a verb prints on success.
public enum ResultDocument {
    /// The declaration DESIGN.md fixes; libxml2 cannot print this exact form, so it writes the
    /// body and we write this line.
    static let declaration = "<?xml version=\"1.0\" ?>\n"

    /// Renders `root` as UTF-8 XML, indented, with the declaration line first.
    public static func render(_ root: ResultElement) -> String {
        guard let document = xmlNewDoc("1.0") else { return declaration }
        defer { xmlFreeDoc(document) }
        let rootNode = build(root, in: document)
        xmlDocSetRootElement(document, rootNode)
        guard let buffer = xmlBufferCreate() else { return declaration }
        defer { xmlBufferFree(buffer) }
        let options = Int32(XML_SAVE_FORMAT.rawValue | XML_SAVE_NO_DECL.rawValue)
        guard let context = xmlSaveToBuffer(buffer, "UTF-8", options) else { return declaration }
        _ = xmlSaveDoc(context, document)
        _ = xmlSaveClose(context)
        let body = xmlBufferContent(buffer).map { String(cString: $0) } ?? ""
        return declaration + body
    }

    private static func build(_ element: ResultElement, in document: xmlDocPtr) -> xmlNodePtr? {
        guard let node = xmlNewDocNode(document, nil, element.name, nil) else { return nil }
        if let text = element.text {
            if let textNode = xmlNewDocText(document, text) { xmlAddChild(node, textNode) }
        }
        for child in element.children {
            if let childNode = build(child, in: document) { xmlAddChild(node, childNode) }
        }
        return node
    }
}
