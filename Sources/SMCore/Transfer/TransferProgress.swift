import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The progress bar of vdi_export and vdi_import: one line on stderr, redrawn at most five
/// times a second, only when stderr is a terminal (a script or the agent reading stderr sees
/// nothing but the usual last line on failure). The line is ended before any error line.
/// Threads of one transfer (`ParallelBlocks`) may report at once.
public final class TransferProgress: @unchecked Sendable {
    let total: UInt64
    let label: String
    let enabled: Bool
    let start = Syscall.monotonicNow()
    var lastDrawn = 0.0
    var drawn = false
    public private(set) var done: UInt64 = 0
    private let lock = Mutex(())

    public init(_ label: String, total: UInt64, enabled: Bool = isatty(STDERR_FILENO) != 0) {
        self.label = label
        self.total = total
        self.enabled = enabled
    }

    /// `count` more bytes of the disk are done (written, or skipped as unallocated).
    public func advance(_ count: UInt64) {
        lock.withLock { _ in advanceLocked(count) }
    }

    private func advanceLocked(_ count: UInt64) {
        done += count
        guard enabled else { return }
        let now = Syscall.monotonicNow()
        if now - lastDrawn >= 0.2 || done >= total {
            lastDrawn = now
            draw(now)
        }
    }

    /// Ends the line (after success or before an error line).
    public func finish() {
        lock.withLock { _ in finishLocked() }
    }

    private func finishLocked() {
        guard enabled, drawn else { return }
        draw(Syscall.monotonicNow())
        Diagnostics.writeStandardError("\n")
        drawn = false
    }

    func draw(_ now: Double) {
        let width = 30
        let fraction = total == 0 ? 1.0 : min(1.0, Double(done) / Double(total))
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let elapsed = max(now - start, 0.001)
        let rate = Double(done) / elapsed / 1_048_576
        let line = "\r\(label) [\(bar)] \(Int(fraction * 100))% \(Self.mebibytes(done))/\(Self.mebibytes(total)) MiB \(Int(rate)) MiB/s"
        Diagnostics.writeStandardError(line)
        drawn = true
    }

    static func mebibytes(_ bytes: UInt64) -> UInt64 { bytes >> 20 }
}
