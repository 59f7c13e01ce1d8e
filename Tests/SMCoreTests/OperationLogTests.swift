import Testing

@testable import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// The SMlog's UTC time is computed without glibc's `gmtime_r` (which loads the time zone file
/// on its first call); it must give the same answers.
@Suite struct OperationLogTests {
    private func reference(_ seconds: Int64) -> CivilTime {
        var time = time_t(seconds)
        var broken = tm()
        gmtime_r(&time, &broken)
        return CivilTime(
            year: Int(broken.tm_year) + 1900, month: Int(broken.tm_mon) + 1, day: Int(broken.tm_mday),
            hour: Int(broken.tm_hour), minute: Int(broken.tm_min), second: Int(broken.tm_sec))
    }

    /// Every day from 1600 to 2500 (leap years, the century rules, the epoch's both sides), at
    /// its first and last second and one time between; then random seconds up to the year 9999.
    @Test func civilTimeAgreesWithGmtime() {
        let day: Int64 = 86_400
        var mismatches: [String] = []
        for days in Int64(-135_140)...Int64(193_000) {  // 1600-01-01 ... 2498-05
            for seconds in [days * day, days * day + day - 1, days * day + (days &* 7_919) % day] {
                let ours = CivilTime(secondsSinceEpoch: seconds)
                if ours != reference(seconds) && mismatches.count < 5 { mismatches.append("\(seconds): \(ours) vs \(reference(seconds))") }
            }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<100_000 {
            let seconds = Int64.random(in: -11_676_096_000...253_402_300_799, using: &generator)  // 1600 ... 9999-12-31T23:59:59
            let ours = CivilTime(secondsSinceEpoch: seconds)
            if ours != reference(seconds) && mismatches.count < 5 { mismatches.append("\(seconds): \(ours) vs \(reference(seconds))") }
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
        #expect(CivilTime(secondsSinceEpoch: 0) == CivilTime(year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0))
        #expect(
            CivilTime(secondsSinceEpoch: 951_868_799) == CivilTime(year: 2000, month: 2, day: 29, hour: 23, minute: 59, second: 59))
    }

    /// The SMlog line's time: ISO 8601, UTC, milliseconds.
    @Test func timestampShape() {
        let text = OperationLog.timestamp()
        let bytes = Array(text.utf8)
        #expect(bytes.count == 24, "\(text)")
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22]
        #expect(digits.allSatisfy { bytes.indices.contains($0) && (0x30...0x39).contains(bytes[$0]) }, "\(text)")
        #expect(text.hasSuffix("Z") && text.dropFirst(10).hasPrefix("T"), "\(text)")
    }
}
