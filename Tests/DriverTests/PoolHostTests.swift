import Foundation
import SMCore
import Testing

/// One host of a pool, without a kernel client: a UTS namespace with its own host name and its
/// own host state (run, lock and log directories), running FileSR on a directory that every
/// host of the test shares (the shared-SR model of Docs/pools.md, without NFS).
struct PoolHost {
    let name: String
    let scratch: Scratch
    let dconf: String

    init(_ name: String, sharedData: String, lease: Int = 2) throws {
        self.name = name
        scratch = try Scratch("sm-pool-\(name)")
        scratch.environment["SM_GC_AFTER_DELETE"] = "0"
        scratch.environment["SM_CLAIM_LEASE"] = String(lease)
        dconf = "<dconf><location>\(sharedData)</location></dconf>"
    }

    /// Runs FileSR in a UTS namespace whose host name is this host's.
    @discardableResult
    func run(_ verb: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ProductResult {
        try Product.runProgram(
            "/usr/bin/unshare",
            [
                "--uts", "/bin/sh", "-c", "hostname \"$0\" && exec \"$@\"", name,
                Product.path("FileSR"), dconf, verb
            ] + arguments,
            environment: scratch.environment.merging(environment) { $1 })
    }

    func expectOK(_ verb: String, _ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try run(verb, arguments)
        #expect(result.status == 0, "host \(name): \(verb) \(arguments): \(result)", sourceLocation: sourceLocation)
    }

    /// When (seconds since 1970, from its SMlog) this host decided each takeover of a lapsed claim.
    func takeovers() -> [Double] {
        let log = (try? String(contentsOfFile: scratch.path("SMlog"), encoding: .utf8)) ?? ""
        let format = ISO8601DateFormatter()
        format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return log.components(separatedBy: "\n").filter { $0.contains("has lapsed; taking it over") }.compactMap { line in
            format.date(from: String(line.prefix { $0 != " " }))?.timeIntervalSince1970
        }
    }

    /// How many merges this host's operations log records.
    func merges() -> Int {
        let log = (try? String(contentsOfFile: scratch.path("SMlog"), encoding: .utf8)) ?? ""
        return log.components(separatedBy: "\n").filter { $0.contains(": coalesced ") }.count
    }
}

/// Two hosts sharing one SR: one collector at a time in the whole pool, another host's
/// interrupted operation left alone while its claim is live and recovered once it lapses,
/// disjoint verbs at the same time; every VDI's bytes checked against a model.
@Suite(.serialized) struct PoolHostTests {
    let shared: Scratch
    let sr = newUUID()
    let hosts: [PoolHost]
    let cow: SRFiles

    init() throws {
        let shared = try Scratch("sm-pool-data")
        self.shared = shared
        hosts = try ["pool-a", "pool-b"].map { try PoolHost($0, sharedData: shared.path("data")) }
        try hosts[0].expectOK("sr_create", sr, "0")
        for host in hosts { try host.expectOK("sr_attach", sr) }
        // Guest data is written and read in-process through the VHD engine.
        cow = SRFiles(root: shared.path("data/\(sr)"))
    }

    /// A chain whose parent was deleted (hidden, waiting to be coalesced); returns the leaf and
    /// what it must read.
    func chainWithDeletedParent(on host: PoolHost, seed: UInt64) throws -> (String, [UInt8]) {
        let leaf = newUUID()
        let parent = newUUID()
        try host.expectOK("vdi_create", sr, leaf, String(8 << 20))
        var data = pattern(8 << 20, seed: seed)
        try cow.write(leaf, at: 0, data)
        try host.expectOK("vdi_snapshot", sr, leaf, parent)
        let change = pattern(3 << 20, seed: seed + 100)
        try cow.write(leaf, at: 2 << 20, change)
        data.replaceSubrange((2 << 20)..<(5 << 20), with: change)
        try host.expectOK("vdi_delete", sr, parent)
        return (leaf, data)
    }

