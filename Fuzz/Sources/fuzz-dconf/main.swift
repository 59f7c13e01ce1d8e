import FuzzSupport
import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// With SM_FUZZ_SECRET_ORACLE=1 (fuzz.sh sets it), an error message must not contain 8 or more
/// characters of a secret element's text in the input (Docs/fuzzing.md).
let secretOracle = getenv("SM_FUZZ_SECRET_ORACLE").map { String(cString: $0) == "1" } ?? false

/// The raw texts of the secret elements in a document: each run of 8 characters or more
/// between entity or character references (what a message could echo). A run that also occurs
/// in the document outside the secret texts (an element name, which messages do name, or another
/// key's text) is left out: a message showing it is no evidence of an echoed secret.
func secretFragments(_ input: [UInt8]) -> [String] {
    let text = String(decoding: input, as: UTF8.self)
    var secretTexts: [Range<String.Index>] = []
    for key in DeviceConfiguration.secretKeys {
        var rest = text[...]
        while let open = rest.firstRange(of: "<\(key)>") {
            // The text up to the next markup: element names are no secret (messages name them).
            let secret = text[open.upperBound...].prefix { $0 != "<" }
            secretTexts.append(secret.startIndex..<secret.endIndex)
            rest = text[secret.endIndex...]
        }
    }
    secretTexts.sort { $0.lowerBound < $1.lowerBound }
    var outside = ""
    var position = text.startIndex
    for range in secretTexts {
        outside += text[position..<range.lowerBound] + "\u{0}"
        position = range.upperBound
    }
    outside += text[position...]
    let fragments = secretTexts.flatMap { range in
        text[range].split(whereSeparator: { "&;".contains($0) }).map(String.init).filter { $0.count >= 8 }
    }
    return fragments.filter { !outside.contains($0) }
}

/// The dconf parser (libxml2 underneath) on arbitrary bytes: it must answer a configuration or
/// EINVAL, never trap or touch memory it does not own; a parsed configuration's log line never
/// depends on a secret's value.
runFuzzer { input in
    do throws(StorageError) {
        let configuration = try DeviceConfiguration(xml: input)
        let line = configuration.redactedDescription
        for (key, value) in configuration.values {
            _ = try? configuration.flag(key)
            _ = try? configuration.required(key)
            // The line must not depend on a secret's value: the same configuration with another
            // value there gives the same line. (Not "the line does not contain the value": a
            // secret may equal another key's value or a piece of the line, as in "ssword=***".)
            if DeviceConfiguration.secretKeys.contains(key.lowercased()) {
                var other = configuration.values
                other[key] = value == "x" ? "y" : "x"
                fuzzCheck(
                    DeviceConfiguration(values: other).redactedDescription == line,
                    "redactedDescription depends on the value of \(key)")
            }
        }
    } catch {
        fuzzCheck(error.code == .invalidArgument, "dconf error is not EINVAL: \(error)")
        if secretOracle {
            for fragment in secretFragments(input) {
                fuzzCheck(!error.message.contains(fragment), "dconf error shows secret text '\(fragment)': \(error.message)")
            }
        }
    }
}
