import Foundation
import Testing

@testable import SMCore

/// A temporary directory with a target file name in it, removed at the end.
private final class LockDirectory {
    let root: String
    let target: LockTarget

    init(_ name: String = "disk.vhd") throws {
        root = NSTemporaryDirectory() + "pl-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        target = try #require(LockTarget("\(root)/\(name)"))
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func names() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted() }

    func write(_ name: String, _ contents: String = "") throws {
        try Data(contents.utf8).write(to: URL(fileURLWithPath: "\(root)/\(name)"))
    }

    func read(_ name: String) -> String? {
        (try? Data(contentsOf: URL(fileURLWithPath: "\(root)/\(name)"))).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Sets a file's mtime `seconds` into the past.
    func age(_ name: String, by seconds: Double) throws {
        let date = Date(timeIntervalSinceNow: -seconds)
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: "\(root)/\(name)")
    }

    func lock(_ id: String, host: String = "hosta", policy: MutexPolicy = .fast) -> PersistentLock {
        PersistentLock(target: target, owner: LockOwner(host: host, id: id), policy: policy)
    }
}

extension MutexPolicy {
    /// Few, short retries: the in-process tests do not need the real 16 x 0.5 s.
    static let fast = MutexPolicy(retries: 3, maximumSleep: 0.01, staleAge: 30)
}

@Suite struct PersistentLockTests {
    /// Only names of the exact form `<file>.xenlk.<host>.<id>.f<r|w>` are locks; ids may contain dots.
    @Test func lockNamesAndLookAlikes() throws {
        let target = try #require(LockTarget("/sr/disk.vhd"))
        let writer = try #require(target.parseLockName("disk.vhd.xenlk.hosta.vm.1.fw"))
        #expect(writer.owner == LockOwner(host: "hosta", id: "vm.1") && writer.mode == .writer)
        #expect(target.parseLockName("disk.vhd.xenlk.h.i.fr")?.mode == .reader)
        for name in [
            "disk.vhd", "disk.vhd.bak", "disk.vhd.new", "disk.vhd.xenlk", "disk.vhd.xenlk.h.i.xw",
            "disk.vhd.xenlk.h.i.fw.bak", "disk.vhd.xenlk.bak", "disk.vhd.xenlk.h.fw", "disk.vhd.xenlk..i.fw",
            "disk.vhd.xenlk.h..fw", "disk.vhd2.xenlk.h.i.fw", "disk.xenlk.h.i.fw", "disk.vhd.xen12345678.tmp",
            "disk.vhd.xenlkh.i.fw", "xdisk.vhd.xenlk.h.i.fw"
        ] {
            #expect(target.parseLockName(name) == nil, "\(name) must not count as a lock")
        }
        // Names are compared as bytes: a canonically equivalent spelling is another file.
        let composed = try #require(LockTarget("/sr/caf\u{E9}.vhd"))
        #expect(composed.parseLockName("caf\u{E9}.vhd.xenlk.h.i.fw") != nil)
        #expect(composed.parseLockName("cafe\u{301}.vhd.xenlk.h.i.fw") == nil)
        #expect(target.mutexPath == "/sr/disk.vhd.xenlk")
        #expect(target.lockPath(LockOwner(host: "h", id: "i"), mode: .reader) == "/sr/disk.vhd.xenlk.h.i.fr")
        #expect(target.linkPath(LockOwner(host: "h", id: "i"), mode: .writer) == "/sr/disk.vhd.xenlk.h.i.xw")
        #expect(LockTarget("disk.vhd")?.directory == ".")
        #expect(LockTarget("/disk.vhd")?.directory == "/")
        for bad in ["", "dir/", "/sr/..", "."] { #expect(LockTarget(bad) == nil, "\(bad)") }
    }

    /// The lease is read from `<path>.<lease>`, also behind the stale tail a non-truncating writer leaves.
    @Test func leaseParsing() {
        let name = "disk.vhd.xenlk.h.i.fw"
        func lease(_ text: String) -> Int? { LockFileContents.lease(from: Array(text.utf8), name: name) }
        #expect(lease("/sr/\(name).30") == 30)
        #expect(lease("/mnt/other/\(name).5") == 5)
        #expect(lease("/a/\(name).5h.i.fw.30") == 5)  // shorter rewrite over a longer path
        #expect(lease("\(name).7\n") == 7)
        #expect(lease("/elsewhere/old-name.fw.12") == 12)
        #expect(lease("") == nil)
        #expect(lease("garbage") == nil)
        #expect(lease("/sr/\(name).") == nil)
    }

    /// A lock writes exactly `<path>.<lease>` with mode 0644 and leaves only the lock file behind.
    @Test func lockFileContentsAndCleanup() throws {
        let directory = try LockDirectory()
        let outcome = directory.lock("vm1").lock(mode: .writer, force: false, lease: 30)
        #expect(outcome.status == .acquired && outcome.lease == 30)
        let name = "disk.vhd.xenlk.hosta.vm1.fw"
        #expect(directory.names() == [name])
        #expect(directory.read(name) == "\(directory.root)/\(name).30")
        let attributes = try FileManager.default.attributesOfItem(atPath: "\(directory.root)/\(name)")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o644)
    }

