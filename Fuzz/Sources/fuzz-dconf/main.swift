import FuzzSupport
import SMCore

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
    }
}
