import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The entry point of every driver executable: `DriverMain.run(FileSR.self)`.
///
/// `<Driver> [--verbose] <dconf> <verb> <args...>`; `<dconf>` is XML, `@FILE` or `@-` (stdin).
/// Exit status is the errno (0 on success); on failure the last stderr line is `NAME: reason`.
public enum DriverMain {
    public static func run<D: Driver>(_ driver: D.Type) -> Never {
        signal(SIGPIPE, SIG_IGN)
        exit(execute(driver, arguments: Array(CommandLine.arguments.dropFirst())))
    }

    /// The entry point of a multi-call executable holding several drivers (the package installs
    /// one such file for the drivers that are linked fully static, and names it once per driver:
    /// Docs/package.md): the driver is the one whose name is the last component of the path it was
    /// run as.
    public static func run(oneOf drivers: [any Driver.Type]) -> Never {
        signal(SIGPIPE, SIG_IGN)
        let invoked = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? Substring($0)) } ?? ""
        guard let driver = drivers.first(where: { $0.name == invoked }) else {
            let names = drivers.map { $0.name }.joinedText(separator: ", ")
            exit(
                fail(
                    .invalid(
                        "run as '\(ArgumentParsing.printable(invoked))': this executable holds the drivers \(names); run it by one of those names (a link)"
                    )))
        }
        func open<D: Driver>(_ driver: D.Type) -> Int32 { execute(driver, arguments: Array(CommandLine.arguments.dropFirst())) }
        exit(open(driver))
    }

    /// Runs one invocation and returns the exit status (never traps on bad input).
    public static func execute<D: Driver>(_ driver: D.Type, arguments: [String]) -> Int32 {
        var remaining = arguments
        var wantsHelp = false
        while let first = remaining.first, first.hasPrefix("-"), first != "-" {
            switch first {
            case "--verbose", "-v": Diagnostics.verbose = true
            case "--help", "-h": wantsHelp = true
            default:
                return fail(.invalid("unknown option '\(ArgumentParsing.printable(first))'; see \(D.name) --help"))
            }
            remaining.removeFirst()
        }
        if wantsHelp || remaining.first == "help" {
            let topic = wantsHelp ? nil : remaining.dropFirst().first
            guard remaining.count <= 2 else { return fail(.invalid("usage: \(D.name) help [verb]")) }
            do throws(StorageError) {
                if let topic {
                    guard let verb = Verb(rawValue: topic) else {
                        return fail(.invalid("unknown verb '\(ArgumentParsing.printable(topic))'; see \(D.name) --help"))
                    }
                    try Diagnostics.writeStandardOutput(Help.verb(verb, driver: D.self))
                } else {
                    try Diagnostics.writeStandardOutput(Help.usage(D.self))
                }
            } catch {
                return fail(error)
            }
            return 0
        }
        let start = Syscall.monotonicNow()
        let host: HostEnvironment
        do throws(StorageError) {
            host = try HostEnvironment.current()
        } catch {
            return fail(error)
        }
        var verbName = remaining.count >= 2 ? remaining[1] : "-"
        var uuids: [CanonicalUUID] = []
        var failure: StorageError?
        do {
            guard remaining.count >= 2 else {
                throw StorageError.invalid("usage: \(D.name) <dconf> <verb> <args...>; see \(D.name) --help")
            }
            guard let verb = Verb(rawValue: remaining[1]) else {
                verbName = ArgumentParsing.printable(remaining[1])
                throw StorageError.invalid("unknown verb '\(verbName)'; see \(D.name) --help")
            }
            let request = try Request.parse(verb, Array(remaining.dropFirst(2)))
            try TransferFormat.checkStreams(for: request, dconfArgument: remaining[0])
            uuids = (request.sr.map { [$0] } ?? []) + request.vdis
            let configuration = try loadConfiguration(remaining[0])
            Diagnostics.debug("dconf: \(configuration.redactedDescription)")
            let output = try Dispatcher.perform(request, verb: verb, as: D.self, configuration: configuration, host: host)
            if let output { try Diagnostics.writeStandardOutput(output) }
        } catch {
            failure = normalise(error)
        }
        OperationLog.record(
            host: host, driver: D.name, verb: verbName, uuids: uuids,
            result: failure?.code.symbolicName ?? "OK", seconds: Syscall.monotonicNow() - start)
        // The error line comes last on stderr, after any --verbose output.
        return failure.map(fail) ?? 0
    }

    /// Any error as a StorageError: system errnos keep their meaning, the rest is EIO.
    public static func normalise(_ error: any Error) -> StorageError {
        switch error {
        case let storage as StorageError: return storage
        case let code as Errno: return .system(code, "unexpected failure")
        default: return .io("unexpected failure: \(error)")
        }
    }

    static func fail(_ error: StorageError) -> Int32 {
        Diagnostics.writeStandardError("\(error.code.symbolicName): \(error.message)\n")
        return error.code.rawValue
    }

    /// The dconf argument: inline XML, `@FILE`, or `@-` for stdin.
    static func loadConfiguration(_ argument: String) throws(StorageError) -> DeviceConfiguration {
        let limit = DeviceConfiguration.maximumLength + 1
        let bytes: [UInt8]
        if argument == "@-" {
            bytes = try Syscall.readStandardInput(limit: limit)
        } else if argument.hasPrefix("@") {
            let path = String(argument.dropFirst())
            guard Syscall.exists(path) else { throw .invalid("cannot read dconf file '\(ArgumentParsing.printable(path))'") }
            do throws(StorageError) {
                bytes = try Syscall.readFile(path, limit: limit)
            } catch {
                throw .invalid("cannot read dconf file '\(ArgumentParsing.printable(path))': \(error.message)")
            }
        } else {
            bytes = Array(argument.utf8)
        }
        return try DeviceConfiguration(xml: bytes)
    }
}