    /// Reassert returns 1 and the stored lease, and rewrites the file without leaving stale bytes.
    @Test func reassertTruncates() throws {
        let directory = try LockDirectory()
        let name = "disk.vhd.xenlk.hosta.vm1.fw"
        try directory.write(name, "\(directory.root)/\(name).45" + String(repeating: "x", count: 40))
        try directory.age(name, by: 100)
        let outcome = directory.lock("vm1").lock(mode: .writer, force: false, lease: 5)
        #expect(outcome.status == .reasserted && outcome.lease == 45)
        #expect(directory.read(name) == "\(directory.root)/\(name).45")
        let delta = PersistentLock.delta(directory.target)
        #expect(delta.status == .acquired && delta.age <= 5 && delta.maximumLease == 45)
    }

    /// Writers first: a writer blocks everyone (-4); readers block a writer (-5); readers share
    /// and a joining reader adopts their lease.
    @Test func contention() throws {
        let directory = try LockDirectory()
        #expect(directory.lock("r1").lock(mode: .reader, force: false, lease: 20).status == .acquired)
        let second = directory.lock("r2", host: "hostb").lock(mode: .reader, force: false, lease: 9)
        #expect(second.status == .acquired && second.lease == 20)
        #expect(directory.lock("w1").lock(mode: .writer, force: false, lease: 9).status == .heldByReaders)
        #expect(directory.lock("r1").unlock(mode: .reader).status == .acquired)
        #expect(directory.lock("r2", host: "hostb").unlock(mode: .reader).status == .acquired)
        #expect(directory.lock("w1").lock(mode: .writer, force: false, lease: 9).status == .acquired)
        let blocked = directory.lock("r3").lock(mode: .reader, force: false, lease: 9)
        #expect(blocked.status == .heldByWriter && blocked.lease == -1)
        #expect(blocked.message.contains("'w1' on host hosta"))
        // The same id on another host is another holder.
        #expect(directory.lock("w1", host: "hostb").lock(mode: .writer, force: false, lease: 9).status == .heldByWriter)
        #expect(!directory.names().contains("disk.vhd.xenlk"))
    }

    /// Unlock removes only the caller's own file: another id's lock answers -13 and stays.
    @Test func unlockOnlyOwnLock() throws {
        let directory = try LockDirectory()
        #expect(directory.lock("a").lock(mode: .writer, force: false, lease: 5).status == .acquired)
        let other = directory.lock("b").unlock(mode: .writer)
        #expect(other.status == .noLock && other.message.contains("held by 'a' on host hosta"))
        #expect(directory.lock("a").unlock(mode: .reader).status == .noLock)
        #expect(directory.names() == ["disk.vhd.xenlk.hosta.a.fw"])
        #expect(directory.lock("a").unlock(mode: .writer).status == .acquired)
        #expect(directory.names().isEmpty)
        let delta = PersistentLock.delta(directory.target)
        #expect(delta.status == .noLock && delta.age == -13 && delta.maximumLease == -1)
    }

    /// The sole reader becomes the writer with one lock file; a forced reader removes writers only.
    @Test func modeChangeAndForcedReader() throws {
        let directory = try LockDirectory()
        #expect(directory.lock("a").lock(mode: .reader, force: false, lease: 0).status == .acquired)
        #expect(directory.lock("a").lock(mode: .writer, force: false, lease: 0).status == .acquired)
        #expect(directory.names() == ["disk.vhd.xenlk.hosta.a.fw"])
        try directory.write("disk.vhd.xenlk.hostc.r.fr", "x.0")
        let forced = directory.lock("b").lock(mode: .reader, force: true, lease: 0)
        #expect(forced.status == .acquired && forced.tookOver.map(\.owner.id) == ["a"])
        #expect(directory.names() == ["disk.vhd.xenlk.hosta.b.fr", "disk.vhd.xenlk.hostc.r.fr"])
    }

