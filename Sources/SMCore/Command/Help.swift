/// The text of `--help` and `help <verb>`.
enum Help {
    static func usage<D: Driver>(_ driver: D.Type) -> String {
        var text = """
            Usage: \(D.name) [--verbose] <dconf> <verb> <args...>
                   \(D.name) --help | \(D.name) help <verb>

            \(D.overview)

            <dconf> is the device configuration as XML (<dconf><key>value</key>...</dconf>),
            @FILE to read it from a file, or @- to read it from stdin.

            """
        if !D.requiredKeys.isEmpty { text += "Required dconf keys: \(join(D.requiredKeys, ", "))\n" }
        if !D.optionalKeys.isEmpty { text += "Optional dconf keys: \(join(D.optionalKeys, ", "))\n" }
        text += "\nVerbs:\n"
        for verb in Verb.allCases {
            let signature = join([verb.rawValue] + verb.argumentNames, " ")
            text += "  \(signature)\n"
        }
        if !D.unsupportedVerbs.isEmpty {
            text += "\nUnsupported verbs:\n"
            for line in D.unsupportedVerbLines {
                text += "  \(join(line.verbs.map(\.rawValue), ", ")): ENOSYS, \(line.reason.text)\n"
            }
        }
        text += """

            Exit status is 0 on success or the errno (EPERM 1, EIO 5, EBUSY 16, EEXIST 17, ENODEV 19,
            EINVAL 22, ENOSPC 28, ENOLCK 37, ENOSYS 38); the last line on stderr is NAME: reason.
            Host paths: SM_RUN_DIR, SM_LOCK_DIR, SM_LOG_FILE, SM_MOUNT_DIR or /etc/sm/sm.conf (see Docs/).

            """
        return text
    }

    static func verb<D: Driver>(_ verb: Verb, driver: D.Type) -> String {
        var text = "Usage: \(D.name) <dconf> \(join([verb.rawValue] + verb.argumentNames, " "))\n\n"
        text += verb.summary + "\n\n"
        if let reason = D.unsupportedVerbs[verb] { text += "\(D.name) answers ENOSYS: \(reason.text)\n\n" }
        text += "Errors:\n"
        for (name, meaning) in verb.errorCodes {
            text += "  \(name.padding(7)) \(meaning)\n"
        }
        return text
    }

    /// `[String].joined(separator:)` without the standard library's generic entry point, whose
    /// first call looks up an associated type's conformance by scanning every conformance record
    /// of the executable and page-faulting them in (Docs/performance.md: `--help` is all start-up).
    private static func join(_ items: [String], _ separator: String) -> String {
        var text = ""
        for (index, item) in items.enumerated() {
            if index > 0 { text += separator }
            text += item
        }
        return text
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
