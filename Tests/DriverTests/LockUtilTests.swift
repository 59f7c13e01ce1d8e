import Foundation
import Testing

/// Runs the built `lock-util`, optionally as another "host": in its own UTS namespace
/// (`unshare --uts`) with its own hostname, so that its lock files carry that host's name.
enum LockUtil {
    @discardableResult
    static func run(_ arguments: [String], host: String? = nil) throws -> ProductResult {
        guard let host else { return try Product.run("lock-util", arguments) }
        return try Product.runProgram(
            "unshare",
            [
                "--uts", "/bin/sh", "-c", "hostname \"$0\" && exec \"$@\"", host,
                Product.path("lock-util")
            ] + arguments)
    }

    /// Runs and measures the wall-clock time.
    static func timed(_ arguments: [String], host: String? = nil) throws -> (result: ProductResult, seconds: Double) {
        let start = Date()
        let result = try run(arguments, host: host)
        return (result, Date().timeIntervalSince(start))
    }
}

/// A directory for lock tests with a target file `disk.vhd` in it.
final class LockScratch {
    let scratch: Scratch
    let directory: String
    var file: String { "\(directory)/disk.vhd" }

    init() throws {
        scratch = try Scratch("lock-util")
        directory = scratch.path("data")
        try Data("virtual disk".utf8).write(to: URL(fileURLWithPath: file))
    }

    func names() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted() }

    /// The names that are protocol files (lock files, links, the mutex) of `disk.vhd`.
    func lockNames() -> [String] { names().filter { $0.hasPrefix("disk.vhd.xenlk") } }

    func contents(_ name: String) -> String? {
        (try? Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)"))).map { String(decoding: $0, as: UTF8.self) }
    }

    func write(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: "\(directory)/\(name)"))
    }
}

/// Expects one stdout line, exit status 0 and (for a negative status) an explanation on stderr.
func expectLine(_ result: ProductResult, _ line: String, status: Int32 = 0, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(result.standardOutput == line + "\n", "\(result)", sourceLocation: sourceLocation)
    #expect(result.status == status, "\(result)", sourceLocation: sourceLocation)
    if line.hasPrefix("-") {
        #expect(
            result.standardError.hasPrefix("lock-util: ") && result.standardError.count > 30, "\(result)",
            sourceLocation: sourceLocation)
    }
}

@Suite struct LockUtilTests {
    /// Writer/writer, reader/reader, reader/writer and writer/reader give LOCK-UTIL.md's statuses,
    /// always with exit status 0 and only lock files left behind.
    @Test(.timeLimit(.minutes(1))) func contentionMatrix() throws {
        let cases: [(first: String, second: String, expected: String)] = [
            ("w", "w", "-4 -1"), ("r", "r", "0 20"), ("r", "w", "-5 -1"), ("w", "r", "-4 -1")
        ]
        for (first, second, expected) in cases {
            let work = try LockScratch()
            expectLine(try LockUtil.run(["lock", work.file, first, "0", "holder-a", "20"]), "0 20")
            // The second caller asks for a 9 s lease: a joining reader adopts the readers' 20 s.
            expectLine(try LockUtil.run(["lock", work.file, second, "0", "holder-b", "9"]), expected)
            let expectedNames =
                expected == "0 20"
                ? ["disk.vhd.xenlk.\(hostName).holder-a.f\(first)", "disk.vhd.xenlk.\(hostName).holder-b.f\(second)"]
                : ["disk.vhd.xenlk.\(hostName).holder-a.f\(first)"]
            #expect(work.lockNames() == expectedNames.sorted(), "\(first)/\(second)")
        }
    }

