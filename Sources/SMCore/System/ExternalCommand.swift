import Dispatch
import Subprocess
import SystemPackage

/// What a child process printed and how it ended.
public struct CommandOutput: Sendable {
    public var status: Int32
    public var standardOutput: String
    public var standardError: String
}

/// The one way SMCore runs another program (mkfs.ext4, mount, iscsiadm ...): through
/// swift-subprocess, with bounded output and a non-zero exit turned into a `StorageError` here
/// and nowhere else. Secrets go through `input`, never `arguments`.
///
/// A child that works on something a `HostLock` guards (mkfs.ext4 on a device) is run
/// `holding:` that lock: the lock's descriptor becomes the child's standard input, so the child
/// shares the locked open file and the flock stays held until the child (and anything it forks)
/// has exited, even if this process is killed meanwhile. Every other descriptor is closed in the
/// child (swift-subprocess closes all above 2), and the lock file is empty, so the child reads
/// end-of-file from stdin exactly as from an empty `input`.
public enum ExternalCommand {
    /// The most either stream may hold; more is an EIO.
    public static let outputLimit = 1 << 20

    /// Runs `program` (a name looked up in PATH, or an absolute path) and waits for it.
    ///
    /// - Parameter failure: the errno for a non-zero exit (EIO unless the caller knows better).
    /// - Returns: the output of a successful (exit 0) run.
    @discardableResult
    public static func run(
        _ program: String, _ arguments: [String], input: [UInt8]? = nil,
        environment: [String: String] = [:], holding lock: HostLock? = nil,
        failure: Errno = .ioError
    ) throws(StorageError) -> CommandOutput {
        let output = try runAllowingFailure(program, arguments, input: input, environment: environment, holding: lock)
        guard output.status == 0 else {
            let reason = lastLine(output.standardError) ?? lastLine(output.standardOutput) ?? "no output"
            throw .commandFailed(program, status: output.status, reason: reason, code: failure)
        }
        return output
    }

    /// Runs `program` and returns its status and output whatever the status.
    ///
    /// - Parameter lock: a lock the child holds too (as its standard input) until it exits;
    ///   `input` must then be nil.
    public static func runAllowingFailure(
        _ program: String, _ arguments: [String], input: [UInt8]? = nil,
        environment: [String: String] = [:],
        holding lock: HostLock? = nil
    ) throws(StorageError) -> CommandOutput {
        guard input == nil || lock == nil else {
            throw .io("internal: \(program) cannot both hold a lock (as its stdin) and be given input")
        }
        Diagnostics.debug("run \(program) \(arguments.joinedText(separator: " "))")
        let box = OutcomeBox()
        let semaphore = DispatchSemaphore(value: 0)
        let executable: Executable = program.hasPrefix("/") ? .path(FilePath(program)) : .name(program)
        let childEnvironment: Environment =
            environment.isEmpty
            ? .inherit
            : .inherit.updating(
                Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(stringLiteral: $0.key), Optional($0.value)) }))
        let inputBytes = input
        let lockDescriptor = lock?.descriptorForChildren
        if lock != nil && lockDescriptor == nil { throw .io("internal: \(program) was to hold a lock that is released") }
        Task.detached {
            do {
                let result =
                    if let lockDescriptor {
                        try await Subprocess.run(
                            executable, arguments: Arguments(arguments), environment: childEnvironment,
                            input: .fileDescriptor(lockDescriptor, closeAfterSpawningProcess: false),
                            output: .bytes(limit: outputLimit), error: .bytes(limit: outputLimit))
                    } else {
                        try await Subprocess.run(
                            executable, arguments: Arguments(arguments), environment: childEnvironment,
                            input: .array(inputBytes ?? []), output: .bytes(limit: outputLimit), error: .bytes(limit: outputLimit))
                    }
                let status: Int32
                switch result.terminationStatus {
                case .exited(let code): status = code
                case .signaled(let signal): status = 128 + signal
                }
                box.outcome = .success(
                    CommandOutput(
                        status: status,
                        standardOutput: String(decoding: result.standardOutput, as: UTF8.self),
                        standardError: String(decoding: result.standardError, as: UTF8.self)))
            } catch {
                box.outcome = .failure(StorageError.io("cannot run \(program): \(error)"))
            }
            semaphore.signal()
        }
        semaphore.wait()
        guard let outcome = box.outcome else { throw .io("\(program): no result") }
        let output = try outcome.get()
        Diagnostics.debug("\(program) exited \(output.status)")
        return output
    }

    static func lastLine(_ text: String) -> String? {
        text.split(whereSeparator: \.isNewline).last.map { String($0).trimmingWhitespace() }
    }

    private final class OutcomeBox: @unchecked Sendable {
        var outcome: Result<CommandOutput, StorageError>?
    }
}
