import SystemPackage

/// Debug output for `--verbose`, on stderr. Silent otherwise, so that the last stderr line is the
/// error line the caller parses.
public enum Diagnostics {
    nonisolated(unsafe) public static var verbose = false

    public static func debug(_ message: @autoclosure () -> String) {
        guard verbose else { return }
        writeStandardError("debug: \(message())\n")
    }

    public static func writeStandardError(_ text: String) {
        _ = try? FileDescriptor.standardError.writeAll(Array(text.utf8))
    }

    public static func writeStandardOutput(_ text: String) {
        _ = try? FileDescriptor.standardOutput.writeAll(Array(text.utf8))
    }
}
