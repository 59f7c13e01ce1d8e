import Foundation
import SMCore
import Testing

/// RBDSR killed at every fault point of its multi-step verbs (`FaultPoint.RBD*`; the process
/// SIGKILLs itself there), on the real single-node cluster of `CephCluster`. After each kill:
/// sr_scan at once shows the SR as before the verb or as after it (nothing half-made is listed);
/// the next verbs recover (a killed vdi_clone once the OSDs drop the dead client's watch, which
/// the test cluster makes 10 s); then the SR matches that picture exactly on the cluster (every
/// image and snapshot is a listed VDI or a hidden one something listed needs; no intent record,
/// no mark of a snapshot that is gone), every listed VDI reads its data back, and the SR is
/// usable and deletable to the last object. The cluster's state is read through librbd and
/// librados (python3-rbd, Tests/ceph/rbd-data.py).
@Suite(.serialized) struct RBDSRCrashTests {
    static let length = 1 << 20

    /// The namespace as librbd and librados see it.
    struct ClusterState {
        /// `image` and `image@snapshot` names.
        var names: Set<String>
        var metadata: [String: [String: String]]
        /// Images that are clones (they start with a copy of their parent's metadata).
        var clones: Set<String>
        var omap: [String: String]

        var intents: [String] { omap.keys.filter { $0.hasPrefix("intent.") }.sorted() }
    }

