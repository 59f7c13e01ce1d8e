/// Why a driver does not offer a verb: the words after `ENOSYS: <Driver> <verb>: `.
///
/// Each driver declares its table once, `Driver.unsupportedVerbs`, from these reasons; the
/// default implementation of every verb in `Driver` answers ENOSYS with the table's reason, the
/// driver's `--help` lists the table ("Unsupported verbs:"), and Docs/drivers.md is generated
/// from those `--help` sections (Scripts/drivers-doc.sh; DriverTests' `DriversDocumentTests`
/// fails when the page and the tables disagree). A verb missing from the table and not
/// implemented answers "not implemented yet".
public struct UnsupportedReason: Sendable, Hashable {
    public let text: String

    public init(_ text: String) { self.text = text }

    /// What an unimplemented verb that no table names answers.
    public static let notImplementedYet = UnsupportedReason("not implemented yet")
}

/// A driver's table of unsupported verbs and their reasons, written as a dictionary literal
/// (`[.vdiLock: reason]`). Not a `Dictionary`: making a `[Verb: UnsupportedReason]` at run time
/// looks up `Verb`'s `Hashable` conformance, which scans every conformance record of the
/// executable, and `--help` would pay that (page faults of those records included) for a table
/// of a dozen entries at most (Docs/performance.md).
public struct UnsupportedVerbTable: Sendable, ExpressibleByDictionaryLiteral {
    private let entries: [(verb: Verb, reason: UnsupportedReason)]

    public init(dictionaryLiteral elements: (Verb, UnsupportedReason)...) {
        var entries: [(verb: Verb, reason: UnsupportedReason)] = []
        for (verb, reason) in elements {
            precondition(!entries.contains { $0.verb == verb }, "\(verb.rawValue) is twice in an unsupported-verb table")
            entries.append((verb, reason))
        }
        self.entries = entries
    }

    public subscript(verb: Verb) -> UnsupportedReason? { entries.first { $0.verb == verb }?.reason }

    public var isEmpty: Bool { entries.isEmpty }
}

extension Driver {
    /// ENOSYS for `verb` with the reason this driver's table gives; each `<placeholder>` of the
    /// table's text (as `--help` shows it) that `filling` names is replaced by this call's value.
    public static func unsupported(_ verb: Verb, filling values: [String: String] = [:]) -> StorageError {
        var reason = (unsupportedVerbs[verb] ?? .notImplementedYet).text
        for (placeholder, value) in values { reason = reason.replacing(placeholder, with: value) }
        return .notImplemented(verb.rawValue, driver: name, reason: reason)
    }

    /// The table grouped for `--help`: verbs in `Verb` order, those with the same reason on one line.
    static var unsupportedVerbLines: [(verbs: [Verb], reason: UnsupportedReason)] {
        var lines: [(verbs: [Verb], reason: UnsupportedReason)] = []
        for verb in Verb.allCases {
            guard let reason = unsupportedVerbs[verb] else { continue }
            if let index = lines.firstIndex(where: { $0.reason == reason }) {
                lines[index].verbs.append(verb)
            } else {
                lines.append(([verb], reason))
            }
        }
        return lines
    }
}
