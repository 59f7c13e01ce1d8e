/// The one reader of `key=value` text: intent records (`IntentRecord`), VDI attributes
/// (`VDIMetadataStore`), the host settings file (`HostEnvironment`) and iscsiadm node records.
///
/// Lines end at every byte 0x0A, not at Character "\n" (a "\r\n" is one Character in Swift, so a
/// value ending in "\r" would swallow the next line). A line's key is what precedes its first
/// `=`, its value what follows; a line without `=` has no value (each caller decides whether that
/// is an error). Empty lines are skipped.
public struct KeyValueLines: Sendable {
    public struct Line: Equatable, Sendable {
        /// 1-based, counting every line of the text (for error messages).
        public var number: Int
        public var key: String
        /// Nil when the line has no `=`.
        public var value: String?
    }

    public var lines: [Line]

    /// With `trimming`, blanks (space, tab, CR) around keys and values are removed and a line that
    /// is blank once trimmed is skipped; with `comments`, so is a line whose first non-blank
    /// character is `#`.
    public init(_ bytes: some Collection<UInt8>, trimming: Bool = false, comments: Bool = false) {
        var lines: [Line] = []
        for (index, raw) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            var text = String(decoding: raw, as: UTF8.self)
            if trimming { text = text.trimmingWhitespace() }
            if text.isEmpty || (comments && text.trimmingWhitespace().hasPrefix("#")) { continue }
            guard let equals = text.firstIndex(of: "=") else {
                lines.append(Line(number: index + 1, key: text, value: nil))
                continue
            }
            var key = String(text[..<equals])
            var value = String(text[text.index(after: equals)...])
            if trimming {
                key = key.trimmingWhitespace()
                value = value.trimmingWhitespace()
            }
            lines.append(Line(number: index + 1, key: key, value: value))
        }
        self.lines = lines
    }

    /// The pairs as a dictionary (a repeated key: its last value); lines without `=` are left out.
    public var dictionary: [String: String] {
        var result: [String: String] = [:]
        for line in lines { if let value = line.value { result[line.key] = value } }
        return result
    }

    /// The first line without `=`, if any.
    public var firstLineWithoutValue: Line? { lines.first { $0.value == nil } }
}
