import SMCore

/// One LVM command line, as `lvm2_run` takes it: a single string that liblvm2cmd splits itself.
///
/// liblvm2cmd's splitter knows whitespace and one level of quoting: a word that starts with `'`
/// or `"` runs to the next of the same quote, and an unquoted word starting with `#` ends the
/// line. `line()` quotes what needs quoting and refuses (EINVAL) what cannot be written that way,
/// so that no argument can ever turn into two, or into a comment.
public struct LVMCommand: Sendable, Equatable, CustomStringConvertible {
    /// liblvm2cmd splits into at most 64 words; more are dropped silently, so we refuse them.
    static let maximumWords = 64

    /// The command name first (`vgs`, `lvcreate` ...), then its arguments.
    public var words: [String]

    public init(_ name: String, _ arguments: [String]) {
        words = [name] + arguments
    }

    /// Adds `--config TEXT` after the command name, when `text` is not empty.
    func configured(_ text: String) -> LVMCommand {
        guard !text.isEmpty else { return self }
        var copy = self
        copy.words.insert(contentsOf: ["--config", text], at: 1)
        return copy
    }

    /// The string for `lvm2_run`.
    func line() throws(StorageError) -> String {
        guard words.count <= Self.maximumWords else {
            throw .invalid("an LVM command may have at most \(Self.maximumWords) words, this one has \(words.count)")
        }
        var quoted: [String] = []
        for word in words { quoted.append(try Self.quote(word)) }
        return quoted.joinedText(separator: " ")
    }

    /// `word` as liblvm2cmd's splitter will give it back.
    static func quote(_ word: String) throws(StorageError) -> String {
        let bytes = Array(word.utf8)
        guard !bytes.contains(0) else { throw .invalid("an LVM argument cannot contain a NUL byte") }
        let needsQuotes =
            bytes.isEmpty || bytes.contains(where: isSeparator)
            || [UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "#")].contains(bytes[0])
        guard needsQuotes else { return word }
        for quote in ["'", "\""] where !word.contains(quote) {
            return quote + word + quote
        }
        throw .invalid("'\(ArgumentParsing.printable(word))' cannot be passed to LVM: it contains both quote characters")
    }

    /// The bytes C's `isspace` accepts, which end an unquoted word.
    static func isSeparator(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }

    public var description: String { (try? line()) ?? words.joinedText(separator: " ") }
}
