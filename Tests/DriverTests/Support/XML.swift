import Foundation

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// A parsed result document, for assertions on sr_scan and vdi_attach output.
struct ResultXML {
    let root: XMLElement

    init(_ text: String) throws {
        root = try XMLDocument(xmlString: text, options: []).rootElement()!
    }

    /// The text of the first direct child called `name`.
    func value(_ name: String) -> String? { root.elements(forName: name).first?.stringValue }

    /// The `<vdi>` children, each as name -> text, with the child order.
    var vdis: [(fields: [String: String], order: [String])] {
        root.elements(forName: "vdi").map { element in
            let children = element.children?.compactMap { $0 as? XMLElement } ?? []
            return (
                Dictionary(uniqueKeysWithValues: children.map { ($0.name ?? "", $0.stringValue ?? "") }),
                children.map { $0.name ?? "" }
            )
        }
    }

    /// Names of the direct children, in order.
    var order: [String] { root.children?.compactMap { ($0 as? XMLElement)?.name } ?? [] }
}
