import Foundation
import SMCore
import Testing

/// Power cuts at random instants rather than at named fault points: each operation (vdi_create,
/// vdi_snapshot, vdi_clone, vdi_resize, vdi_delete of leaves and parents, sr_gc) runs as a child
/// process that is SIGKILLed after a random delay, calibrated on how long that verb takes so
/// that many kills land inside the operation. The next verb (sr_scan) recovers; then the SR
/// must be the model's state before or after the operation (`VDITreeModel`), every listed VDI
/// must read exactly that state's bytes, nothing may be left over, and sr_check must be clean.
///
/// `SM_KILL_ITERATIONS` (default 40), `SM_KILL_SEED` replays a run. After a failure the run
/// goes on with a fresh SR, so that a long run counts how often each failure happens.
@Suite(.serialized) struct RandomKillTests {
    /// Whatever instant a verb dies at, the next verb finds the SR as before or as after it.
    @Test(.timeLimit(.minutes(30))) func killedAtRandomInstants() throws {
        let environment = ProcessInfo.processInfo.environment
        let iterations = Int(environment["SM_KILL_ITERATIONS"] ?? "") ?? 40
        let seed = UInt64(environment["SM_KILL_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64(UInt32.max))
        print("kill: SM_KILL_SEED=\(seed), \(iterations) iterations")
        var run = try KillRun(seed: seed)
        let start = Date()
        for iteration in 0..<iterations {
            if try !run.iteration(iteration) { run = try run.afresh() }
        }
        let seconds = Date().timeIntervalSince(start)
        let figures = run.figures
        print(
            "kill: seed \(seed): \(iterations) iterations in " + String(format: "%.1f", seconds) + " s; "
                + "\(figures.killedRunning) killed while running, \(figures.completed) had exited (\(figures.unkilled) left to finish); "
                + "\(figures.leftWork) left work for recovery (journal or temporary files); after-state \(figures.after), "
                + "before-state \(figures.before) of those killed; stale lock mutexes \(figures.staleMutexes), links \(figures.staleLinks); "
                + "\(figures.deepReclaims) leaf deletes with two hidden ancestors; "
                + "\(run.failures.count) failures")
        for (verb, count) in figures.killedByVerb.sorted(by: { $0.key < $1.key }) {
            print("kill:   \(verb): \(count) killed while running, \(figures.leftWorkByVerb[verb, default: 0]) left work")
        }
        for failure in run.failures { print("kill: FAILURE \(failure)") }
        #expect(run.failures.isEmpty, "seed \(seed): \(run.failures.count) failures, first: \(run.failures.prefix(3))")
    }
}

/// The state of one random-kill run: an SR, its model, the figures.
struct KillRun {
    struct Figures {
        var killedRunning = 0, completed = 0, unkilled = 0, leftWork = 0, after = 0, before = 0
        /// Lock protocol files a killed vdi_lock/vdi_unlock left (the mutex and the link heal
        /// themselves: LOCK-UTIL.md's 30 s stale mutex; the link on the owner's next lock).
        var staleMutexes = 0, staleLinks = 0
        /// Leaf deletes set up to reclaim two hidden ancestors (`prepareDeepReclaim`).
        var deepReclaims = 0
        var killedByVerb: [String: Int] = [:]
        var leftWorkByVerb: [String: Int] = [:]
    }

    let seed: UInt64
    var random: SeededGenerator
    let sr: CopyOnWriteSR
    var model = VDITreeModel()
    var figures = Figures()
    var failures: [String] = []
    /// How long each verb takes unkilled (process start to exit), in microseconds.
    var durations: [String: Double] = [:]
    var startup: Double = 0
    var history: [String] = []

    static let maximumListed = 6
    static let user = "agent"
    static let maximumSize = 3 * VDITreeModel.block

    init(
        seed: UInt64, random: SeededGenerator? = nil, figures: Figures = Figures(), failures: [String] = [],
        durations: [String: Double] = [:]
    ) throws {
        self.seed = seed
        self.random = random ?? SeededGenerator(seed: seed)
        self.figures = figures
        self.failures = failures
        self.durations = durations
        sr = try CopyOnWriteSR("sm-kill")
        for _ in 0..<3 { try create(size: VDITreeModel.block) }
        if durations.isEmpty {
            let begin = Date()
            try sr.run("sr_scan", sr.sr)
            startup = Date().timeIntervalSince(begin) * 1_000_000
        }
    }

    /// The same run going on with a fresh SR (after a failure left the old one unknown).
    func afresh() throws -> KillRun {
        var next = try KillRun(seed: seed, random: random, figures: figures, failures: failures, durations: durations)
        next.startup = startup
        return next
    }

    mutating func number(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }

    mutating func pick(_ candidates: [String]) -> String? {
        candidates.isEmpty ? nil : candidates[number(0...candidates.count - 1)]
    }

    mutating func create(size: Int) throws {
        let vdi = newUUID()
        try sr.expectOK("vdi_create", sr.sr, vdi, String(size))
        model.create(vdi, size: size)
        try write(vdi)
    }

    /// Guest data, written in this process while no verb runs.
    mutating func write(_ vdi: String) throws {
        guard let size = model.nodes[vdi]?.data.count else { return }
        let length = min(number(1...600_000), size)
        let offset = number(0...size - length)
        let bytes = pattern(length, seed: random.next())
        try sr.write(vdi, at: UInt64(offset), bytes)
        model.write(vdi, at: offset, bytes)
    }

    /// One operation and what it must leave: verb, arguments, the model after it.
    struct Operation {
        var verb: String
        var arguments: [String]
        var after: (_ listed: [String: CopyOnWriteSR.Listed]) -> VDITreeModel
        var resized: String?
    }

    mutating func chooseOperation() -> Operation {
        let listed = model.listed
        // A locked VDI cannot be snapshot, cloned or deleted (EBUSY); it can be resized and unlocked.
        let unlocked = listed.filter { model.nodes[$0]?.locked == false }
        let leaves = listed.filter { !model.hasChildren($0) }
        let short = unlocked.filter { model.chainLength($0) < VDITreeModel.maximumChain - 1 }
        let before = model
        while true {
            switch number(0...99) {
            case 0..<15 where listed.count < Self.maximumListed:
                let vdi = newUUID()
                let size = number(1...VDITreeModel.block + 1)
                return Operation(verb: "vdi_create", arguments: [vdi, String(size)]) { _ in
                    var after = before
                    after.create(vdi, size: size)
                    return after
                }
            case 15..<32 where listed.count < Self.maximumListed && leaves.contains(where: short.contains):
                let source = pick(leaves.filter(short.contains))!
                let destination = newUUID()
                return Operation(verb: "vdi_snapshot", arguments: [source, destination]) { _ in
                    var after = before
                    after.snapshot(source, as: destination)
                    return after
                }
            case 32..<47 where listed.count < Self.maximumListed && !short.isEmpty:
                let source = pick(short)!
                let destination = newUUID()
                return Operation(verb: "vdi_clone", arguments: [source, destination]) { listed in
                    var after = before
                    // The base copy's UUID is generated: the one new listed VDI besides the destination.
                    let base =
                        before.hasChildren(source)
                        ? nil
                        : listed.keys.first { before.nodes[$0] == nil && $0 != destination } ?? "no-base-copy-listed"
                    after.clone(source, as: destination, base: base)
                    return after
                }
            case 47..<60 where !leaves.isEmpty:
                let vdi = pick(leaves)!
                let size = before.nodes[vdi]!.data.count
                guard size < Self.maximumSize else { continue }
                let newSize = size + number(1...Self.maximumSize - size)
                return Operation(
                    verb: "vdi_resize", arguments: [vdi, String(newSize)],
                    after: { _ in
                        var after = before
                        after.resize(vdi, to: newSize)
                        return after
                    }, resized: vdi)
            case 60..<85 where !unlocked.isEmpty:
                var vdi = pick(unlocked)!
                if number(0...3) == 0, let leaf = pick(leaves.filter(short.contains)), (try? prepareDeepReclaim(leaf)) != nil {
                    vdi = leaf
                }
                let before = model
                return Operation(verb: "vdi_delete", arguments: [vdi]) { _ in
                    var after = before
                    after.delete(vdi)
                    return after
                }
            case 85..<93 where !listed.isEmpty:
                let vdi = pick(listed)!
                let locked = before.nodes[vdi]!.locked
                return Operation(
                    verb: locked ? "vdi_unlock" : "vdi_lock",
                    arguments: locked ? [vdi, Self.user] : [vdi, "FALSE", Self.user]
                ) { _ in
                    var after = before
                    after.nodes[vdi]?.locked = !locked
                    return after
                }
            case 93..<100:
                return Operation(verb: "sr_gc", arguments: []) { _ in before }
            default:
                continue
            }
        }
    }

    /// Gives `leaf` two hidden ancestors with one child each (snapshot twice, delete both
    /// snapshots; unkilled), so that deleting it must reclaim both: a kill between the two
    /// reclaims must still leave no hidden VDI without children.
    mutating func prepareDeepReclaim(_ leaf: String) throws {
        for _ in 0..<2 {
            let snapshot = newUUID()
            guard try sr.run("vdi_snapshot", sr.sr, leaf, snapshot).status == 0 else { throw CocoaError(.featureUnsupported) }
            model.snapshot(leaf, as: snapshot)
            guard try sr.run("vdi_delete", sr.sr, snapshot).status == 0 else { throw CocoaError(.featureUnsupported) }
            model.delete(snapshot)
        }
        figures.deepReclaims += 1
        history.append("two hidden ancestors under \(leaf.prefix(8))")
    }

    /// One operation, killed (or, one time in ten, left to finish), then recovered and checked.
    /// False when a check failed (the run goes on with a fresh SR).
    mutating func iteration(_ iteration: Int) throws -> Bool {
        if number(0...99) < 40, let vdi = pick(model.writable) { try write(vdi) }
        if model.listed.isEmpty { try create(size: VDITreeModel.block) }
        let operation = chooseOperation()
        let verb = operation.verb
        let estimate = durations[verb] ?? startup * 1.5
        let delay: Double? = number(0...9) == 0 ? nil : Double(number(0...1000)) / 1000 * estimate * 1.2
        let errorFile = sr.scratch.path("stderr")
        let begin = Date()
        let child = try SpawnedProduct.start(
            Product.path("FileSR"), [sr.dconf, verb, sr.sr] + operation.arguments,
            environment: sr.scratch.environment, errorFile: errorFile)
        var running = false
        var status: Int32
        if let delay {
            usleep(UInt32(delay))
            (running, status) = child.kill()
        } else {
            status = child.wait()
            figures.unkilled += 1
            let elapsed = Date().timeIntervalSince(begin) * 1_000_000
            durations[verb] = durations[verb].map { 0.7 * $0 + 0.3 * elapsed } ?? elapsed
        }
        let context =
            "seed \(seed) iteration \(iteration): \(verb) \(operation.arguments.map { $0.prefix(8) }) "
            + (delay.map { "killed after \(Int($0)) us" } ?? "unkilled") + " after [\(history.suffix(3).joined(separator: "; "))]"
        history.append(
            "\(verb) \(operation.arguments.map { $0.prefix(8) }.joined(separator: " "))"
                + (running ? " killed" : " exited \(status)"))
        if running {
            figures.killedRunning += 1
            figures.killedByVerb[verb, default: 0] += 1
            if verb == "vdi_lock" || verb == "vdi_unlock" {
                // Stand in for the 30 s after which the next locker removes a dead caller's mutex
                // (and the owner's next lock replaces its link): remove both, count them.
                let mutex = sr.path(operation.arguments[0]) + ".xenlk"
                if FileManager.default.fileExists(atPath: mutex) {
                    figures.staleMutexes += 1
                    try FileManager.default.removeItem(atPath: mutex)
                }
                for name in try FileManager.default.contentsOfDirectory(atPath: sr.root)
                where name.hasPrefix(operation.arguments[0] + ".vhd.xenlk.") && (name.hasSuffix(".xw") || name.hasSuffix(".xr")) {
                    figures.staleLinks += 1
                    try FileManager.default.removeItem(atPath: "\(sr.root)/\(name)")
                }
            }
            let work = sr.leftovers()
            if !work.isEmpty {
                figures.leftWork += 1
                figures.leftWorkByVerb[verb, default: 0] += 1
            }
        } else {
            figures.completed += 1
            if status != 0 {
                let reason = (try? String(contentsOfFile: errorFile, encoding: .utf8))?.split(separator: "\n").last ?? ""
                return fail(context, "exited with status \(status): \(reason)")
            }
        }

        // The next verb recovers.
        let scan = try sr.run("sr_scan", sr.sr)
        guard scan.status == 0 else { return fail(context, "sr_scan after the kill: \(scan.reason)") }
        let listed = CopyOnWriteSR.parseScan(scan.standardOutput)
        let after = operation.after(listed)
        let beforeDifferences = model.differences(from: listed)
        let afterDifferences = after.differences(from: listed)
        let matched: VDITreeModel
        if afterDifferences.isEmpty {
            matched = after
            if running { figures.after += 1 }
        } else if beforeDifferences.isEmpty && running {
            matched = model
            figures.before += 1
        } else {
            return fail(context, "the SR is neither as before (\(beforeDifferences)) nor as after (\(afterDifferences))")
        }
        for vdi in matched.listed {
            let data = try? sr.read(vdi)
            guard data == matched.nodes[vdi]?.data else {
                return fail(
                    context,
                    "VDI \(vdi) reads \(data == nil ? "nothing (error)" : "other bytes") than the model "
                        + (vdi == operation.resized
                            ? "(the resized VDI)" : operation.arguments.contains(vdi) ? "(the operation's VDI)" : "(untouched)"))
            }
        }
        if let vdi = operation.resized {
            let sizes = try VHDOracle.footerSizes(sr.path(vdi))
            let size = UInt64(matched.nodes[vdi]?.data.count ?? 0)
            guard sizes.end == size && sizes.copy == size else {
                return fail(
                    context, "resized VDI \(vdi) reads \(size) bytes but its footers say \(sizes.end) (end) and \(sizes.copy) (copy)")
            }
        }
        let strangers = Set(try sr.files()).subtracting(matched.nodes.keys)
        guard strangers.isEmpty else {
            let described = strangers.sorted().map { "\($0)\((try? sr.isHidden($0)) == true ? " (hidden)" : "")" }
            return fail(context, "VHD files the model does not know: \(described)")
        }
        let leftovers = sr.leftovers()
        guard leftovers.isEmpty else { return fail(context, "left over after recovery: \(leftovers)") }
        let check = try sr.run("sr_check", sr.sr)
        guard check.status == 0 else {
            let problems = check.standardOutput.components(separatedBy: "<message>").dropFirst()
                .map { $0.components(separatedBy: "</message>")[0] }
            return fail(context, "sr_check: \(problems.isEmpty ? [check.reason] : problems)")
        }
        model = matched
        return true
    }

    mutating func fail(_ context: String, _ message: String) -> Bool {
        failures.append("\(context): \(message)")
        return false
    }
}
