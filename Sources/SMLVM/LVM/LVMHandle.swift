import CLVM2Cmd
import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// What one LVM command said: LVM's return code and its messages, split by level.
public struct LVMOutcome: Sendable {
    /// `LVM2_COMMAND_SUCCEEDED` (1) on success; 2 to 5 are liblvm2cmd's failures.
    public var returnCode: Int32
    /// The lines of a report (what libdm's report writer printed), apart from everything else.
    public var report: [String]
    /// Other lines LVM printed (level PRINT): notices and warnings. During a report they come
    /// between its lines, as LVM processes each object after the report's header is out.
    public var output: [String]
    /// Lines LVM logged as errors (levels FATAL and ERROR).
    public var errors: [String]

    public var succeeded: Bool { returnCode == LVM2_COMMAND_SUCCEEDED }

    /// LVM's own words for a failure, for a StorageError message.
    public var reason: String {
        errors.isEmpty ? "LVM returned \(returnCode) without an error message" : errors.joinedText(separator: "; ")
    }
}

/// The process's one liblvm2cmd handle, freed in `deinit`; the only user of liblvm2cmd.
///
/// Every command runs in-process through `lvm2_run` (no `lvm` child process). The host's extra
/// LVM configuration (`lvm_config` / `SM_LVM_CONFIG`) is passed as `--config` on every command.
/// While a command runs, standard input reads `/dev/null` and standard output goes to
/// `/dev/null` (LVM prompts there; commands run with `-qq` so that every prompt is answered
/// "no"), and standard error too unless `--verbose`. liblvm2cmd keeps global state, so only one
/// handle may be open at a time, and only from one thread.
///
/// With lvmlockd (a shared volume group) every command after the first runs in a fresh LVM
/// context (`lvm2_exit`, `lvm2_init`): liblvm2cmd keeps per-command lock choices in its context
/// and never resets them (`lockd_vg_default_sh`, set by `lvs`, `vgs` and activation, stays set),
/// so an `lvextend` or `lvremove` after an `lvs` in the same context took lvmlockd's VG lock
/// **shared** and wrote the metadata while another host did the same: a lost update (the VM
/// lane's `lvm-shared` churn lost a volume so; lvmlockd logged "res_update ... version on non-ex
/// lock"). A local group has no VG lock, and keeps one context for the process.
public final class LVMHandle {
    private let library: LVM2Library
    /// nil only when a fresh context could not be made (every later command is then EIO).
    private var handle: UnsafeMutableRawPointer?
    private let systemDirectory: String
    /// Commands run in the current context (a shared group's next command gets a fresh one).
    private var commandsInContext = 0
    private let configuration: String
    /// Whether the handle runs with lvmlockd (shared volume groups) or without.
    public let locking: VolumeGroupLocking

    nonisolated(unsafe) private static var isOpen = false

    /// Opens liblvm2cmd with the overlay system directory (see `LVMSystemDirectory`), the one
    /// for shared volume groups when `locking` is sanlock.
    public init(host: HostEnvironment, locking: VolumeGroupLocking = .local) throws(StorageError) {
        guard !Self.isOpen else { throw .io("internal error: a second liblvm2cmd handle was requested") }
        // The --config text must survive liblvm2cmd's splitter; check before touching anything.
        _ = try LVMCommand.quote(host.lvmConfiguration)
        configuration = host.lvmConfiguration
        self.locking = locking
        let systemDirectory = try LVMSystemDirectory(host: host, locking: locking).prepare()
        setenv("LVM_SUPPRESS_FD_WARNINGS", "1", 1)
        let library = try LVM2Library.shared()
        handle = try Self.context(library, systemDirectory: systemDirectory)
        self.library = library
        self.systemDirectory = systemDirectory
        Self.isOpen = true
        Diagnostics.debug("liblvm2cmd opened with system directory \(systemDirectory)")
    }

    deinit {
        if let handle { library.exit(handle) }
        Self.isOpen = false
    }

    /// A new LVM context (`lvm2_init`) reading its configuration from `systemDirectory`, its log
    /// lines going to `captureLogLine`.
    private static func context(_ library: LVM2Library, systemDirectory: String) throws(StorageError) -> UnsafeMutableRawPointer {
        library.setLogFunction(captureLogLine)
        let previousSystemDirectory = Syscall.environment("LVM_SYSTEM_DIR")
        setenv("LVM_SYSTEM_DIR", systemDirectory, 1)
        let savedMask = umask(0o022)
        umask(savedMask)
        let opened = library.initialise()
        umask(savedMask)
        if let previousSystemDirectory {
            setenv("LVM_SYSTEM_DIR", previousSystemDirectory, 1)
        } else {
            unsetenv("LVM_SYSTEM_DIR")
        }
        guard let opened else { throw .io("liblvm2cmd could not be initialised (lvm2_init failed)") }
        return opened
    }

