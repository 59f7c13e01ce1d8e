import Foundation
import SMCore
import Testing

/// Coalescing and reclaiming decide from the SR's tree, which cannot see the parent of a VHD
/// whose footers are unreadable. Such a file may be a child of any hidden VDI: removing or
/// merging away a hidden VDI then would cut it from its data for good.
@Suite(.serialized) struct CoalesceDamagedTests {
    /// Both footers of a VHD made unreadable (header, BAT and data intact: repairable).
    func damageFooters(_ path: String) throws {
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        let garbage = Data(repeating: 0x5A, count: 512)
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: garbage)
        try handle.seek(toOffset: try handle.seekToEnd() - 512)
        try handle.write(contentsOf: garbage)
        try handle.close()
    }

    @Test(.timeLimit(.minutes(1))) func hiddenParentOfADamagedChildIsKept() throws {
        let sr = try CopyOnWriteSR()
        let vdi = try sr.create()
        try sr.write(vdi, at: 0, pattern(4 << 20, seed: 21))
        let parent = newUUID()
        let sibling = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, parent)
        try sr.expectOK("vdi_clone", sr.sr, parent, sibling)  // a second child of the snapshot
        try sr.write(vdi, at: 0, pattern(1 << 20, seed: 22))
        try sr.expectOK("vdi_delete", sr.sr, parent)  // hidden: it has two children
        #expect(try sr.isHidden(parent))
        try damageFooters(sr.path(sibling))
        // sr_gc sees one readable child; merging the parent into it would take the parent file away.
        try sr.run("sr_gc", sr.sr)
        #expect(try sr.files().contains(parent))
        // Deleting the readable child must not reclaim the parent either.
        try sr.expectOK("vdi_delete", sr.sr, vdi)
        try sr.run("sr_gc", sr.sr)
        #expect(try sr.files().contains(parent))
    }
}
