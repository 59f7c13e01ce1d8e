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
        let date = CivilTime(secondsSinceEpoch: Int64(time.tv_sec))
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let milliseconds = Int(time.tv_nsec / 1_000_000)
        let fraction = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(date.year)-\(two(date.month))-\(two(date.day))T"
            + "\(two(date.hour)):\(two(date.minute)):\(two(date.second)).\(fraction)Z"
    }

    static func formatMilliseconds(_ seconds: Double) -> String {
        let tenths = Int((seconds * 10_000).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// A UTC date and time of day from seconds since the epoch: what `gmtime_r` answers, without its
/// side effect. glibc's `gmtime_r` loads the time zone (`/etc/localtime`: seven system calls) on
/// its first call, which a UTC time never needs, and every verb writes one SMlog line.
/// Days become a date in the proleptic Gregorian calendar by counting 400-year eras of 146,097
/// days from 1 March 0000 (so that the leap day ends a year); a test compares it with
/// `gmtime_r` (OperationLogTests).
public struct CivilTime: Equatable, Sendable {
    public var year: Int
    public var month: Int  // 1...12
    public var day: Int  // 1...31
    public var hour: Int
    public var minute: Int
    public var second: Int

    public init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        (self.year, self.month, self.day) = (year, month, day)
        (self.hour, self.minute, self.second) = (hour, minute, second)
    }

    public init(secondsSinceEpoch: Int64) {
        let seconds = Int(secondsSinceEpoch)
        let (days, ofDay) = (seconds.floorDivided(by: 86_400), seconds.floorRemainder(by: 86_400))
        (hour, minute, second) = (ofDay / 3_600, ofDay % 3_600 / 60, ofDay % 60)
        let sinceMarch0000 = days + 719_468  // 1970-01-01 is day 719,468 after 0000-03-01
        let era = sinceMarch0000.floorDivided(by: 146_097)
        let dayOfEra = sinceMarch0000 - era * 146_097  // 0...146096
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)  // from 1 March
        let monthFromMarch = (5 * dayOfYear + 2) / 153  // 0 = March ... 11 = February
        day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }
}

extension Int {
    fileprivate func floorDivided(by divisor: Int) -> Int {
        let quotient = self / divisor
        return (self % divisor < 0) ? quotient - 1 : quotient
    }

    fileprivate func floorRemainder(by divisor: Int) -> Int {
        let remainder = self % divisor
        return remainder < 0 ? remainder + divisor : remainder
    }
}
