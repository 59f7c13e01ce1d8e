import Foundation
import SMCore
import Testing

/// Power cuts in the middle of snapshot, clone, delete and coalesce: the process SIGKILLs
/// itself at each named fault point in turn; the next call (sr_scan) recovers, after which every
/// listed VDI reads exactly as before or exactly as after the operation, nothing is left over,
/// and sr_check is clean.
@Suite(.serialized) struct CrashTests {
    typealias Model = [String: [UInt8]]

    /// Runs `verb` with the fault point armed, expects SIGKILL, recovers, and checks the SR
    /// against `before` or `after`; returns which one it matched.
    @discardableResult
    func crash(
        _ sr: CopyOnWriteSR, _ point: some NamedFaultPoint, _ verb: String, _ arguments: [String], before: Model,
        after: Model, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Model {
        let killed = try sr.run(verb, arguments, environment: ["SM_FAULT_POINT": point.rawValue])
        #expect(killed.status == 128 + 9, "\(verb) at \(point): \(killed)", sourceLocation: sourceLocation)
        let listed = try sr.listed(sourceLocation: sourceLocation)
        let keys = Set(listed.keys)
        // A clone's base copy has a UUID we cannot know in advance: match it by label.
        var matched: Model?
        for candidate in [before, after] {
            var expected = Set(candidate.keys)
            if let base = listed.values.first(where: { $0.label == "base copy" }), candidate["base"] != nil {
                expected.remove("base")
                expected.insert(base.uuid)
            }
            if keys == expected { matched = candidate }
        }
        let mismatch = "\(point): listed \(keys.sorted()) is neither before \(before.keys.sorted()) nor after \(after.keys.sorted())"
        let model = try #require(matched, Comment(rawValue: mismatch), sourceLocation: sourceLocation)
        for (vdi, entry) in listed {
            let expected = model[vdi] ?? (entry.label == "base copy" ? model["base"] : nil)
            #expect(try sr.read(vdi) == expected, "\(point): VDI \(vdi) reads wrong data", sourceLocation: sourceLocation)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: sr.root).filter { $0.hasPrefix(".") && $0 != ".sm" }
        #expect(leftovers.isEmpty, "\(point): left \(leftovers)", sourceLocation: sourceLocation)
        let journal = (try? FileManager.default.contentsOfDirectory(atPath: "\(sr.root)/.sm/journal")) ?? []
        #expect(journal.isEmpty, "\(point): journal still holds \(journal)", sourceLocation: sourceLocation)
        try sr.expectClean(sourceLocation: sourceLocation)
        return model
    }

    func populated() throws -> (CopyOnWriteSR, String, [UInt8]) {
        let sr = try CopyOnWriteSR("sm-crash")
        let vdi = try sr.create()
        let data = pattern(4 << 20, seed: 40)
        try sr.write(vdi, at: 0, data)
        return (sr, vdi, data)
    }

    /// Snapshot killed at every step.
    @Test(.timeLimit(.minutes(1)), arguments: FaultPoint.Snapshot.allCases) func snapshot(point: FaultPoint.Snapshot) throws {
        let (sr, vdi, data) = try populated()
        let snapshot = newUUID()
        let model = try crash(
            sr, point, "vdi_snapshot", [sr.sr, vdi, snapshot], before: [vdi: data],
            after: [vdi: data, snapshot: data])
        // Whatever happened, the VDIs still work: write to the source, snapshot it again.
        try sr.write(vdi, at: 0, [1])
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, newUUID())
        if model[snapshot] != nil { #expect(try sr.read(snapshot) == data) }
        try sr.expectClean()
    }

    /// Clone killed at every step.
    @Test(.timeLimit(.minutes(1)), arguments: FaultPoint.Clone.allCases) func clone(point: FaultPoint.Clone) throws {
        let (sr, vdi, data) = try populated()
        let clone = newUUID()
        try crash(sr, point, "vdi_clone", [sr.sr, vdi, clone], before: [vdi: data], after: [vdi: data, clone: data, "base": data])
    }

    /// Delete of a parent (hiding) and of a leaf (with its hidden parent reclaimed), killed at every step.
    @Test(.timeLimit(.minutes(1)), arguments: FaultPoint.Delete.allCases) func delete(point: FaultPoint.Delete) throws {
        let (sr, vdi, data) = try populated()
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        if [.journaled, .hidden].contains(point) {
            try crash(sr, point, "vdi_delete", [sr.sr, snapshot], before: [vdi: data, snapshot: data], after: [vdi: data])
        }
        if point != .hidden {
            try sr.expectOK("vdi_delete", sr.sr, snapshot)
            try crash(sr, point, "vdi_delete", [sr.sr, vdi], before: [vdi: data], after: [:])
            #expect(try sr.files().isEmpty || sr.listed()[vdi] != nil)
        }
    }

    /// Delete of a leaf whose parent is visible: one unlink and no record. Killed right after the
    /// unlink, the VDI is gone and nothing needs recovery; the snapshot it left (read-only, now
    /// a leaf) deleted the same way leaves its attribute file behind, which a VDI created again
    /// under that UUID must not take (it would be read-only).
    @Test(.timeLimit(.minutes(1))) func deleteOfALeafWithAVisibleParent() throws {
        let (sr, vdi, data) = try populated()
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        #expect(try sr.listed()[snapshot]?.readOnly == true)
        _ = try crash(
            sr, FaultPoint.Delete.unlinked, "vdi_delete", [sr.sr, vdi], before: [vdi: data, snapshot: data], after: [snapshot: data])
        try sr.expectClean()
        _ = try crash(sr, FaultPoint.Delete.unlinked, "vdi_delete", [sr.sr, snapshot], before: [snapshot: data], after: [:])
        #expect(FileManager.default.fileExists(atPath: "\(sr.root)/.sm/vdi/\(snapshot)"), "the crash leaves the attributes")
        #expect(try sr.files().isEmpty)
        try sr.expectClean()
        try sr.expectOK("vdi_create", sr.sr, snapshot, String(4 << 20))
        #expect(try sr.listed()[snapshot]?.readOnly == false)
        #expect(!FileManager.default.fileExists(atPath: "\(sr.root)/.sm/vdi/\(snapshot)"))
        #expect(try sr.read(snapshot) == [UInt8](repeating: 0, count: 4 << 20))
    }

    /// Coalescing killed at every step: before and after read the same, and the next sr_gc finishes.
    @Test(.timeLimit(.minutes(1)), arguments: FaultPoint.Coalesce.allCases) func coalesce(point: FaultPoint.Coalesce) throws {
        let (sr, vdi, _) = try populated()
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        try sr.write(vdi, at: 3 << 20, pattern(1 << 20, seed: 41))
        try sr.write(vdi, at: 100, [5, 5, 5])
        let expected = try sr.read(vdi)
        try sr.expectOK("vdi_delete", sr.sr, snapshot)
        try crash(sr, point, "sr_gc", [sr.sr], before: [vdi: expected], after: [vdi: expected])
        try sr.expectOK("sr_gc", sr.sr)
        #expect(try sr.files() == [vdi])
        #expect(try sr.read(vdi) == expected)
        try sr.expectClean()
    }
}
