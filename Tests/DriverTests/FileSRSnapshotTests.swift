import Foundation
import SMCore
import Testing

/// vdi_snapshot, vdi_clone and vdi_delete of parents on FileSR, through the built binary.
@Suite(.serialized) struct FileSRSnapshotTests {
    /// A snapshot keeps the data under the destination (read-only) and the source continues as
    /// its writable child; writes to the source after it never reach the snapshot.
    @Test(.timeLimit(.minutes(1))) func snapshotSemantics() throws {
        let sr = try CopyOnWriteSR()
        let source = try sr.create()
        let data = pattern(4 << 20, seed: 1)
        try sr.write(source, at: 0, data)
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, source, snapshot)
        let listed = try sr.listed()
        #expect(listed[source]?.parent == snapshot && listed[source]?.readOnly == false)
        #expect(listed[snapshot]?.parent == nil && listed[snapshot]?.readOnly == true)
        try sr.write(source, at: 1000, [1, 2, 3])
        var expected = data
        expected.replaceSubrange(1000..<1003, with: [1, 2, 3])
        #expect(try sr.read(source) == expected)
        #expect(try sr.read(snapshot) == data)
        try sr.expectClean()
    }

    /// A clone turns the source's data into a new read-only "base copy" with the source and the
    /// destination as two independent writable children.
    @Test(.timeLimit(.minutes(1))) func cloneSemantics() throws {
        let sr = try CopyOnWriteSR()
        let source = try sr.create()
        let data = pattern(4 << 20, seed: 2)
        try sr.write(source, at: 0, data)
        let clone = newUUID()
        try sr.expectOK("vdi_clone", sr.sr, source, clone)
        let listed = try sr.listed()
        #expect(listed.count == 3)
        let base = try #require(listed.values.first { $0.label == "base copy" })
        #expect(base.readOnly && base.parent == nil)
        #expect(listed[source]?.parent == base.uuid && listed[clone]?.parent == base.uuid)
        #expect(listed[clone]?.readOnly == false)
        try sr.write(clone, at: 4095, [9, 9])
        #expect(try sr.read(source) == data)
        #expect(try sr.read(base.uuid) == data)
        var expected = data
        expected.replaceSubrange(4095..<4097, with: [9, 9])
        #expect(try sr.read(clone) == expected)
        // A clone of the (immutable) base copy is a new child of it.
        let second = newUUID()
        try sr.expectOK("vdi_clone", sr.sr, base.uuid, second)
        #expect(try sr.listed()[second]?.parent == base.uuid)
        #expect(try sr.read(second) == data)
        try sr.expectClean()
    }

    /// Each documented failure: ENODEV, EEXIST, EBUSY (attached, locked), EPERM (immutable source), with
    /// nothing changed on disk.
    @Test(.timeLimit(.minutes(1))) func snapshotAndCloneErrors() throws {
        let sr = try CopyOnWriteSR()
        let source = try sr.create()
        let other = try sr.create()
        for verb in ["vdi_snapshot", "vdi_clone"] {
            let before = try sr.files()
            #expect(try sr.run(verb, sr.sr, newUUID(), newUUID()).status == 19)
            #expect(try sr.run(verb, sr.sr, source, other).status == 17)
            try sr.expectOK("vdi_attach", sr.sr, source)
            let busy = try sr.run(verb, sr.sr, source, newUUID())
            #expect(busy.status == 16 && busy.reason.hasPrefix("EBUSY:"), "\(busy)")
            try sr.expectOK("vdi_detach", sr.sr, source)
            try sr.expectOK("vdi_lock", sr.sr, source, "FALSE", "agent")
            let locked = try sr.run(verb, sr.sr, source, newUUID())
            #expect(locked.status == 16 && locked.reason.contains("locked"), "\(locked)")
            try sr.expectOK("vdi_unlock", sr.sr, source, "agent")
            #expect(try sr.files() == before)
        }
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, source, snapshot)
        let refused = try sr.run("vdi_snapshot", sr.sr, snapshot, newUUID())
        #expect(refused.status == 1, "\(refused)")
        #expect(try sr.run("vdi_resize", sr.sr, snapshot, String(8 << 20)).status == 1)
        try sr.expectClean()
    }

    /// Deleting a snapshot that the source depends on hides it at once; sr_scan then reports the
    /// nearest listed ancestor; deleting the leaf reclaims the hidden parent with it.
    @Test(.timeLimit(.minutes(1))) func deleteOfParents() throws {
        let sr = try CopyOnWriteSR()
        let vdi = try sr.create()
        let data = pattern(4 << 20, seed: 3)
        try sr.write(vdi, at: 0, data)
        let first = newUUID()
        let second = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, first)
        try sr.write(vdi, at: 0, [7])
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, second)
        try sr.expectOK("vdi_delete", sr.sr, second)
        var listed = try sr.listed()
        #expect(listed[second] == nil && listed[vdi]?.parent == first)
        #expect(try sr.isHidden(second))
        #expect(try sr.run("vdi_attach", sr.sr, second).status == 19)
        try sr.expectOK("vdi_delete", sr.sr, second)
        var expected = data
        expected[0] = 7
        #expect(try sr.read(vdi) == expected)
        try sr.expectClean()
        try sr.expectOK("vdi_delete", sr.sr, vdi)
        listed = try sr.listed()
        #expect(Set(listed.keys) == [first])
        #expect(try sr.files() == [first])
        #expect(try sr.read(first) == data)
        try sr.expectClean()
    }

    /// A chain of 30 VHDs is built and read back exactly, with writes at every level that are
    /// not 4 KiB aligned; the snapshot that would make 31 is EPERM.
    @Test(.timeLimit(.minutes(2))) func thirtyDeepChain() throws {
        let sr = try CopyOnWriteSR()
        let vdi = try sr.create(size: 6 << 20)
        var model = [UInt8](repeating: 0, count: 6 << 20)
        var snapshots: [(String, [UInt8])] = []
        for level in 0..<29 {
            let offset = UInt64(level * 200_003 % (6 << 20 - 5000))
            let bytes = pattern(1 + level * 97, seed: UInt64(level))
            try sr.write(vdi, at: offset, bytes)
            model.replaceSubrange(Int(offset)..<Int(offset) + bytes.count, with: bytes)
            let snapshot = newUUID()
            try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
            snapshots.append((snapshot, model))
        }
        let chain = try VHDChain.open(sr.path(vdi))
        #expect(chain.length == 30)
        #expect(try sr.read(vdi) == model)
        for (snapshot, expected) in snapshots.suffix(3) { #expect(try sr.read(snapshot) == expected) }
        let refused = try sr.run("vdi_snapshot", sr.sr, vdi, newUUID())
        #expect(refused.status == 1 && refused.reason.hasPrefix("EPERM:"), "\(refused)")
        #expect(try sr.run("vdi_clone", sr.sr, vdi, newUUID()).status == 1)
        try sr.expectClean()
    }
}