    /// Reassert returns 1 with the stored lease and refreshes the file; delta reports the age and
    /// lease; unlock by another id is -13 and leaves the lock; unlock by the holder removes it.
    @Test(.timeLimit(.minutes(1))) func reassertDeltaUnlock() throws {
        let work = try LockScratch()
        let name = "disk.vhd.xenlk.\(hostName).vm-1.fw"
        expectLine(try LockUtil.run(["lock", work.file, "w", "0", "vm-1", "30"]), "0 30")
        #expect(work.contents(name) == "\(work.file).xenlk.\(hostName).vm-1.fw.30")
        try Product.shell("touch -d '7 seconds ago' '\(work.directory)/\(name)'")
        // Ages are whole seconds of server time; a loaded machine may add a few.
        func delta() throws -> (age: Int, lease: Int)? {
            let result = try LockUtil.run(["delta", work.file])
            #expect(result.status == 0, "\(result)")
            let fields = result.standardOutput.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            return fields.count == 2 ? (fields[0], fields[1]) : nil
        }
        let aged = try #require(try delta())
        #expect((7...12).contains(aged.age) && aged.lease == 30, "\(aged)")
        expectLine(try LockUtil.run(["lock", work.file, "w", "0", "vm-1", "5"]), "1 30")
        let refreshed = try #require(try delta())
        #expect((0...3).contains(refreshed.age) && refreshed.lease == 30, "\(refreshed)")
        let other = try LockUtil.run(["unlock", work.file, "w", "vm-2"])
        expectLine(other, "-13")
        #expect(other.standardError.contains("held by 'vm-1' on host \(hostName)"), "\(other)")
        #expect(work.lockNames() == [name])
        expectLine(try LockUtil.run(["unlock", work.file, "r", "vm-1"]), "-13")
        expectLine(try LockUtil.run(["unlock", work.file, "w", "vm-1"]), "0")
        expectLine(try LockUtil.run(["delta", work.file]), "-13 -1")
        expectLine(try LockUtil.run(["unlock", work.file, "w", "vm-1"]), "-13")
        #expect(work.names() == ["disk.vhd"])
    }