    static func state(_ f: RBDSRFixture) throws -> ClusterState {
        let result = try Product.runProgram("/usr/bin/python3", [CephCluster.dataHelper, f.cluster.configuration, "sm", f.sr, "-", "state"])
        guard result.status == 0 else { throw CephClusterError.command("state: \(result)") }
        let json = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any] ?? [:]
        let images = json["images"] as? [String: [String: Any]] ?? [:]
        var names: Set<String> = []
        var metadata: [String: [String: String]] = [:]
        var clones: Set<String> = []
        for (name, image) in images {
            names.insert(name)
            if image["parent"] as? String != nil { clones.insert(name) }
            for snapshot in image["snapshots"] as? [[String: Any]] ?? [] { names.insert("\(name)@\(snapshot["name"] as? String ?? "")") }
            metadata[name] = image["metadata"] as? [String: String] ?? [:]
        }
        return ClusterState(names: names, metadata: metadata, clones: clones, omap: json["omap"] as? [String: String] ?? [:])
    }

    /// Runs `verb` with `SM_FAULT_POINT=point`; expects it to die of SIGKILL.
    func kill(
        _ f: RBDSRFixture, at point: String, _ verb: String, _ arguments: String...,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        f.scratch.environment["SM_FAULT_POINT"] = point
        defer { f.scratch.environment["SM_FAULT_POINT"] = nil }
        let result = try f.call(verb, arguments)
        #expect(result.status == 128 + 9, "\(verb) at \(point) was not killed: \(result)", sourceLocation: sourceLocation)
    }

    /// sr_scan until no intent record is left (each scan recovers what it can), at most 60 s.
    func settle(_ f: RBDSRFixture, _ point: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: [String: String]]
    {
        let deadline = Date().addingTimeInterval(60)
        while true {
            let scan = try f.scan(sourceLocation: sourceLocation)
            let intents = try Self.state(f).intents
            if intents.isEmpty { return scan }
            guard Date() < deadline else {
                Issue.record("\(point): intents \(intents) still there after 60 s", sourceLocation: sourceLocation)
                return scan
            }
            Thread.sleep(forTimeInterval: 1)
        }
    }

    /// Which of the pictures `listed` is: its VDIs by name, a clone's base copy (a UUID the test
    /// cannot know) as "base". Records an issue and returns nil for neither.
    func match(
        _ listed: [String: [String: String]], _ pictures: [String: Set<String>], _ point: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> String? {
        let base = listed.first { $0.value["label"] == "base copy" }?.key
        let names = Set(listed.keys.map { $0 == base ? "base" : $0 })
        let found = pictures.first { $0.value == names }?.key
        #expect(found != nil, "\(point): sr_scan lists \(names.sorted()), none of \(pictures)", sourceLocation: sourceLocation)
        return found
    }

    /// Nothing leaked: the cluster holds exactly `expected` (names as in `ClusterState`, "base"
    /// standing for the base copy), no intent record, and no mark of a snapshot that is gone
    /// on an image that is not a clone.
    func expectExactly(
        _ f: RBDSRFixture, _ expected: Set<String>, base: String?, _ point: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let state = try Self.state(f)
        let wanted = Set(expected.map { $0.replacingOccurrences(of: "base", with: base ?? "base") })
        #expect(
            state.names == wanted, "\(point): the cluster holds \(state.names.sorted()), expected \(wanted.sorted())",
            sourceLocation: sourceLocation)
        #expect(state.intents.isEmpty, "\(point): intents left \(state.intents)", sourceLocation: sourceLocation)
        // (A clone's copies of its parent's marks name no snapshot of its own; RBDSR ignores them.)
        for (image, metadata) in state.metadata where !state.clones.contains(image) {
            for key in metadata.keys where key.hasPrefix("sm.hidden.") || key.hasPrefix("sm.base-copy.") {
                let snapshot = String(key.split(separator: ".").last ?? "")
                #expect(
                    state.names.contains("\(image)@\(snapshot)"), "\(point): \(image) keeps \(key) of a snapshot that is gone",
                    sourceLocation: sourceLocation)
            }
        }
    }

    func digest(_ f: RBDSRFixture, _ spec: String) throws -> String {
        try f.cluster.digest(namespace: f.sr, image: spec, offset: 0, length: Self.length)
    }

    /// Deletes every listed VDI (clones first), then the SR: nothing of it may be left.
    func expectDeletable(_ f: RBDSRFixture, _ point: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for _ in 0..<4 {
            let listed = try f.scan(sourceLocation: sourceLocation)
            if listed.isEmpty { break }
            // Children before parents: a VDI no other lists as parent goes first.
            let parents = Set(listed.values.compactMap { $0["parent"] })
            for vdi in listed.keys where !parents.contains(vdi) { try f.ok("vdi_delete", f.sr, vdi, sourceLocation: sourceLocation) }
        }
        #expect(try Self.state(f).names.isEmpty, "\(point): images left after deleting every VDI", sourceLocation: sourceLocation)
        try f.ok("sr_detach", f.sr, sourceLocation: sourceLocation)
        try f.ok("sr_delete", f.sr, sourceLocation: sourceLocation)
        let namespaces = try f.cluster.rbdJSON(["namespace", "ls", "sm"]) as? [[String: Any]] ?? []
        #expect(
            !namespaces.contains { $0["name"] as? String == f.sr }, "\(point): the SR's namespace stayed", sourceLocation: sourceLocation)
    }

    /// vdi_clone of an image, killed between its steps (intent, base-copy mark, snapshot, protect,
    /// clone): sr_scan never lists the base copy without the clone; once the dead writer's lock
    /// expires the next verb rolls back (or, after the clone, forgets the finished intent).
    @Test(.timeLimit(.minutes(3)), arguments: FaultPoint.RBDClone.names) func cloneOfImage(point: String) throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let source = try f.createVDI(filledWith: 0x61, length: Self.length)
        let clone = newUUID()
        let data = try CephCluster.digest(of: 0x61, length: Self.length)
        try kill(f, at: point, "vdi_clone", f.sr, source, clone)
        let pictures: [String: Set<String>] = ["before": [source], "after": [source, clone, "base"]]
        _ = match(try f.scan(), pictures, point)

        let listed = try settle(f, point)
        let picture = try #require(match(listed, pictures, point))
        let base = listed.first { $0.value["label"] == "base copy" }?.key
        try expectExactly(f, picture == "before" ? [source] : [source, "\(source)@base", clone], base: base, point)
        #expect(try digest(f, source) == data, "\(point): the source")
        if let base {
            #expect(try digest(f, clone) == data, "\(point): the clone")
            #expect(try digest(f, "\(source)@\(base)") == data, "\(point): the base copy")
            #expect(listed[source]?["parent"] == base && listed[clone]?["parent"] == base)
        } else {
            #expect(listed[source]?["parent"] == nil, "\(point): the source reports no parent")
        }
        // The verb works again, with the same destination when it was rolled back.
        try f.cluster.write(namespace: f.sr, image: source, offset: 0, value: 0x62, length: Self.length)
        let again = picture == "before" ? clone : newUUID()
        try f.ok("vdi_clone", f.sr, source, again)
        #expect(try digest(f, again) == CephCluster.digest(of: 0x62, length: Self.length))
        try expectDeletable(f, point)
    }

    /// A vdi_clone under way (paused at a fault point by `SM_FAULT_PAUSE`) is not taken for a
    /// dead one: sr_scan on another host meanwhile lists the SR as before, without waiting for
    /// it, and leaves its intent alone; the paused one then finishes.
    @Test(.timeLimit(.minutes(3))) func liveCloneIsNotRolledBack() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let source = try f.createVDI(filledWith: 0x68, length: Self.length)
        let clone = newUUID()
        let paused = Process()
        paused.executableURL = URL(fileURLWithPath: Product.path("RBDSR"))
        paused.arguments = [f.dconf, "vdi_clone", f.sr, source, clone]
        paused.environment = ProcessInfo.processInfo.environment.merging(f.scratch.environment) { $1 }
            .merging(["SM_FAULT_PAUSE": "rbd-clone.snapshot-created:30"]) { $1 }
        paused.standardOutput = FileHandle.nullDevice
        try paused.run()
        let deadline = Date().addingTimeInterval(30)
        while try Self.state(f).names.count < 2, Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        #expect(try Self.state(f).names.count == 2, "the paused clone made its base copy snapshot")
        // Another host (its own run and lock directories: on this one the clone holds the SR's host lock).
        let other = try Scratch("rbdsr-other-host")
        #expect(try Product.run("RBDSR", [f.dconf, "sr_attach", f.sr], environment: other.environment).status == 0)
        let start = Date()
        let scanned = try Product.run("RBDSR", [f.dconf, "sr_scan", f.sr], environment: other.environment)
        #expect(Date().timeIntervalSince(start) < 10, "sr_scan does not wait for the clone's claim")
        #expect(scanned.status == 0, "\(scanned)")
        let listed = Dictionary(
            uniqueKeysWithValues: try ResultXML(scanned.standardOutput).vdis.map { ($0.fields["uuid"] ?? "", $0.fields) })
        #expect(listed.keys.sorted() == [source], "a clone under way shows nothing yet: \(listed.keys.sorted())")
        #expect(try Self.state(f).intents == ["intent.\(clone)"], "sr_scan left the live clone's intent alone")
        #expect(paused.isRunning, "the clone was still paused while the checks above ran (else they proved nothing)")
        paused.waitUntilExit()
        #expect(paused.terminationStatus == 0, "the paused clone finished")
        let after = try f.scan()
        let base = try #require(after.first { $0.value["label"] == "base copy" }?.key)
        #expect(Set(after.keys) == [source, clone, base])
        try expectExactly(f, [source, "\(source)@base", clone], base: base, "live")
        #expect(try digest(f, clone) == CephCluster.digest(of: 0x68, length: Self.length))
        try expectDeletable(f, "live")
    }

    /// vdi_clone of a snapshot VDI, killed after protecting the snapshot (before the clone).
    @Test(.timeLimit(.minutes(3)), arguments: FaultPoint.RBDCloneOfSnapshot.names) func cloneOfSnapshot(point: String) throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let source = try f.createVDI(filledWith: 0x63, length: Self.length)
        let snapshot = newUUID()
        let clone = newUUID()
        try f.ok("vdi_snapshot", f.sr, source, snapshot)
        try kill(f, at: point, "vdi_clone", f.sr, snapshot, clone)
        let listed = try settle(f, point)
        #expect(match(listed, ["before": [source, snapshot]], point) == "before")
        try expectExactly(f, [source, "\(source)@\(snapshot)"], base: nil, point)
        #expect(try digest(f, "\(source)@\(snapshot)") == CephCluster.digest(of: 0x63, length: Self.length))
        try f.ok("vdi_clone", f.sr, snapshot, clone)
        #expect(try digest(f, clone) == CephCluster.digest(of: 0x63, length: Self.length))
        try expectDeletable(f, point)
    }

    /// vdi_snapshot killed after writing the snapshot index entry: no snapshot, nothing listed;
    /// the same destination can be snapshotted (or created) afterwards.
    @Test(.timeLimit(.minutes(3)), arguments: FaultPoint.RBDSnapshot.names) func snapshot(point: String) throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let source = try f.createVDI(filledWith: 0x64, length: Self.length)
        let snapshot = newUUID()
        try kill(f, at: point, "vdi_snapshot", f.sr, source, snapshot)
        let listed = try settle(f, point)
        #expect(match(listed, ["before": [source]], point) == "before")
        try expectExactly(f, [source], base: nil, point)
        try f.ok("vdi_snapshot", f.sr, source, snapshot)
        try f.cluster.write(namespace: f.sr, image: source, offset: 0, value: 0x65, length: Self.length)
        #expect(try digest(f, "\(source)@\(snapshot)") == CephCluster.digest(of: 0x64, length: Self.length))
        try expectDeletable(f, point)
    }

    /// vdi_delete of the last clone of a hidden snapshot of a hidden image, killed between
    /// removing the clone and reclaiming its hidden ancestors: the next verb finishes the reclaim.
    @Test(.timeLimit(.minutes(3)), arguments: FaultPoint.RBDDelete.names) func deleteOfClone(point: String) throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let source = try f.createVDI(filledWith: 0x66, length: Self.length)
        let snapshot = newUUID()
        let clone = newUUID()
        try f.ok("vdi_snapshot", f.sr, source, snapshot)
        try f.ok("vdi_clone", f.sr, snapshot, clone)
        try f.ok("vdi_delete", f.sr, snapshot)
        try f.ok("vdi_delete", f.sr, source)
        try kill(f, at: point, "vdi_delete", f.sr, clone)
        let pictures: [String: Set<String>] = ["before": [clone], "after": []]
        _ = match(try f.scan(), pictures, point)
        let listed = try settle(f, point)
        let picture = match(listed, pictures, point)
        try expectExactly(f, picture == "before" ? [source, "\(source)@\(snapshot)", clone] : [], base: nil, point)
        if picture == "before" { #expect(try digest(f, clone) == CephCluster.digest(of: 0x66, length: Self.length)) }
        try expectDeletable(f, point)
    }

    /// vdi_delete of a snapshot VDI whose image was deleted (hidden), killed between its steps:
    /// the next verb removes the snapshot's marks, index entry and the hidden image.
    @Test(.timeLimit(.minutes(3)), arguments: FaultPoint.RBDDelete.names) func deleteOfSnapshot(point: String) throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let source = try f.createVDI(filledWith: 0x67, length: Self.length)
        let snapshot = newUUID()
        try f.ok("vdi_snapshot", f.sr, source, snapshot)
        try f.ok("vdi_delete", f.sr, source)
        try kill(f, at: point, "vdi_delete", f.sr, snapshot)
        let pictures: [String: Set<String>] = ["before": [snapshot], "after": []]
        _ = match(try f.scan(), pictures, point)
        let listed = try settle(f, point)
        let picture = match(listed, pictures, point)
        try expectExactly(f, picture == "before" ? [source, "\(source)@\(snapshot)"] : [], base: nil, point)
        let index = try Self.state(f).omap.keys.filter { $0.hasPrefix("snapshot.") }
        #expect(picture == "before" || index.isEmpty, "\(point): index entries left \(index)")
        if picture == "before" {
            #expect(try digest(f, "\(source)@\(snapshot)") == CephCluster.digest(of: 0x67, length: Self.length))
        }
        try expectDeletable(f, point)
    }

    /// sr_create killed between the namespace and the marker: the SR does not exist (ENODEV);
    /// sr_delete removes the namespace, and sr_create again completes it.
    @Test(.timeLimit(.minutes(3)), arguments: FaultPoint.RBDSRCreate.names) func srCreate(point: String) throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        func namespaceExists() throws -> Bool {
            let namespaces = try f.cluster.rbdJSON(["namespace", "ls", "sm"]) as? [[String: Any]] ?? []
            return namespaces.contains { $0["name"] as? String == f.sr }
        }
        try kill(f, at: point, "sr_create", f.sr, "0")
        #expect(try namespaceExists())
        try f.fails(19, "ENODEV", "sr_attach", f.sr)
        try f.ok("sr_delete", f.sr)
        #expect(try !namespaceExists(), "\(point): sr_delete removed the half-made SR")
        try kill(f, at: point, "sr_create", f.sr, "0")
        try f.ok("sr_create", f.sr, "0")
        try f.ok("sr_attach", f.sr)
        #expect(try f.scan().isEmpty)
        try expectDeletable(f, point)
    }

    /// sr_delete killed after its sweep or after removing the marker: sr_delete again finishes.
    @Test(.timeLimit(.minutes(3)), arguments: FaultPoint.RBDSRDelete.names) func srDelete(point: String) throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "4194304")
        try f.ok("vdi_delete", f.sr, vdi)
        try f.ok("sr_detach", f.sr)
        try kill(f, at: point, "sr_delete", f.sr)
        try f.ok("sr_delete", f.sr)
        let namespaces = try f.cluster.rbdJSON(["namespace", "ls", "sm"]) as? [[String: Any]] ?? []
        #expect(!namespaces.contains { $0["name"] as? String == f.sr }, "\(point): the SR's namespace stayed")
        try f.fails(19, "ENODEV", "sr_attach", f.sr)
    }
}