    /// A shared group's commands each get a fresh context (see the type's comment).
    private func freshContextIfShared() throws(StorageError) {
        guard locking.isShared, commandsInContext > 0 || handle == nil else { return }
        if let handle { library.exit(handle) }
        handle = nil
        handle = try Self.context(library, systemDirectory: systemDirectory)
        commandsInContext = 0
    }

    /// Runs `command` (with `-qq` added by the caller where prompts are possible) and returns what
    /// LVM said, success or not. Throws only when the command line cannot be written (EINVAL) or
    /// a shared group's fresh context cannot be made (EIO).
    public func attempt(_ command: LVMCommand) throws(StorageError) -> LVMOutcome {
        let line = try command.configured(configuration).line()
        let start = Syscall.monotonicNow()
        try freshContextIfShared()
        commandsInContext += 1
        LogCapture.reset()
        let diversion = StreamDiversion(keepStandardError: Diagnostics.verbose)
        let savedMask = umask(0o022)
        umask(savedMask)
        let returnCode = library.run(handle, line)
        umask(savedMask)
        diversion.restore()
        let outcome = LVMOutcome(
            returnCode: returnCode, report: LogCapture.report, output: LogCapture.output,
            errors: LogCapture.errors)
        LogCapture.reset()
        Diagnostics.debug("lvm \(command) -> \(returnCode) in \(Int((Syscall.monotonicNow() - start) * 1000)) ms")
        for line in outcome.errors { Diagnostics.debug("lvm error: \(line)") }
        for line in outcome.output where line.contains("WARNING") { Diagnostics.debug("lvm: \(line)") }
        return outcome
    }

    /// Runs `command`; EIO with LVM's messages when it fails.
    @discardableResult
    public func run(_ command: LVMCommand) throws(StorageError) -> LVMOutcome {
        let outcome = try attempt(command)
        guard outcome.succeeded else { throw .lvmFailed(command, outcome) }
        return outcome
    }

    /// Runs a reporting command (`vgs`, `lvs`, `pvs`) with `--reportformat json` and decodes it.
    public func report(_ command: LVMCommand) throws(StorageError) -> LVMReport {
        var reporting = command
        reporting.words.append(contentsOf: ["--reportformat", "json", "--units", "b", "--nosuffix"])
        let outcome = try run(reporting)
        return try LVMReport(lines: outcome.report, command: command)
    }
}

extension StorageError {
    /// EIO: an LVM command failed; the message names the command and quotes LVM.
    static func lvmFailed(_ command: LVMCommand, _ outcome: LVMOutcome) -> StorageError {
        .io("\(command.words.first ?? "lvm") failed: \(outcome.reason)")
    }
}

/// Where `lvm2_log_fn` puts what LVM says during one command. liblvm2cmd calls back on the
/// thread that called `lvm2_run`, and only one handle exists, so plain statics suffice.
private enum LogCapture {
    nonisolated(unsafe) static var report: [String] = []
    nonisolated(unsafe) static var output: [String] = []
    nonisolated(unsafe) static var errors: [String] = []

    static func reset() {
        report.removeAll()
        output.removeAll()
        errors.removeAll()
    }

    /// Whether a line comes from libdm's report writer, through which every report line passes.
    static func isReportWriter(_ file: UnsafePointer<CChar>?) -> Bool {
        guard let file else { return false }
        return String(cString: file).hasSuffix("libdm-report.c")
    }
}

/// liblvm2cmd's levels (lvm2cmd.h): FATAL 2, ERROR 3, PRINT 4, then verbose and debug chatter,
/// which is dropped unformatted. The level may carry flag bits above the low nibble.
private let captureLogLine: lvm2_log_fn_t = { level, file, _, _, message in
    guard let message else { return }
    switch level & 0x0F {
    case 0..<LVM2_LOG_PRINT: LogCapture.errors.append(String(cString: message))
    case LVM2_LOG_PRINT where LogCapture.isReportWriter(file): LogCapture.report.append(String(cString: message))
    case LVM2_LOG_PRINT: LogCapture.output.append(String(cString: message))
    default: return
    }
}

/// Points standard input and output (and error, unless kept) at `/dev/null` for the duration
/// of one LVM command, and puts them back. Buffered stdio is flushed both ways.
private struct StreamDiversion {
    private var saved: [(descriptor: Int32, copy: Int32)] = []

    init(keepStandardError: Bool) {
        fflush(nil)
        let null = Glibc.open("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0 else { return }
        defer { Glibc.close(null) }
        for descriptor in keepStandardError ? [Int32(0), 1] : [0, 1, 2] {
            let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, 3)
            guard copy >= 0 else { continue }
            if dup2(null, descriptor) >= 0 {
                saved.append((descriptor, copy))
            } else {
                Glibc.close(copy)
            }
        }
    }

    func restore() {
        fflush(nil)
        for (descriptor, copy) in saved {
            _ = dup2(copy, descriptor)
            Glibc.close(copy)
        }
    }
}
