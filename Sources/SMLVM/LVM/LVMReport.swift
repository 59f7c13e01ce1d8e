import FoundationEssentials
import SMCore

/// One `--reportformat json` report, decoded: for each section (`vg`, `lv`, `pv`), its rows.
///
/// LVM prints `{"report": [{"vg": [{"vg_name": "...", ...}, ...]}, ...]}` with every value a
/// string, one line at a time through the log callback (`LVMOutcome.report`). Decoding starts at
/// the first line that is exactly `{` and reads one JSON value.
public struct LVMReport: Sendable {
    public var sections: [String: [Row]]

    public init(sections: [String: [Row]]) {
        self.sections = sections
    }

    /// Decodes the printed lines of `command`; EIO naming the command if they hold no report.
    /// The report runs from the first line that is exactly `{` to the next `}` line indented as
    /// that `{` is (LVM's report writer prints nothing else at that level): what follows is not
    /// part of it.
    init(lines: [String], command: LVMCommand) throws(StorageError) {
        let name = command.words.first ?? "lvm"
        guard let start = lines.firstIndex(where: { $0.trimmingWhitespace() == "{" }) else {
            throw .io("\(name) printed no JSON report")
        }
        func indentation(_ line: String) -> Substring { line.prefix(while: { $0 == " " || $0 == "\t" }) }
        let end =
            lines[(start + 1)...].firstIndex {
                $0.trimmingWhitespace() == "}" && indentation($0) == indentation(lines[start])
            } ?? lines.count - 1
        try self.init(json: Array(lines[start...end].joined(separator: "\n").utf8), command: name)
    }

    /// Decodes one report (`JSONDecoder`, FoundationEssentials: Docs/libraries.md); EIO saying
    /// what is wrong, and where, when it is not JSON or not a report's shape.
    init(json: [UInt8], command name: String) throws(StorageError) {
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(json))
        } catch let error as DecodingError {
            switch error {
            case .dataCorrupted(let context):
                let path = Self.path(context.codingPath)
                let cause = (context.underlyingError as? CustomStringConvertible)?.description ?? context.debugDescription
                throw .io("\(name) printed a report that is not JSON (at \(path)): \(cause)")
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context):
                throw .io("\(name) printed JSON that is not a report at \(Self.path(context.codingPath)): \(context.debugDescription)")
            @unknown default:
                throw .io("\(name) printed a report that could not be read: \(error)")
            }
        } catch {
            throw .io("\(name) printed a report that could not be read: \(error)")
        }
        var sections: [String: [Row]] = [:]
        for entry in document.report {
            for (section, rows) in entry {
                sections[section, default: []] += rows.map { Row(fields: $0.mapValues(\.text), command: name) }
            }
        }
        self.sections = sections
    }

    /// Where in a report a decoding error is: `.report[0].vg[2].vg_name`.
    private static func path(_ codingPath: [any CodingKey]) -> String {
        let path = codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return path.isEmpty ? "top level" : path
    }

    /// `{"report": [{"<section>": [{"<field>": <scalar>, ...}, ...]}, ...]}`.
    private struct Document: Decodable {
        var report: [[String: [[String: Scalar]]]]
    }

    /// A field's value as text: LVM prints strings; a number is kept as its decimal text, a
    /// boolean as 1 or 0, null as empty. An object or array is not a field.
    private struct Scalar: Decodable {
        var text: String

        init(from decoder: any Decoder) throws {
            // A value of another type is a typeMismatch; a malformed one (the decoder reads a
            // scalar's text only when asked) is dataCorrupted, and says so.
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                text = ""
                return
            }
            do {
                text = try container.decode(String.self)
                return
            } catch DecodingError.typeMismatch {}
            do {
                text = try container.decode(Bool.self) ? "1" : "0"
                return
            } catch DecodingError.typeMismatch {}
            if let number = try? container.decode(UInt64.self) {
                text = String(number)
            } else if let number = try? container.decode(Int64.self) {
                text = String(number)
            } else {
                text = String(try container.decode(Double.self))
            }
        }
    }

    /// The rows of `section`, empty when LVM reported none.
    public func rows(_ section: String) -> [Row] { sections[section] ?? [] }

    /// One report row: field name to value, as LVM printed it.
    public struct Row: Sendable, Equatable {
        public var fields: [String: String]
        let command: String

        public init(fields: [String: String], command: String = "lvm") {
            self.fields = fields
            self.command = command
        }

        /// A text field; EIO when LVM did not report it.
        public func text(_ field: String) throws(StorageError) -> String {
            guard let value = fields[field] else { throw .io("\(command) did not report \(field)") }
            return value
        }

        /// A decimal field (sizes in bytes, counts); EIO when absent or not a number.
        public func number(_ field: String) throws(StorageError) -> UInt64 {
            let value = try text(field)
            guard let number = UInt64(value) else {
                throw .io("\(command) reported \(field) as '\(ArgumentParsing.printable(value))', not a number")
            }
            return number
        }
    }
}