    /// sr_gc started on both hosts at once merges each chain exactly once, and every VDI reads
    /// what it read before (it once merged the same parent on both hosts and lost data).
    @Test(.timeLimit(.minutes(3))) func collectorOnBothHostsAtOnce() throws {
        var model: [String: [UInt8]] = [:]
        for index in 0..<6 {
            let (leaf, data) = try chainWithDeletedParent(on: hosts[index % 2], seed: UInt64(index) * 7 + 1)
            model[leaf] = data
        }
        let results = try runConcurrently(hosts.map { host in { try host.run("sr_gc", [self.sr]) } })
        for (host, result) in zip(hosts, results) { #expect(result.status == 0, "sr_gc on \(host.name): \(result)") }
        // One pass may have found the other at work and done nothing: a second pass on each finishes.
        for host in hosts { try host.expectOK("sr_gc", sr) }
        for (leaf, data) in model { #expect(try cow.read(leaf) == data, "VDI \(leaf) reads wrong bytes") }
        #expect(try cow.files().sorted() == model.keys.sorted(), "hidden parents left")
        #expect(hosts.map { $0.merges() }.reduce(0, +) == 6, "merges: \(hosts.map { $0.merges() })")
        try hosts[1].expectOK("sr_check", sr)
    }

    /// Host A dies in the middle of a coalesce: host B goes on with its own VDIs, leaves A's
    /// operation alone while A's claims are live, and recovers it once they have lapsed.
    @Test(.timeLimit(.minutes(3))) func deadHostsOperationRecoveredOnlyAfterItsLeaseLapses() throws {
        let (leaf, data) = try chainWithDeletedParent(on: hosts[0], seed: 11)
        let killed = try hosts[0].run(
            "sr_gc", [sr], environment: ["SM_FAULT_POINT": FaultPoint.Coalesce.merged.rawValue, "SM_CLAIM_LEASE": "4"])
        #expect(killed.status == 128 + 9, "\(killed)")
        let journal = shared.path("data/\(sr)/.sm/journal")
        #expect(try FileManager.default.contentsOfDirectory(atPath: journal).count == 1)
        let start = Date()

        // Host B, while A's claims are fresh: its own verbs work, A's record stays.
        let (other, otherData) = try chainWithDeletedParent(on: hosts[1], seed: 12)
        try hosts[1].expectOK("sr_scan", sr)
        let gcResult = try hosts[1].run("sr_gc", [sr])
        #expect(gcResult.status == 0, "\(gcResult)")
        if Date().timeIntervalSince(start) < 3.5 {
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: journal).count == 1,
                "host B recovered host A's operation while A's claim was live")
        }
        #expect(try cow.read(leaf) == data)
        #expect(try cow.read(other) == otherData)

        // Once the lease has lapsed (4 s), B's next verb recovers it (after waiting one lease),
        // taking over the claims of the record's two VDIs side by side: one wait, not one each.
        Thread.sleep(forTimeInterval: max(0, 5 - Date().timeIntervalSince(start)))
        let before = hosts[1].takeovers().count
        try hosts[1].expectOK("sr_scan", sr)
        #expect(try FileManager.default.contentsOfDirectory(atPath: journal).isEmpty)
        let takeovers = hosts[1].takeovers().dropFirst(before)
        #expect(takeovers.count == 2, "takeovers of the record's claims: \(takeovers)")
        if let first = takeovers.min(), let last = takeovers.max() {
            // Each takeover waits B's lease (2 s) before it returns: one after another they are 2 s apart.
            #expect(last - first < 1, "the record's claims were taken over one lease after another (\(last - first) s apart)")
        }
        try hosts[1].expectOK("sr_gc", sr)
        #expect(try cow.read(leaf) == data)
        #expect(try cow.read(other) == otherData)
        #expect(try cow.files().sorted() == [leaf, other].sorted())
        try hosts[0].expectOK("sr_check", sr)
    }

