// lock-util: the NFS-safe persistent lock for other programs and for administrators.
// The protocol lives in SMCore (PersistentLock); this module is the command line of LOCK-UTIL.md,
// run by the lock-util executable and by sm-drivers when it is run by that name (a link).
import ArgumentParser
import SMCore

#if canImport(Glibc)
    import Glibc
#endif

struct LockUtility: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock-util",
        abstract: "Take, release and inspect NFS-safe persistent locks beside a file.",
        discussion: """
            Every host sharing the directory sees the same locks, <file>.xenlk.<host>.<id>.f<r|w>. \
            stdout carries one line for programs; stderr explains anything unusual.

            Status numbers: 0 acquired, 1 reasserted (already held by this host and id), -4 held by a \
            writer, -5 held by readers, -7 the short-term mutex <file>.xenlk stayed busy, -13 no lock, \
            -14 usage; -1, -3, -6 and -8 to -12 are failures (the exit status is then the errno when \
            there is one).

            Only names of the exact lock form count as locks; nothing else is ever removed. \
            Arguments may begin with '-' (negative numbers, ids). See Docs/lock-util.md.
            """,
        subcommands: [Lock.self, Unlock.self, Delta.self, NoCommand.self],
        defaultSubcommand: NoCommand.self
    )
}

/// What runs when the first word names no command (or there is none): the historical utility
/// answers -14 (usage).
struct NoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "no-command", shouldDisplay: false)

    @Argument(help: .hidden)
    var words: [String] = []

    func run() throws {
        guard let word = words.first else { throw ValidationError("missing command: lock, unlock or delta") }
        throw ValidationError("unknown command '\(word)': expected lock, unlock or delta")
    }
}

/// `r` is a reader; any other word a writer (LOCK-UTIL.md): never a usage error.
extension LockMode: ExpressibleByArgument {
    public var defaultValueDescription: String { letter }
}

struct Lock: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take or reassert a lock; prints '<status> <lease>' (lease -1 when status < 0).",
        discussion: """
            Exit status 0, also when the lock is held by someone else; an errno only for I/O failures. \
            With force, the conflicting holders' lock files are removed and lock-util waits one lease \
            (holding the mutex) before returning, so that a cut-off holder notices.
            """
    )

    @Argument(help: "The file to lock; lock files are created beside it.")
    var file: String
    @Argument(help: "'r' for a reader lock (many readers); anything else is a writer lock (one writer).")
    var mode: LockMode
    @Argument(help: "An integer; non-zero removes other holders' locks (and a stale mutex).")
    var force: Int
    @Argument(help: "The caller's id; with this host's short name it identifies the holder.")
    var id: String
    @Argument(help: "The lease in whole seconds, recorded in the lock file.")
    var lease: Int

    func run() {
        guard let target = LockTarget(file) else { LockUtilityOutput.badTarget(file, columns: 2) }
        let lock = PersistentLock(target: target, owner: LockOwner(id: id))
        let outcome = lock.lock(mode: mode, force: force != 0, lease: lease)
        LockUtilityOutput.finish(
            "\(outcome.status.rawValue) \(outcome.lease)", status: outcome.status,
            errno: outcome.errno?.rawValue, message: outcome.message)
    }
}

struct Unlock: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Release this host's lock for an id; prints 0, or -13 when there was no lock to remove.",
        discussion: "Exit status 0, or the errno of the failed unlink."
    )

    @Argument(help: "The locked file.")
    var file: String
    @Argument(help: "'r' for the reader lock; anything else is the writer lock.")
    var mode: LockMode
    @Argument(help: "The id the lock was taken with.")
    var id: String

    func run() {
        guard let target = LockTarget(file) else { LockUtilityOutput.badTarget(file, columns: 1) }
        let outcome = PersistentLock(target: target, owner: LockOwner(id: id)).unlock(mode: mode)
        LockUtilityOutput.finish(
            "\(outcome.status.rawValue)", status: outcome.status, errno: outcome.errno?.rawValue,
            message: outcome.message)
    }
}