    /// Look-alike files never count as locks and a forced lock never deletes them.
    @Test func lookAlikesSurviveForce() throws {
        let directory = try LockDirectory()
        let lookAlikes = [
            "disk.vhd", "disk.vhd.bak", "disk.vhd.new", "disk.vhd.xenlk.h.i.fw.bak",
            "disk.vhd.xenlk.old", "disk.vhd2.xenlk.h.i.fw"
        ]
        for name in lookAlikes { try directory.write(name, "data of \(name)") }
        #expect(PersistentLock.delta(directory.target).status == .noLock)
        #expect(directory.lock("a").lock(mode: .writer, force: false, lease: 0).status == .acquired)
        try directory.write("disk.vhd.xenlk.hostz.z.fw", "z.0")
        let forced = directory.lock("b").lock(mode: .writer, force: true, lease: 0)
        #expect(forced.status == .acquired && Set(forced.tookOver.map(\.owner.id)) == ["a", "z"])
        #expect(directory.names() == (lookAlikes + ["disk.vhd.xenlk.hosta.b.fw"]).sorted())
        for name in lookAlikes { #expect(directory.read(name) == "data of \(name)") }
    }

    /// A fresh mutex is never removed, not by a failing lock nor by force; one older than 30 s is.
    @Test func mutexRecovery() throws {
        let directory = try LockDirectory()
        try directory.write("disk.vhd.xenlk", "disk.vhd.xenlk.ghost.dead.xw")
        try directory.age("disk.vhd.xenlk", by: 20)
        #expect(directory.lock("a").lock(mode: .writer, force: false, lease: 0).status == .mutexUnavailable)
        let forced = directory.lock("a").lock(mode: .writer, force: true, lease: 0)
        #expect(forced.status == .mutexUnavailable && forced.message.contains("ghost.dead"))
        #expect(directory.read("disk.vhd.xenlk") == "disk.vhd.xenlk.ghost.dead.xw")
        try directory.age("disk.vhd.xenlk", by: 31)
        #expect(directory.lock("a").lock(mode: .writer, force: false, lease: 0).status == .acquired)
        #expect(directory.names() == ["disk.vhd.xenlk.hosta.a.fw"])
        // A mutex dated in the future (clock skew) is not stale either.
        try directory.write("disk.vhd.xenlk", "x")
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSinceNow: 3600)],
            ofItemAtPath: "\(directory.root)/disk.vhd.xenlk")
        #expect(directory.lock("b").lock(mode: .writer, force: true, lease: 0).status == .mutexUnavailable)
    }

    /// A transient link left by a killed caller with our host and id does not stop us; no link remains.
    @Test func leftoverLink() throws {
        let directory = try LockDirectory()
        try directory.write("disk.vhd.xenlk.hosta.a.xw", "left over")
        #expect(directory.lock("a").lock(mode: .writer, force: false, lease: 3).status == .acquired)
        #expect(directory.names() == ["disk.vhd.xenlk.hosta.a.fw"])
    }

    /// delta: the smallest age over the lock files and the largest lease.
    @Test func delta() throws {
        let directory = try LockDirectory()
        try directory.write("disk.vhd.xenlk.h1.a.fr", "\(directory.root)/disk.vhd.xenlk.h1.a.fr.10")
        try directory.write("disk.vhd.xenlk.h2.b.fr", "\(directory.root)/disk.vhd.xenlk.h2.b.fr.40")
        try directory.age("disk.vhd.xenlk.h1.a.fr", by: 100)
        try directory.age("disk.vhd.xenlk.h2.b.fr", by: 60)
        let delta = PersistentLock.delta(directory.target)
        // Server time comes from a fresh file's mtime (the kernel's coarse clock): 60 s can read as 59.
        #expect(delta.status == .acquired && (59...75).contains(delta.age) && delta.maximumLease == 40, "\(delta)")
        #expect(directory.names().count == 2)
    }

    /// Ids and leases that cannot be used are refused with -1 before anything is touched.
    @Test func badParameters() throws {
        let directory = try LockDirectory()
        for id in ["", "a/b", "tab\there", String(repeating: "x", count: 250)] {
            let outcome = directory.lock(id).lock(mode: .writer, force: false, lease: 1)
            #expect(outcome.status == .badParameter && !outcome.message.isEmpty, "\(id)")
        }
        #expect(directory.lock("a").lock(mode: .writer, force: false, lease: -1).status == .badParameter)
        #expect(directory.lock("a", host: "a.b").lock(mode: .writer, force: false, lease: 1).status == .badParameter)
        #expect(directory.names().isEmpty)
    }
}
