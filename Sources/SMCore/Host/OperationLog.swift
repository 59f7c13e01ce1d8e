import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// One line per call in the SMlog (and syslog): time, driver, verb, UUIDs, result, duration.
/// A log that cannot be written never fails the operation; `--verbose` says why.
public enum OperationLog {
    public static func record(
        host: HostEnvironment, driver: String, verb: String, uuids: [CanonicalUUID],
        result: String, seconds: Double
    ) {
        let line =
            "\(timestamp()) \(driver)[\(getpid())] \(verb) \(uuids.map(\.string).joinedText(separator: " ")) "
            + "result=\(result) duration=\(formatMilliseconds(seconds))ms\n"
        do throws(StorageError) {
            try appendLine(line, to: host.logFile)
        } catch {
            Diagnostics.debug("cannot write log \(host.logFile): \(error.message)")
        }
        Diagnostics.debug(line.trimmingWhitespace())
    }

    /// A free-form line in the SMlog (e.g. a damaged VDI that sr_scan skipped).
    public static func note(host: HostEnvironment, _ message: String) {
        append(host: host, "\(timestamp()) [\(getpid())] \(message)\n")
    }

    static func append(host: HostEnvironment, _ line: String) {
        try? appendLine(line, to: host.logFile)
    }

    /// Appends `line` in one write (O_APPEND: lines of concurrent calls do not interleave).
    private static func appendLine(_ line: String, to path: String) throws(StorageError) {
        let descriptor = try Syscall.open(path, .writeOnly, options: [.append, .create], permissions: [.ownerReadWrite, .groupRead])
        defer { descriptor.closeIgnoringErrors() }
        try descriptor.writeAll(line.utf8, path: path)
    }

    static func timestamp() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        var seconds = time.tv_sec
        var broken = tm()
        gmtime_r(&seconds, &broken)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let milliseconds = Int(time.tv_nsec / 1_000_000)
        let fraction = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(broken.tm_year + 1900)-\(two(broken.tm_mon + 1))-\(two(broken.tm_mday))T"
            + "\(two(broken.tm_hour)):\(two(broken.tm_min)):\(two(broken.tm_sec)).\(fraction)Z"
    }

    static func formatMilliseconds(_ seconds: Double) -> String {
        let tenths = Int((seconds * 10_000).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
