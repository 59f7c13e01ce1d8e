import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A child process that outlives the call that starts it (the background sr_gc). ExternalCommand
/// (swift-subprocess) waits for its children; this starts one and lets it go: posix_spawn, in a
/// session of its own, its output discarded, its standard input a pipe fed `input` (so that a
/// dconf, which may hold secrets, never reaches its argv).
public enum DetachedProcess {
    /// POSIX_SPAWN_SETSID (glibc 2.26+), not imported as a constant.
    static let newSession: Int16 = 0x80

    /// Starts `executable` with `arguments` (argv[0] included) and the caller's environment,
    /// writes `input` to its standard input and closes it; returns the child's process id.
    @discardableResult
    public static func start(_ executable: String, arguments: [String], input: [UInt8]) throws(StorageError) -> pid_t {
        let ends = try Syscall.call("pipe", path: nil) { try FileDescriptor.pipe() }
        defer { ends.writeEnd.closeIgnoringErrors() }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, ends.readEnd.rawValue, 0)
        posix_spawn_file_actions_addclose(&actions, ends.readEnd.rawValue)
        posix_spawn_file_actions_addclose(&actions, ends.writeEnd.rawValue)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, newSession)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, &argv, environ)
        ends.readEnd.closeIgnoringErrors()
        guard status == 0 else { throw .system(Errno(rawValue: status), "posix_spawn", path: executable) }
        try ends.writeEnd.writeAll(input, path: "the standard input of \(executable)")
        return child
    }
}
