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

    /// Renders `root` as UTF-8 XML, indented, with the declaration line first. libxml2's
    /// writer streams the elements into one buffer: no tree of nodes is built and freed (for
    /// sr_scan of 10,000 VDIs that tree was most of the peak memory and a fifth of the time).
    public static func render(_ root: ResultElement) -> String {
        guard let buffer = xmlBufferCreate() else { return declaration }
        defer { xmlBufferFree(buffer) }
        guard let writer = xmlNewTextWriterMemory(buffer, 0) else { return declaration }
        // Two spaces a level, as libxml2's formatted save indents.
        _ = xmlTextWriterSetIndent(writer, 1)
        _ = xmlTextWriterSetIndentString(writer, "  ")
        write(root, to: writer)
        xmlFreeTextWriter(writer)  // flushes into the buffer
        let body = xmlBufferContent(buffer).map { String(cString: $0) } ?? ""
        return declaration + body
    }

    private static func write(_ element: ResultElement, to writer: xmlTextWriterPtr) {
        _ = xmlTextWriterStartElement(writer, element.name)
        if let text = element.text { _ = xmlTextWriterWriteString(writer, text) }
        for child in element.children { write(child, to: writer) }
        _ = xmlTextWriterEndElement(writer)
    }
}
