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
        try? write(text, to: .standardError)
    }

    /// Writes a result to stdout. A result the caller never receives (stdout closed, a broken
    /// pipe, a full device) is a failure, never a silent success: EIO naming the cause.
    public static func writeStandardOutput(_ text: String) throws(StorageError) {
        do {
            try write(text, to: .standardOutput)
        } catch let code as Errno {
            throw .io("could not write the result to stdout: \(code.symbolicName) (\(code.description))")
        } catch {
            throw .io("could not write the result to stdout: \(error)")
        }
    }

    /// The whole text. Not swift-system's `writeAll`: its generic version, unspecialised here,
    /// looks up a conformance at its first call by scanning every conformance record of the
    /// executable and page-faulting them in (Docs/performance.md).
    private static func write(_ text: String, to descriptor: FileDescriptor) throws {
        var text = text
        try text.withUTF8 { try descriptor.writeWhole(UnsafeRawBufferPointer($0)) }
    }
}