    /// Host A dies in the middle of a coalesce and the file server keeps A's lock on its intent
    /// record (NFSv4 keeps a dead client's locks until its lease runs out on the server, 90 s by
    /// default; NLM until the host reboots; here the test process holds the lock, as the server
    /// would): host B still recovers the record once A's claims lapse, and sr_check reports it
    /// until then only as a running operation. (Before: B skipped the record while the lock was
    /// held, and its collector could take over A's lapsed claims and merge A's VDIs meanwhile.)
    @Test(.timeLimit(.minutes(3))) func deadHostsRecordLockedOnTheServerIsRecoveredOnceItsClaimsLapse() throws {
        let (leaf, data) = try chainWithDeletedParent(on: hosts[0], seed: 41)
        let killed = try hosts[0].run(
            "sr_gc", [sr], environment: ["SM_FAULT_POINT": FaultPoint.Coalesce.merged.rawValue, "SM_CLAIM_LEASE": "4"])
        #expect(killed.status == 128 + 9, "\(killed)")
        let journal = shared.path("data/\(sr)/.sm/journal")
        let records = try FileManager.default.contentsOfDirectory(atPath: journal)
        try #require(records.count == 1)
        // The server's lock, outliving its holder: this test process holds the record's lock.
        let serverLock = open("\(journal)/\(records[0])", O_RDWR)
        try #require(serverLock >= 0 && flock(serverLock, LOCK_EX | LOCK_NB) == 0)
        defer { close(serverLock) }

        // While A's claims are live (lease 4 s): a running operation, left alone.
        let check = try hosts[1].run("sr_check", [sr])
        #expect(check.status == 0, "sr_check while A's claims are live: \(check)")
        try hosts[1].expectOK("sr_scan", sr)
        #expect(try FileManager.default.contentsOfDirectory(atPath: journal).count == 1)

        // Once they have lapsed, B recovers the record although its lock is still held.
        Thread.sleep(forTimeInterval: 6)
        try hosts[1].expectOK("sr_scan", sr)
        #expect(try FileManager.default.contentsOfDirectory(atPath: journal).isEmpty, "the record is still there")
        try hosts[1].expectOK("sr_gc", sr)
        #expect(try cow.read(leaf) == data)
        #expect(try cow.files() == [leaf])
        try hosts[1].expectOK("sr_check", sr)
    }

    /// A host's own killed operation is recovered by that host at once: a process of its own
    /// that no longer exists holds nothing.
    @Test(.timeLimit(.minutes(2))) func ownDeadProcessIsRecoveredAtOnce() throws {
        let (leaf, data) = try chainWithDeletedParent(on: hosts[0], seed: 21)
        let killed = try hosts[0].run(
            "sr_gc", [sr], environment: ["SM_FAULT_POINT": FaultPoint.Coalesce.merged.rawValue, "SM_CLAIM_LEASE": "600"])
        #expect(killed.status == 128 + 9, "\(killed)")
        try hosts[0].expectOK("sr_gc", sr)
        #expect(try cow.read(leaf) == data)
        #expect(try cow.files() == [leaf])
        #expect(hosts[0].merges() == 1)
    }