    /// Files that only look like locks (`.bak`, `.new`, other targets' locks, a lock name with a
    /// suffix) never count as locks, and a forced lock that takes over never deletes them.
    @Test(.timeLimit(.minutes(1))) func lookAlikesNeverCountNorDeleted() throws {
        let work = try LockScratch()
        let lookAlikes = [
            "disk.vhd.bak", "disk.vhd.new", "disk.vhd.xenlk.bak", "disk.vhd.xenlk.old.fw",
            "disk.vhd.xenlk.hostz.vm.fw.bak", "disk.vhd.xenlk.hostz.vm.fw~", "disk.vhd-2.xenlk.hostz.vm.fw",
            "disk.vhd.xenlk.hostz.vm.xw.orig"
        ]
        for name in lookAlikes { try work.write(name, "keep \(name)") }
        expectLine(try LockUtil.run(["delta", work.file]), "-13 -1")
        expectLine(try LockUtil.run(["lock", work.file, "w", "0", "a", "1"], host: "hosta"), "0 1")
        expectLine(try LockUtil.run(["lock", work.file, "w", "0", "b", "1"], host: "hostb"), "-4 -1")
        let forced = try LockUtil.timed(["lock", work.file, "w", "1", "b", "1"], host: "hostb")
        expectLine(forced.result, "0 1")
        #expect(forced.seconds >= 1.0, "a takeover waits one lease")
        #expect(work.names() == (["disk.vhd", "disk.vhd.xenlk.hostb.b.fw"] + lookAlikes).sorted())
        for name in lookAlikes { #expect(work.contents(name) == "keep \(name)") }
        #expect(work.contents("disk.vhd") == "virtual disk")
    }

    /// `--help` and `help <command>` explain the commands and statuses on stdout, exit 0.
    @Test func help() throws {
        let help = try LockUtil.run(["--help"])
        #expect(help.status == 0)
        for word in ["lock", "unlock", "delta", "Status numbers", "-14 usage", "Docs/lock-util.md"] {
            #expect(help.standardOutput.contains(word), "\(word) missing from --help")
        }
        let lock = try LockUtil.run(["help", "lock"])
        #expect(lock.status == 0 && lock.standardOutput.contains("lock-util lock <file> <mode> <force> <id> <lease>"), "\(lock)")
        #expect(try LockUtil.run(["delta", "--help"]).standardOutput.contains("-13 -1"))
    }

    /// Every usage error prints -14 on stdout, exits 0 and says on stderr what was wrong.
    @Test func usageErrors() throws {
        let cases: [(arguments: [String], says: String)] = [
            ([], "missing command"),
            (["frob", "x"], "unknown command 'frob': expected lock, unlock or delta"),
            (["--frob"], "Unknown option '--frob'"),
            (["lock", "/tmp/f", "w"], "Missing expected argument '<force>'"),
            (["lock", "/tmp/f", "w", "yes", "id", "5"], "The value 'yes' is invalid for '<force>'"),
            (["lock", "/tmp/f", "w", "0", "id", "ten"], "The value 'ten' is invalid for '<lease>'"),
            (["lock", "/tmp/f", "w", "0", "id", "5", "extra"], "Unexpected argument 'extra'"),
            (["unlock", "/tmp/f", "w"], "Missing expected argument '<id>'"),
            (["delta"], "Missing expected argument '<file>'")
        ]
        for (arguments, says) in cases {
            let result = try LockUtil.run(arguments)
            expectLine(result, "-14")
            #expect(result.standardError.hasPrefix("lock-util: usage: ") && result.standardError.contains(says), "\(arguments): \(result)")
            #expect(result.standardError.contains("--help"), "\(arguments): points to --help")
        }
    }

    /// Bad parameters print -1 and why; nothing is created.
    @Test func badParameters() throws {
        let work = try LockScratch()
        let cases: [(arguments: [String], line: String, says: String)] = [
            (["lock", "", "w", "0", "id", "5"], "-1 -1", "does not name a file"),
            (["lock", work.directory + "/", "w", "0", "id", "5"], "-1 -1", "does not name a file"),
            (["lock", work.file, "w", "0", "a/b", "5"], "-1 -1", "must not contain '/'"),
            (["lock", work.file, "w", "0", "id", "-5"], "-1 -1", "lease must be a whole number of seconds"),
            (["lock", work.file, "w", "0", String(repeating: "x", count: 260), "5"], "-1 -1", "use a shorter id"),
            (["unlock", work.file, "w", "a/b"], "-1", "must not contain '/'"),
            (["delta", ""], "-1 -1", "does not name a file")
        ]
        for (arguments, line, says) in cases {
            let result = try LockUtil.run(arguments)
            expectLine(result, line)
            #expect(result.standardError.contains(says), "\(arguments): \(result)")
        }
        #expect(work.names() == ["disk.vhd"])
        // An id that begins with '-' is an id, as other implementations accept it.
        expectLine(try LockUtil.run(["lock", work.file, "w", "0", "-vm", "5"]), "0 5")
        #expect(work.lockNames() == ["disk.vhd.xenlk.\(hostName).-vm.fw"])
    }

    /// I/O failures print the failure status, exit with the errno, and name the path and the cause.
    @Test func ioFailures() throws {
        let work = try LockScratch()
        let missing = work.directory + "/no-such-dir/disk.vhd"
        let lock = try LockUtil.run(["lock", missing, "w", "0", "id", "5"])
        expectLine(lock, "-6 -1", status: 2)
        #expect(lock.standardError.contains("cannot create the lock mutex \(missing).xenlk: No such file or directory"), "\(lock)")
        let delta = try LockUtil.run(["delta", missing])
        expectLine(delta, "-11 -1", status: 2)
        #expect(delta.standardError.contains("cannot list \(work.directory)/no-such-dir"), "\(delta)")

        // A read-only filesystem: a real tmpfs remounted read-only under an existing lock.
        let mountPoint = work.scratch.path("ro")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try Product.shell("mount -t tmpfs -o size=1m tmpfs '\(mountPoint)'")
        defer { _ = try? Product.runProgram("umount", [mountPoint]) }
        let file = mountPoint + "/disk.vhd"
        expectLine(try LockUtil.run(["lock", file, "w", "0", "holder", "5"]), "0 5")
        try Product.shell("mount -o remount,ro '\(mountPoint)'")
        let blocked = try LockUtil.run(["lock", file, "w", "0", "other", "5"])
        expectLine(blocked, "-6 -1", status: 30)
        #expect(blocked.standardError.contains("Read-only file system"), "\(blocked)")
        let unlock = try LockUtil.run(["unlock", file, "w", "holder"])
        expectLine(unlock, "-12", status: 30)
        #expect(unlock.standardError.contains("cannot remove the lock file \(file).xenlk.\(hostName).holder.fw"), "\(unlock)")
        let roDelta = try LockUtil.run(["delta", file])
        expectLine(roDelta, "-6 -1", status: 30)
        #expect(roDelta.standardError.contains("to read the server's time"), "\(roDelta)")
    }
}

/// This machine's short host name, as lock-util puts it in file names.
let hostName: String = {
    let name = ProcessInfo.processInfo.hostName
    return String(name.split(separator: ".", maxSplits: 1).first ?? "localhost")
}()