struct Delta: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prints '<age> <lease>' for the file's locks, or '-13 -1' when it is unlocked.",
        discussion: """
            <age> is the number of whole seconds since the most recent refresh of any lock file, measured \
            on the server's clock; <lease> is the largest lease among them. Exit status 0.
            """
    )

    @Argument(help: "The file whose locks to inspect.")
    var file: String

    func run() {
        guard let target = LockTarget(file) else { LockUtilityOutput.badTarget(file, columns: 2) }
        let delta = PersistentLock.delta(target)
        LockUtilityOutput.finish(
            "\(delta.age) \(delta.maximumLease)", status: delta.status, errno: delta.errno?.rawValue,
            message: delta.message)
    }
}

enum LockUtilityOutput {
    /// Prints the stdout line and the explanation, and exits.
    static func finish(_ line: String, status: LockStatus, errno: Int32?, message: String) -> Never {
        do throws(StorageError) {
            try Diagnostics.writeStandardOutput(line + "\n")
        } catch {
            // The answer never reached the caller: not a success, whatever it was.
            Diagnostics.writeStandardError("lock-util: \(error.message)\n")
            exit(EIO)
        }
        if !message.isEmpty { Diagnostics.writeStandardError("lock-util: \(status.description): \(message)\n") }
        // I/O-type failures exit with their errno (EIO when none, e.g. a failed inode test);
        // answers (held, no lock, usage) and bad parameters exit 0.
        if status.isFailure && status != .badParameter { exit(errno.flatMap { $0 > 0 ? $0 : nil } ?? EIO) }
        exit(0)
    }

    /// -1 for a file argument that names no file (empty, or a directory path ending in '/').
    static func badTarget(_ file: String, columns: Int) -> Never {
        let line = columns == 2 ? "\(LockStatus.badParameter.rawValue) -1" : "\(LockStatus.badParameter.rawValue)"
        finish(
            line, status: .badParameter, errno: nil,
            message: "'\(file)' does not name a file (it is empty or ends in '/')")
    }
}

/// -14 on stdout, the reason and the usage on stderr, exit status 0 (LOCK-UTIL.md).
func usageFailure(_ reason: String) -> Never {
    _ = try? Diagnostics.writeStandardOutput("\(LockStatus.usage.rawValue)\n")
    var text = reason.hasPrefix("Error: ") ? String(reason.dropFirst(7)) : reason
    if !text.contains("--help") { text += "\nSee 'lock-util --help'." }
    Diagnostics.writeStandardError("lock-util: usage: \(text)\n")
    exit(0)
}

/// The arguments with `--` after the command name: the historical utility has no options, so
/// every word after the command is an operand, also one beginning with '-' (ids, negative numbers),
/// which ArgumentParser would otherwise read as an option. Left alone when the caller asks for
/// help or already wrote `--`.
func operandsProtected(_ arguments: [String]) -> [String] {
    let commands: Set<String> = [Lock._commandName, Unlock._commandName, Delta._commandName]
    guard let first = arguments.first, commands.contains(first),
        !arguments.contains(where: { ["--", "-h", "--help", "-help"].contains($0) })
    else { return arguments }
    return [first, "--"] + arguments.dropFirst()
}

/// The lock-util command line: runs it with this process's arguments and exits.
public enum LockUtilityMain {
    public static func run() -> Never {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try LockUtility.parseAsRoot(operandsProtected(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch {
            if LockUtility.exitCode(for: error) == .success { LockUtility.exit(withError: error) }
            // An unknown option before any command fails in the hidden NoCommand: its usage is not the caller's.
            let full = LockUtility.fullMessage(for: error)
            usageFailure(full.contains(NoCommand._commandName) ? LockUtility.message(for: error) : full)
        }
        exit(0)
    }
}
