import Foundation
import SMCore
import Testing

/// Concurrency stress: several callers at once on one FileSR, each on its own VDIs, as admins and
/// scripts call the built binary next to the agent. Each caller runs a seeded random mix of
/// vdi_create, guest writes (vdi_attach, the VHD engine in-process, vdi_detach), vdi_snapshot,
/// vdi_clone, vdi_resize, vdi_delete (leaves and parents), sr_scan, vdi_lock/vdi_unlock and sr_gc,
/// plus calls that must fail, against a model of its VDIs (`VDITreeModel`).
///
/// `SM_STRESS_CALLERS` (default 8), `SM_STRESS_OPS` operations per caller (default 25),
/// `SM_STRESS_SEED` replays a run (printed at the start and in every failure).
@Suite(.serialized) struct StressTests {
    /// Every call answers what the caller's model says (success, or the expected errno), each
    /// caller's sr_scan shows exactly its model, and afterwards the SR lists exactly the union of
    /// the models, every VDI reads its model's bytes, nothing is left over, and sr_check is clean.
    @Test(.timeLimit(.minutes(30))) func parallelCallersOnTheirOwnVDIs() throws {
        let environment = ProcessInfo.processInfo.environment
        let callerCount = Int(environment["SM_STRESS_CALLERS"] ?? "") ?? 8
        let operations = Int(environment["SM_STRESS_OPS"] ?? "") ?? 25
        let seed = UInt64(environment["SM_STRESS_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64(UInt32.max))
        print("stress: SM_STRESS_SEED=\(seed), \(callerCount) callers x \(operations) operations")
        let sr = try CopyOnWriteSR("sm-stress")
        let callers = (0..<callerCount).map { StressCaller(index: $0, sr: sr, seed: seed, operations: operations) }
        let start = Date()
        let group = DispatchGroup()
        for caller in callers {
            group.enter()
            let thread = Thread {
                caller.run()
                group.leave()
            }
            thread.start()
        }
        group.wait()
        let seconds = Date().timeIntervalSince(start)

        let failures = callers.flatMap(\.failures)
        let calls = callers.reduce(0) { $0 + $1.calls }
        let refused = callers.reduce(0) { $0 + $1.expectedFailures }
        let retries = callers.reduce(0) { $0 + $1.openRetries }
        print(
            "stress: seed \(seed): \(callerCount) callers, \(calls) calls (\(refused) expected refusals) in "
                + String(format: "%.1f", seconds) + " s; \(failures.count) unexpected answers; \(retries) chain opens retried")
        for (verb, count) in callers.reduce(into: [String: Int](), { $0.merge($1.counts) { $0 + $1 } }).sorted(by: { $0.key < $1.key }) {
            print("stress:   \(verb): \(count)")
        }
        for error in callers.flatMap(\.openErrors) { print("stress: chain open retried: \(error)") }
        for failure in failures { print("stress: FAILURE \(failure)") }
        #expect(failures.isEmpty, "seed \(seed): \(failures.count) unexpected answers, first: \(failures.prefix(5))")

        // Afterwards, alone: the SR is exactly the union of the callers' models (VDIs a caller
        // abandoned after an unexpected answer aside).
        let listed = try sr.listed()
        var union = VDITreeModel()
        var known: Set<String> = []
        for caller in callers {
            union.nodes.merge(caller.model.nodes) { first, _ in first }
            known.formUnion(caller.known)
        }
        let outOfStep = callers.reduce(into: Set<String>()) { $0.formUnion($1.abandoned) }
        let strangers = Set(listed.keys).subtracting(known).subtracting(outOfStep)
        #expect(strangers.isEmpty, "seed \(seed): listed VDIs no caller made: \(strangers.sorted())")
        let differences = union.differences(from: listed, known: known)
        #expect(differences.isEmpty, "seed \(seed): \(differences)")
        for vdi in union.listed where listed[vdi] != nil {
            #expect(try sr.read(vdi) == union.nodes[vdi]?.data, "seed \(seed): VDI \(vdi) reads wrong data")
        }
        let files = Set(try sr.files())
        let unknownFiles = files.subtracting(union.nodes.keys).subtracting(outOfStep)
        #expect(unknownFiles.isEmpty, "seed \(seed): VHD files no model knows: \(unknownFiles.sorted())")
        let leftovers = sr.leftovers()
        #expect(leftovers.isEmpty, "seed \(seed): left over: \(leftovers)")
        try sr.expectClean()
    }

    /// sr_scan while sr_gc merges a hidden parent H into its only child A (chain A -> H -> P):
    /// no scan lists the deleted H (it is no longer hidden once it has taken A's identity, until
    /// it is renamed over A.vhd) and every scan reports P as A's parent.
    @Test(.timeLimit(.minutes(2))) func scanDuringCoalescing() throws {
        let sr = try CopyOnWriteSR("sm-scan-gc")
        var wrong: [String] = []
        var scans = 0
        for round in 0..<12 {
            let child = try sr.create(size: 8 << 20)
            let parent = newUUID()
            let hidden = newUUID()
            try sr.write(child, at: 0, pattern(2 << 20, seed: UInt64(round)))
            try sr.expectOK("vdi_snapshot", sr.sr, child, parent)
            try sr.write(child, at: 4 << 20, pattern(2 << 20, seed: UInt64(round) + 100))
            try sr.expectOK("vdi_snapshot", sr.sr, child, hidden)
            try sr.write(child, at: 1 << 20, pattern(3 << 20, seed: UInt64(round) + 200))
            try sr.expectOK("vdi_delete", sr.sr, hidden)
            let collector = try SpawnedProduct.start(
                Product.path("FileSR"), [sr.dconf, "sr_gc", sr.sr],
                environment: sr.scratch.environment, errorFile: sr.scratch.path("gc.err"))
            var status: Int32?
            repeat {
                status = collector.poll()
                let listed = CopyOnWriteSR.parseScan(try sr.run("sr_scan", sr.sr).standardOutput)
                scans += 1
                if listed[hidden] != nil || listed[child]?.parent != parent {
                    wrong.append(
                        "round \(round): hidden listed \(listed[hidden] != nil), child's parent \(listed[child]?.parent ?? "none")")
                }
            } while status == nil
            #expect(status == 0, "sr_gc: \((try? String(contentsOfFile: sr.scratch.path("gc.err"), encoding: .utf8)) ?? "")")
            #expect(try sr.files().contains(hidden) == false, "round \(round): sr_gc did not merge \(hidden)")
            try sr.expectOK("vdi_delete", sr.sr, child)
            try sr.expectOK("vdi_delete", sr.sr, parent)
        }
        print("scan during coalescing: \(wrong.count) wrong of \(scans) scans")
        #expect(wrong.isEmpty, "\(wrong.count) of \(scans) scans during a merge were wrong: \(wrong.prefix(5))")
        try sr.expectClean()
    }
}

/// One caller of the stress test: its own VDIs, its own model, its own random sequence.
final class StressCaller: @unchecked Sendable {
    enum Answer: Equatable {
        case success
        case failure(Int32, String)

        static let notPermitted = Answer.failure(1, "EPERM")
        static let busy = Answer.failure(16, "EBUSY")
        static let exists = Answer.failure(17, "EEXIST")
        static let noSuchVDI = Answer.failure(19, "ENODEV")
        static let invalid = Answer.failure(22, "EINVAL")
        static let lockedByOther = Answer.failure(37, "ENOLCK")
    }

    struct OutOfStep: Error {}

    let index: Int
    let sr: CopyOnWriteSR
    let seed: UInt64
    let operations: Int
    let user: String
    var random: SeededGenerator
    var model = VDITreeModel()
    /// Every UUID this caller made, gone ones included (to pick its own VDIs out of sr_scan).
    var known: Set<String> = []
    /// UUIDs of VDIs given up after an unexpected answer.
    var abandoned: Set<String> = []
    var failures: [String] = []
    var history: [String] = []
    var counts: [String: Int] = [:]
    var calls = 0
    var expectedFailures = 0
    var openRetries = 0
    var openErrors: [String] = []

    static let maximumNodes = 12
    static let maximumSize = 5 * VDITreeModel.block

    init(index: Int, sr: CopyOnWriteSR, seed: UInt64, operations: Int) {
        self.index = index
        self.sr = sr
        self.seed = seed
        self.operations = operations
        user = "caller-\(index)"
        random = SeededGenerator(seed: seed &+ UInt64(index) &* 1_000_003)
    }

    /// After an unexpected answer the model no longer says what this caller's VDIs hold: they are
    /// abandoned (left out of the final comparison, still part of sr_check) and the caller goes
    /// on with new ones, so that a long run counts how often each failure happens.
    func run() {
        for step in 0..<operations {
            do {
                try self.step(step)
            } catch {
                if !(error is OutOfStep) { fail("stopped by \(error)") }
                abandoned.formUnion(known)
                known = []
                model = VDITreeModel()
            }
        }
    }

    func fail(_ message: String) {
        failures.append("seed \(seed) caller \(index) after [\(history.suffix(3).joined(separator: "; "))]: \(message)")
    }

    func number(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }

    /// Runs one verb and checks its answer; an unexpected one ends this caller.
    @discardableResult
    func call(_ verb: String, _ arguments: [String], expect answer: Answer = .success) throws -> ProductResult {
        let result = try sr.run(verb, [sr.sr] + arguments)
        calls += 1
        counts[verb, default: 0] += 1
        history.append("\(verb) \(arguments.map { String($0.prefix(8)) }.joined(separator: " ")) -> \(result.status)")
        switch answer {
        case .success where result.status == 0:
            return result
        case .failure(let status, let name) where result.status == status && result.reason.hasPrefix("\(name): "):
            expectedFailures += 1
            return result
        default:
            fail("\(verb) \(arguments): expected \(answer), got status \(result.status): \(result.reason)")
            throw OutOfStep()
        }
    }

    func pick(_ candidates: [String]) -> String? {
        candidates.isEmpty ? nil : candidates[number(0...candidates.count - 1)]
    }

    func step(_ step: Int) throws {
        let choice = number(0...99)
        let listed = model.listed
        if listed.isEmpty || (choice < 12 && model.nodes.count < Self.maximumNodes) { return try create() }
        if model.nodes.count >= Self.maximumNodes && choice < 62 {
            // Make room: delete an unlocked VDI (or unlock one, so that the next round can).
            guard let vdi = pick(listed.filter { model.nodes[$0]?.locked == false }) else {
                try call("vdi_unlock", [listed[0], user])
                model.nodes[listed[0]]?.locked = false
                return
            }
            return try delete(vdi)
        }
        switch choice {
        case 0..<30: try write()
        case 30..<42: try snapshot(pick(listed)!)
        case 42..<52: try clone(pick(listed)!)
        case 52..<62: try resize(pick(listed)!)
        case 62..<74: try delete(pick(listed)!)
        case 74..<81: try scan()
        case 81..<89: try lockOrUnlock(pick(listed)!)
        case 89..<94: try call("sr_gc", [])
        default: try refused()
        }
    }

    func create() throws {
        let vdi = newUUID()
        let size = number(1...3 * VDITreeModel.block)
        known.insert(vdi)
        try call("vdi_create", [vdi, String(size)])
        model.create(vdi, size: size)
    }

    /// Guest writes as a host does them: attached (so coalescing leaves the VDI alone), written
    /// through the VHD engine in this process, detached.
    func write() throws {
        guard let vdi = pick(model.writable), let size = model.nodes[vdi]?.data.count else { return try create() }
        try call("vdi_attach", [vdi])
        let length = min(number(1...300_000), size)
        let offset = number(0...size - length)
        let bytes = pattern(length, seed: random.next())
        var attempt = 0
        while true {
            do {
                // Opening the chain reads every ancestor by name: a merge of a hidden ancestor
                // elsewhere in the chain (another caller's sr_gc) can rename one in between.
                try VHDChain.open(sr.path(vdi), writable: true).write(at: UInt64(offset), bytes: bytes)
                break
            } catch {
                attempt += 1
                openRetries += 1
                openErrors.append("VDI \(vdi): \(error)")
                if attempt == 3 {
                    fail("writing \(length) bytes at \(offset) of VDI \(vdi): \(error)")
                    throw OutOfStep()
                }
            }
        }
        model.write(vdi, at: offset, bytes)
        history.append("write \(vdi.prefix(8)) \(offset)+\(length)")
        try call("vdi_detach", [vdi])
    }

    func snapshot(_ source: String) throws {
        guard model.chainLength(source) < VDITreeModel.maximumChain else { return try scan() }
        let destination = newUUID()
        known.insert(destination)
        let locked = model.nodes[source]?.locked == true
        let answer: Answer = locked ? .busy : model.hasChildren(source) ? .notPermitted : .success
        try call("vdi_snapshot", [source, destination], expect: answer)
        if answer == .success { model.snapshot(source, as: destination) }
    }

    func clone(_ source: String) throws {
        guard model.chainLength(source) < VDITreeModel.maximumChain else { return try scan() }
        let destination = newUUID()
        known.insert(destination)
        let locked = model.nodes[source]?.locked == true
        try call("vdi_clone", [source, destination], expect: locked ? .busy : .success)
        guard !locked else { return }
        var base: String?
        if !model.hasChildren(source) {
            // The base copy's UUID is generated: the source's new parent names it.
            let parentName = try VHDImage.open(sr.path(source)).header.parentName
            base = String(parentName.dropLast(".vhd".count))
            known.insert(base!)
        }
        model.clone(source, as: destination, base: base)
    }

    func resize(_ vdi: String) throws {
        guard let size = model.nodes[vdi]?.data.count else { return }
        let choice = number(0...99)
        var newSize = min(size + number(1...2 * VDITreeModel.block), Self.maximumSize)
        if choice < 15 && size > VDITreeModel.block { newSize = size - VDITreeModel.block }
        if choice >= 15 && choice < 25 { newSize = size - number(0...VDITreeModel.block - 1) }
        let answer: Answer = model.hasChildren(vdi) ? .notPermitted : VDITreeModel.rounded(newSize) < size ? .invalid : .success
        try call("vdi_resize", [vdi, String(newSize)], expect: answer)
        if answer == .success { model.resize(vdi, to: newSize) }
    }

    func delete(_ vdi: String) throws {
        let locked = model.nodes[vdi]?.locked == true
        try call("vdi_delete", [vdi], expect: locked ? .busy : .success)
        if !locked { model.delete(vdi) }
    }

    /// sr_scan shows exactly this caller's model among its own UUIDs.
    func scan() throws {
        let result = try call("sr_scan", [])
        let differences = model.differences(from: CopyOnWriteSR.parseScan(result.standardOutput), known: known)
        if !differences.isEmpty {
            fail("sr_scan differs from the model: \(differences)")
            throw OutOfStep()
        }
    }

    /// Takes a lock, reasserts it, unlocks, or lets another user try (ENOLCK).
    func lockOrUnlock(_ vdi: String) throws {
        guard let node = model.nodes[vdi] else { return }
        let choice = number(0...99)
        if !node.locked {
            try call("vdi_lock", [vdi, "FALSE", user])
            model.nodes[vdi]?.locked = true
        } else if choice < 50 {
            try call("vdi_unlock", [vdi, user])
            model.nodes[vdi]?.locked = false
        } else if choice < 65 {
            try call("vdi_lock", [vdi, "FALSE", user])
        } else if choice < 85 {
            try call("vdi_lock", [vdi, "FALSE", "intruder-\(index)"], expect: .lockedByOther)
        } else {
            try call("vdi_unlock", [vdi, "intruder-\(index)"], expect: .lockedByOther)
        }
    }

    /// Calls the model says must be refused (or, for a second delete, must succeed and change nothing).
    func refused() throws {
        let gone = known.filter { model.nodes[$0]?.hidden ?? true }.sorted()
        let listed = model.listed
        switch number(0...4) {
        case 0:
            try call("vdi_create", [pick(listed)!, String(VDITreeModel.block)], expect: .exists)
        case 1 where listed.count >= 2:
            let source = pick(listed)!
            let destination = pick(listed.filter { $0 != source })!
            try call(number(0...1) == 0 ? "vdi_snapshot" : "vdi_clone", [source, destination], expect: .exists)
        case 2 where !gone.isEmpty:
            let vdi = pick(gone)!
            switch number(0...2) {
            case 0: try call("vdi_resize", [vdi, String(Self.maximumSize)], expect: .noSuchVDI)
            case 1: try call("vdi_snapshot", [vdi, newUUID()], expect: .noSuchVDI)
            default: try call("vdi_lock", [vdi, "FALSE", user], expect: .noSuchVDI)
            }
        case 3 where !gone.isEmpty:
            try call("vdi_delete", [pick(gone)!])
        default:
            try call("vdi_lock", [newUUID(), "FALSE", user], expect: .noSuchVDI)
        }
    }
}
