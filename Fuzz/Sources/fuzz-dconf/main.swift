import FuzzSupport
import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// With SM_FUZZ_SECRET_ORACLE=1, an error message must not contain 8 or more characters of a
/// secret element's text in the input (off by default until the known echo of a secret around
/// an undefined entity is fixed; Docs/fuzzing.md).
let secretOracle = getenv("SM_FUZZ_SECRET_ORACLE").map { String(cString: $0) == "1" } ?? false

/// The raw texts of the secret elements in a document: each run of 8 characters or more
/// between entity or character references (what a message could echo).
func secretFragments(_ input: [UInt8]) -> [String] {
    let text = String(decoding: input, as: UTF8.self)
    var fragments: [String] = []
    for key in DeviceConfiguration.secretKeys {
        var rest = text[...]
        while let open = rest.firstRange(of: "<\(key)>") {
            rest = rest[open.upperBound...]
            // The text up to the next markup: element names are no secret (messages name them).
            let text = rest.prefix { $0 != "<" }
            fragments += text.split(whereSeparator: { "&;".contains($0) }).map(String.init).filter { $0.count >= 8 }
        }
    }
    return fragments
}

/// The dconf parser (libxml2 underneath) on arbitrary bytes: it must answer a configuration or
/// EINVAL, never trap or touch memory it does not own; a parsed configuration's log line never
/// shows a secret.
runFuzzer { input in
    do throws(StorageError) {
        let configuration = try DeviceConfiguration(xml: input)
        let line = configuration.redactedDescription
        for (key, value) in configuration.values {
            _ = try? configuration.flag(key)
            _ = try? configuration.required(key)
            if DeviceConfiguration.secretKeys.contains(key.lowercased()), value.count >= 8 {
                fuzzCheck(!line.contains(value), "redactedDescription shows the value of \(key)")
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