    /// A collector whose claim another host took over stops at once with EIO (fencing); what it
    /// left is recovered and the chain then merges, every byte as before.
    @Test(.timeLimit(.minutes(2))) func collectorThatLosesItsClaimStops() throws {
        let (leaf, data) = try chainWithDeletedParent(on: hosts[0], seed: 31)
        let claims = shared.path("data/\(sr)/.sm/claims")
        let collector = Process()
        collector.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        collector.arguments = [
            "--uts", "/bin/sh", "-c", "hostname \"$0\" && exec \"$@\"", hosts[0].name,
            Product.path("FileSR"), hosts[0].dconf, "sr_gc", sr
        ]
        collector.environment = ProcessInfo.processInfo.environment.merging(hosts[0].scratch.environment) { $1 }
            .merging(["SM_CLAIM_LEASE": "1", "SM_FAULT_PAUSE": "\(FaultPoint.Coalesce.merged):20"]) { $1 }
        let errors = Pipe()
        collector.standardError = errors
        try collector.run()
        // Wait for its gc claim, then hand it to another host as a takeover would.
        var mine: String?
        for _ in 0..<200 where mine == nil {
            mine = (try? FileManager.default.contentsOfDirectory(atPath: claims))?.first { $0.hasPrefix("gc.xenlk.\(hosts[0].name).") }
            if mine == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        let held = try #require(mine, "the collector never took the gc claim")
        Thread.sleep(forTimeInterval: 0.5)  // into the pause at coalesce.merged
        try FileManager.default.removeItem(atPath: "\(claims)/\(held)")
        let other = "\(claims)/gc.xenlk.pool-z.sm-1.fw"
        try Data("\(other).1".utf8).write(to: URL(fileURLWithPath: other))
        let started = Date()
        collector.waitUntilExit()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(collector.terminationReason == .exit && collector.terminationStatus == 5, "\(stderr)")
        #expect(stderr.contains("EIO: lost the claim gc"), "\(stderr)")
        #expect(Date().timeIntervalSince(started) < 5, "it went on for \(Date().timeIntervalSince(started)) s")
        try FileManager.default.removeItem(atPath: other)
        try hosts[0].expectOK("sr_gc", sr)
        #expect(try cow.read(leaf) == data)
        #expect(try cow.files() == [leaf])
        try hosts[0].expectOK("sr_check", sr)
    }

    /// Both hosts run snapshots, writes and deletes on their own VDIs while both collect; the
    /// model holds afterwards.
    @Test(.timeLimit(.minutes(4))) func disjointVerbsWhileBothCollect() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["SM_POOL_ROUNDS"] ?? "") ?? 4
        let work = hosts.enumerated().map { index, host in
            { () throws -> [String: [UInt8]] in
                var model: [String: [UInt8]] = [:]
                for round in 0..<rounds {
                    let (leaf, data) = try self.chainWithDeletedParent(on: host, seed: UInt64(index * 1000 + round))
                    model[leaf] = data
                    let collected = try host.run("sr_gc", [self.sr])
                    #expect(collected.status == 0, "sr_gc on \(host.name): \(collected)")
                }
                return model
            }
        }
        let models = try runConcurrently(work)
        for host in hosts { try host.expectOK("sr_gc", sr) }
        let model = models.reduce(into: [:]) { $0.merge($1) { $1 } }
        for (leaf, data) in model { #expect(try cow.read(leaf) == data, "VDI \(leaf) reads wrong bytes") }
        #expect(try cow.files().sorted() == model.keys.sorted())
        try hosts[0].expectOK("sr_check", sr)
    }
}

/// The VHD files of an SR directory, read and written in-process through the VHD engine.
struct SRFiles {
    let root: String

    func path(_ vdi: String) -> String { "\(root)/\(vdi).vhd" }

    func read(_ vdi: String) throws -> [UInt8] {
        let chain = try VHDChain.open(path(vdi))
        return try chain.read(at: 0, count: Int(chain.size))
    }

    func write(_ vdi: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        try VHDChain.open(path(vdi), writable: true).write(at: offset, bytes: bytes)
    }

    /// Every VHD file, hidden ones included.
    func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasSuffix(".vhd") && !$0.hasPrefix(".") }
            .map { String($0.dropLast(4)) }.sorted()
    }
}

final class ConcurrentResults<T>: @unchecked Sendable {
    let lock = NSLock()
    var results: [Int: Result<T, any Error>] = [:]
}

/// Runs the closures on threads at once and returns their results in order.
func runConcurrently<T>(_ work: [() throws -> T]) throws -> [T] {
    let box = ConcurrentResults<T>()
    nonisolated(unsafe) let work = work
    DispatchQueue.concurrentPerform(iterations: work.count) { index in
        let result = Result { try work[index]() }
        box.lock.withLock { box.results[index] = result }
    }
    return try (0..<work.count).map { try box.results[$0]!.get() }
}
