import Foundation
import SMCore
import Testing

/// Chain health on FileSR (Docs/chain-health.md): what sr_scan says about chains and the
/// collector, and what a snapshot at the chain limit tells the operator to run.
@Suite(.serialized) struct ChainHealthTests {
    /// One field of the SR part of an sr_scan document (before the first `<vdi>`).
    static func srField(_ document: String, _ name: String) -> String? {
        let head = document.components(separatedBy: "<vdi>")[0]
        guard let start = head.range(of: "<\(name)>"), let end = head.range(of: "</\(name)>") else { return nil }
        return String(head[start.upperBound..<end.lowerBound])
    }

    /// One field of a VDI's element in an sr_scan document.
    static func vdiField(_ document: String, _ vdi: String, _ name: String) -> String? {
        guard let chunk = document.components(separatedBy: "<vdi>").first(where: { $0.contains("<uuid>\(vdi)</uuid>") }),
            let start = chunk.range(of: "<\(name)>"), let end = chunk.range(of: "</\(name)>")
        else { return nil }
        return String(chunk[start.upperBound..<end.lowerBound])
    }

    /// The bytes of the 2 MiB blocks a VHD file holds.
    static func allocatedBytes(_ path: String) throws -> UInt64 {
        let table = try VHDImage.open(path).allocationTable()
        return UInt64(table.count { $0 != VHDImage.unallocated }) * VHDImage.blockSize
    }

