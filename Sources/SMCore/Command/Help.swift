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
        if !D.requiredKeys.isEmpty { text += "Required dconf keys: \(D.requiredKeys.joinedText(separator: ", "))\n" }
        if !D.optionalKeys.isEmpty { text += "Optional dconf keys: \(D.optionalKeys.joinedText(separator: ", "))\n" }
        text += "\nVerbs:\n"
        for verb in Verb.allCases {
            let signature = ([verb.rawValue] + verb.argumentNames).joinedText(separator: " ")
            text += "  \(signature)\n"
        }
        if !D.unsupportedVerbs.isEmpty {
            text += "\nUnsupported verbs:\n"
            for line in D.unsupportedVerbLines {
                text += "  \(line.verbs.map(\.rawValue).joinedText(separator: ", ")): ENOSYS, \(line.reason.text)\n"
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
        var text = "Usage: \(D.name) <dconf> \(([verb.rawValue] + verb.argumentNames).joinedText(separator: " "))\n\n"
        text += verb.summary + "\n\n"
        if let reason = D.unsupportedVerbs[verb] { text += "\(D.name) answers ENOSYS: \(reason.text)\n\n" }
        text += "Errors:\n"
        for (name, meaning) in verb.errorCodes {
            text += "  \(name.padding(7)) \(meaning)\n"
        }
        return text
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
