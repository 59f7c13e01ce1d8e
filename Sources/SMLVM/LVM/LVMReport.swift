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
    init(lines: [String], command: LVMCommand) throws(StorageError) {
        let name = command.words.first ?? "lvm"
        guard let start = lines.firstIndex(where: { $0.trimmingWhitespace() == "{" }) else {
            throw .io("\(name) printed no JSON report")
        }
        let text = lines[start...].joined(separator: "\n")
        let document: JSONValue
        do throws(JSONError) {
            document = try JSONValue.parse(text.utf8)
        } catch {
            throw .io("\(name) printed a report that is not JSON: \(error)")
        }
        guard let entries = document["report"]?.arrayValue else {
            throw .io("\(name) printed JSON without a \"report\" array")
        }
        var sections: [String: [Row]] = [:]
        for entry in entries {
            guard case .object(let members) = entry else { throw .io("\(name): a report entry is not an object") }
            for (section, value) in members {
                guard let rows = value.arrayValue else { throw .io("\(name): report section \(section) is not an array") }
                for row in rows {
                    sections[section, default: []].append(try Row(row, section: section, command: name))
                }
            }
        }
        self.sections = sections
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

        init(_ value: JSONValue, section: String, command: String) throws(StorageError) {
            guard case .object(let members) = value else { throw .io("\(command): a \(section) row is not an object") }
            var fields: [String: String] = [:]
            for (key, member) in members {
                switch member {
                case .string(let text), .number(let text): fields[key] = text
                case .bool(let flag): fields[key] = flag ? "1" : "0"
                case .null: fields[key] = ""
                case .object, .array: throw .io("\(command): field \(key) of a \(section) row is not a scalar")
                }
            }
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