    /// A deleted snapshot in the middle of a chain is a waiting merge: sr_scan counts it, gives
    /// every VDI its chain depth and the bytes the merges of its chain would copy (the child's
    /// allocated blocks), and after sr_gc the chain is one shorter and nothing is waiting.
    @Test(.timeLimit(.minutes(1))) func scanReportsDepthAndWaitingMerges() throws {
        let sr = try CopyOnWriteSR("sm-chain-health")
        let vdi = try sr.create(size: 16 << 20)
        try sr.write(vdi, at: 0, pattern(4 << 20, seed: 1))
        let kept = newUUID()
        let doomed = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, kept)
        try sr.write(vdi, at: 6 << 20, pattern(1 << 20, seed: 2))
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, doomed)
        try sr.write(vdi, at: 10 << 20, pattern(5 << 20, seed: 3))  // blocks 5, 6 and 7

        var scan = try sr.run("sr_scan", sr.sr).standardOutput
        #expect(Self.srField(scan, "pending_merges") == "0", "\(scan)")
        #expect(Self.srField(scan, "gc_running") == "False")
        #expect(Self.vdiField(scan, vdi, "chain_depth") == "3")
        #expect(Self.vdiField(scan, doomed, "chain_depth") == "2")
        #expect(Self.vdiField(scan, kept, "chain_depth") == "1")
        #expect(Self.vdiField(scan, vdi, "coalesce_bytes") == "0")

        try sr.expectOK("vdi_delete", sr.sr, doomed)
        let leafBytes = try Self.allocatedBytes(sr.path(vdi))
        #expect(leafBytes == 3 * VHDImage.blockSize)
        scan = try sr.run("sr_scan", sr.sr).standardOutput
        #expect(Self.srField(scan, "pending_merges") == "1", "\(scan)")
        #expect(Self.vdiField(scan, vdi, "chain_depth") == "3", "the hidden VHD is still read through")
        #expect(Self.vdiField(scan, vdi, "coalesce_bytes") == String(leafBytes))
        #expect(Self.vdiField(scan, kept, "coalesce_bytes") == "0")
        #expect(Self.vdiField(scan, doomed, "uuid") == nil)

        let expected = try sr.read(vdi)
        try sr.expectOK("sr_gc", sr.sr)
        scan = try sr.run("sr_scan", sr.sr).standardOutput
        #expect(Self.srField(scan, "pending_merges") == "0", "\(scan)")
        #expect(Self.vdiField(scan, vdi, "chain_depth") == "2")
        #expect(Self.vdiField(scan, vdi, "coalesce_bytes") == "0")
        #expect(try sr.read(vdi) == expected)
        try sr.expectClean()
    }

    /// While a collector is in the middle of a merge (paused at a fault point), sr_scan from
    /// another process says the collector is running; afterwards it says it is not.
    @Test(.timeLimit(.minutes(1))) func scanSeesARunningCollector() throws {
        let sr = try CopyOnWriteSR("sm-chain-health")
        let vdi = try sr.create(size: 8 << 20)
        try sr.write(vdi, at: 0, pattern(2 << 20, seed: 4))
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
        try sr.write(vdi, at: 4 << 20, pattern(1 << 20, seed: 5))
        try sr.expectOK("vdi_delete", sr.sr, snapshot)
        let expected = try sr.read(vdi)

        let finished = DispatchSemaphore(value: 0)
        let arguments = [sr.dconf, "sr_gc", sr.sr]
        let environment = sr.scratch.environment.merging(["SM_FAULT_PAUSE": "\(FaultPoint.Coalesce.merged):4"]) { $1 }
        let collector = Thread {
            _ = try? Product.run("FileSR", arguments, environment: environment)
            finished.signal()
        }
        collector.start()
        var seenRunning = false
        let deadline = Date().addingTimeInterval(10)
        while !seenRunning, Date() < deadline {
            let scan = try sr.run("sr_scan", sr.sr).standardOutput
            seenRunning = Self.srField(scan, "gc_running") == "True"
            if !seenRunning { usleep(100_000) }
        }
        #expect(seenRunning, "sr_scan never reported gc_running True while sr_gc was paused in a merge")
        #expect(finished.wait(timeout: .now() + 30) == .success)
        let scan = try sr.run("sr_scan", sr.sr).standardOutput
        #expect(Self.srField(scan, "gc_running") == "False", "\(scan)")
        #expect(Self.srField(scan, "pending_merges") == "0")
        #expect(try sr.read(vdi) == expected)
        try sr.expectClean()
    }

    /// A snapshot that would pass the 30-VHD limit is EPERM and says what to run: sr_gc when
    /// merges wait on the chain (and how short it will get), deleting snapshots when none do.
    /// After the advised sr_gc the same snapshot succeeds.
    @Test(.timeLimit(.minutes(2))) func snapshotAtTheLimitSaysWhatToRun() throws {
        let sr = try CopyOnWriteSR("sm-chain-health")
        let vdi = try sr.create(size: 2 << 20)
        var snapshots: [String] = []
        for _ in 0..<(VHDChain.maximumLength - 1) {
            let snapshot = newUUID()
            try sr.expectOK("vdi_snapshot", sr.sr, vdi, snapshot)
            snapshots.append(snapshot)
        }
        var refused = try sr.run("vdi_snapshot", sr.sr, vdi, newUUID())
        #expect(refused.status == 1 && refused.reason.hasPrefix("EPERM:"), "\(refused)")
        #expect(refused.reason.contains("delete snapshots of it, then run sr_gc \(sr.sr)"), "\(refused)")

        try sr.expectOK("vdi_delete", sr.sr, snapshots[10])
        try sr.expectOK("vdi_delete", sr.sr, snapshots[20])
        refused = try sr.run("vdi_snapshot", sr.sr, vdi, newUUID())
        #expect(refused.status == 1 && refused.reason.hasPrefix("EPERM:"), "\(refused)")
        #expect(
            refused.reason.contains("run sr_gc \(sr.sr): 2 merges waiting on this chain will shorten it to 28 VHDs"),
            "\(refused)")

        try sr.expectOK("sr_gc", sr.sr)
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, newUUID())
        let scan = try sr.run("sr_scan", sr.sr).standardOutput
        #expect(Self.vdiField(scan, vdi, "chain_depth") == "29", "\(scan)")
        try sr.expectClean()
    }
}
