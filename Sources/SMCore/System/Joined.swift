extension Array where Element == String {
    /// `joined(separator:)` without the standard library's generic entry point, whose first call
    /// in a process looks up an associated type's conformance by scanning every conformance record
    /// of the executable and page-faulting them in (Docs/performance.md). Every join of strings in
    /// our modules uses it: `--help`, the SMlog line, an error's one-line reason, intent records.
    public func joinedText(separator: String) -> String {
        var text = ""
        for (index, item) in enumerated() {
            if index > 0 { text += separator }
            text += item
        }
        return text
    }
}
