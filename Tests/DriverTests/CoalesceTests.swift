import Foundation
import SMCore
import Testing

/// Coalescing on FileSR: sr_gc in the foreground and the worker vdi_delete starts.
@Suite(.serialized) struct CoalesceTests {
    /// A deleted snapshot (hidden, one child) is merged into its child's place: the chain loses
    /// a link, the hidden file and its space go, and every listed VDI reads the same bytes.
    @Test(.timeLimit(.minutes(1))) func coalesceShortensTheChain() throws {
        let sr = try CopyOnWriteSR()
        let vdi = try sr.create(size: 8 << 20)
        let base = pattern(8 << 20, seed: 10)
        try sr.write(vdi, at: 0, base)
        let keep = newUUID()
        let doomed = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, keep)
        try sr.write(vdi, at: 3 << 20, pattern(1 << 20, seed: 11))
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, doomed)
        try sr.write(vdi, at: 777, pattern(5000, seed: 12))
        let expected = try sr.read(vdi)
        let expectedKeep = try sr.read(keep)
        try sr.expectOK("vdi_delete", sr.sr, doomed)
        #expect(try VHDChain.open(sr.path(vdi)).length == 3)
        try sr.expectOK("sr_gc", sr.sr)
        #expect(try sr.files() == [keep, vdi].sorted())
        #expect(try VHDChain.open(sr.path(vdi)).length == 2)
        #expect(try sr.read(vdi) == expected)
        #expect(try sr.read(keep) == expectedKeep)
        #expect(try sr.listed()[vdi]?.parent == keep)
        try sr.expectClean()
        // Deleting the last snapshot merges the leaf into the base: one file remains.
        try sr.expectOK("vdi_delete", sr.sr, keep)
        try sr.expectOK("sr_gc", sr.sr)
        #expect(try sr.files() == [vdi])
        #expect(try VHDChain.open(sr.path(vdi)).length == 1)
        #expect(try sr.read(vdi) == expected)
        try sr.expectClean()
    }

    /// A merged child of 32 MiB or more is closed for the last time by a keeper after sr_gc has
    /// exited (its page cache and blocks are freed outside the call): the keeper ends with
    /// sr_gc, so no process holds the replaced file a moment later, and the data is as before.
    @Test(.timeLimit(.minutes(1))) func largeMergedChildIsFreedOnceTheCallHasEnded() throws {
        let sr = try CopyOnWriteSR()
        let vdi = try sr.create(size: 64 << 20)
        try sr.write(vdi, at: 0, pattern(8 << 20, seed: 20))
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        try sr.write(vdi, at: 16 << 20, pattern(40 << 20, seed: 21))
        let expected = try sr.read(vdi)
        try sr.expectOK("vdi_delete", sr.sr, snapshot)
        let replaced = try FileManager.default.attributesOfItem(atPath: sr.path(vdi))[.systemFileNumber] as? UInt64
        try sr.expectOK("sr_gc", sr.sr)
        #expect(try sr.files() == [vdi])
        #expect(try FileManager.default.attributesOfItem(atPath: sr.path(vdi))[.systemFileNumber] as? UInt64 != replaced)
        #expect(try sr.read(vdi) == expected)
        // Every process's open files: none may be a file of the SR that has no name any more.
        func holders() -> [String] {
            let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return processes.filter { Int($0) != nil }.flatMap { pid -> [String] in
                let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
                return descriptors.compactMap { descriptor in
                    guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(descriptor)"),
                        target.hasPrefix(sr.root + "/"), target.hasSuffix(" (deleted)")
                    else { return nil }
                    return "process \(pid) holds \(target)"
                }
            }
        }
        let deadline = Date().addingTimeInterval(5)
        while !holders().isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(holders().isEmpty, "the replaced child is still open 5 s after sr_gc: \(holders())")
        try sr.expectClean()
    }

    /// A child that is attached is never replaced under its user: sr_gc leaves the merge for later.
    @Test(.timeLimit(.minutes(1))) func attachedChildIsNotCoalesced() throws {
        let sr = try CopyOnWriteSR()
        let vdi = try sr.create()
        try sr.write(vdi, at: 0, pattern(4 << 20, seed: 13))
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        try sr.expectOK("vdi_delete", sr.sr, snapshot)
        try sr.expectOK("vdi_attach", sr.sr, vdi)
        try sr.expectOK("sr_gc", sr.sr)
        #expect(try sr.files().count == 2)
        try sr.expectOK("vdi_detach", sr.sr, vdi)
        try sr.expectOK("sr_gc", sr.sr)
        #expect(try sr.files() == [vdi])
    }

    /// vdi_delete returns at once and a detached sr_gc worker does the merge by itself.
    @Test(.timeLimit(.minutes(1))) func deleteStartsBackgroundCoalescing() throws {
        let sr = try CopyOnWriteSR(backgroundGC: true)
        let vdi = try sr.create()
        try sr.write(vdi, at: 0, pattern(4 << 20, seed: 14))
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        try sr.write(vdi, at: 512, [1, 2, 3, 4])
        let expected = try sr.read(vdi)
        try sr.expectOK("vdi_delete", sr.sr, snapshot)
        let deadline = Date().addingTimeInterval(20)
        while try sr.files().count > 1, Date() < deadline { usleep(50_000) }
        #expect(try sr.files() == [vdi])
        #expect(try sr.read(vdi) == expected)
        let log = try String(contentsOfFile: sr.scratch.path("SMlog"), encoding: .utf8)
        #expect(log.contains("sr_gc \(sr.sr) result=OK"), "\(log)")
        try sr.expectClean()
    }

    /// Merging 16 MiB: the merged file reads the same as the chain did, and qemu (reading the
    /// now single, non-differencing file on its own) agrees byte for byte.
    @Test(.timeLimit(.minutes(1))) func mergedBaseAgreesWithQemu() throws {
        let sr = try CopyOnWriteSR()
        let vdi = try sr.create(size: 32 << 20)
        try sr.write(vdi, at: 0, pattern(16 << 20, seed: 15))
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        try sr.write(vdi, at: 10 << 20, pattern(16 << 20, seed: 16))
        let expected = try sr.read(vdi)
        try sr.expectOK("vdi_delete", sr.sr, snapshot)
        try sr.expectOK("sr_gc", sr.sr)
        #expect(try sr.files() == [vdi])
        let raw = sr.scratch.path("expected.raw")
        try Data(expected).write(to: URL(fileURLWithPath: raw))
        let compare = try Product.runProgram("qemu-img", ["compare", "-f", "vpc", "-F", "raw", sr.path(vdi), raw])
        #expect(compare.status == 0, "\(compare)")
        try sr.expectClean()
    }
}
