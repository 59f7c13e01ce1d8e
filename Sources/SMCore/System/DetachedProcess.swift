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

    /// Hands the file open on `descriptor` to a process that keeps it open until this process
    /// has exited, so that the last close of a file this process unlinked or renamed over (a
    /// merged child: its page cache and its blocks, tens of milliseconds a GiB on ext4, all in
    /// that close) is not part of this call's time. The keeper is `/bin/cat` reading a pipe whose
    /// other end only this process holds: it sees the end of its input when this process exits,
    /// and exits, closing the file. It gets nothing else: the file as its descriptor 3, its
    /// input, /dev/null as its output, an empty environment, a session of its own. A host that
    /// crashes first frees the file all the same (the filesystem's orphan list at mount; an NFS
    /// client's renamed-away `.nfs*` file, as for a crash of this process). False when no keeper
    /// could be started: the caller's own close then frees the file, as before.
    @discardableResult
    public static func keepUntilExit(_ descriptor: FileDescriptor) -> Bool {
        guard let ends = try? FileDescriptor.pipe() else { return false }
        // Our end stays open (close-on-exec) until this process exits.
        guard fcntl(ends.writeEnd.rawValue, F_SETFD, FD_CLOEXEC) == 0 else {
            ends.readEnd.closeIgnoringErrors()
            ends.writeEnd.closeIgnoringErrors()
            return false
        }
        defer { ends.readEnd.closeIgnoringErrors() }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Above every descriptor the keeper is given, so that no dup2 below overwrites another's
        // source (closed by the closefrom).
        let file = fcntl(descriptor.rawValue, F_DUPFD_CLOEXEC, 10)
        guard file >= 0 else {
            ends.writeEnd.closeIgnoringErrors()
            return false
        }
        defer { close(file) }
        let input = fcntl(ends.readEnd.rawValue, F_DUPFD_CLOEXEC, 10)
        guard input >= 0 else {
            ends.writeEnd.closeIgnoringErrors()
            return false
        }
        defer { close(input) }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, file, 3)
        guard glibcSpawnActionsAddCloseFrom(&actions, 4) == 0 else {
            ends.writeEnd.closeIgnoringErrors()
            return false
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, newSession)
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("cat"), nil]
        defer { argv.forEach { free($0) } }
        var environment: [UnsafeMutablePointer<CChar>?] = [nil]
        var child: pid_t = 0
        guard posix_spawn(&child, "/bin/cat", &actions, &attributes, &argv, &environment) == 0 else {
            ends.writeEnd.closeIgnoringErrors()
            return false
        }
        // ends.writeEnd is deliberately left open: its close at exit is the keeper's signal.
        return true
    }
}

/// glibc 2.34's `posix_spawn_file_actions_addclosefrom_np`, which the Glibc module does not
/// import; bound by symbol name (Debian 12 has glibc 2.36).
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func glibcSpawnActionsAddCloseFrom(
    _ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32
) -> Int32
