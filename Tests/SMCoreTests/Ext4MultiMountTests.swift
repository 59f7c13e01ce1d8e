import Testing

@testable import SMCore

/// Reading ext4's MMP block as `debugfs -R dump_mmp` prints it, and the NFS soft timeout.
@Suite struct Ext4MultiMountTests {
    static let held = """
        block_number: 4385
        update_interval: 5
        check_interval: 5
        sequence: 0000002a
        time: 1796176778 -- Wed Dec  2 01:59:38 2026
        node_name: h1
        device_name: sdb
        magic: 0x4d4d50
        checksum: 0xe733481c
        """

    /// A held block gives its sequence, intervals, time, node and device; it is not clean.
    @Test func heldBlock() throws {
        let block = try #require(Ext4.MultiMountBlock(dumpMMP: Self.held))
        #expect(block.sequence == 0x2a && !block.isClean)
        #expect(block.updateInterval == 5 && block.checkInterval == 5 && block.time == 1_796_176_778)
        #expect(block.nodeName == "h1" && block.deviceName == "sdb")
        #expect(block.livenessWait == 11)
        #expect(block.holderDescription == "node 'h1' (device 'sdb')")
    }

    /// The clean and fsck sequences are recognised; a longer check interval lengthens the wait
    /// as ext4 does (at most interval + 60 s).
    @Test func cleanFsckAndIntervals() throws {
        let clean = try #require(Ext4.MultiMountBlock(dumpMMP: Self.held.replacing("0000002a", with: "ff4d4d50")))
        #expect(clean.isClean)
        let fsck = try #require(Ext4.MultiMountBlock(dumpMMP: Self.held.replacing("0000002a", with: "e24d4d50")))
        #expect(!fsck.isClean && fsck.holderDescription.hasPrefix("e2fsck on node 'h1'"))
        let slow = try #require(Ext4.MultiMountBlock(dumpMMP: Self.held.replacing("check_interval: 5", with: "check_interval: 100")))
        #expect(slow.livenessWait == 160)
    }

    /// Output without the fields (debugfs's error text) is not a block.
    @Test func notABlock() {
        #expect(Ext4.MultiMountBlock(dumpMMP: "dump_mmp: MMP: not active on this filesystem.") == nil)
        #expect(Ext4.MultiMountBlock(dumpMMP: Self.held.replacing("sequence: 0000002a", with: "sequence: zz")) == nil)
    }

    /// One soft call gives up after timeo × (retrans + 1)(retrans + 2) / 2; a hard mount has no bound.
    @Test func softTimeout() throws {
        let export = try NFSExport(server: "192.0.2.7", path: "/x")
        func bound(_ values: [String: String]) throws -> Double? {
            try NFSMountOptions(configuration: DeviceConfiguration(values: values), server: export.server).softTimeoutSeconds
        }
        #expect(try bound([:]) == 100)
        #expect(try bound(["timeo": "10", "retrans": "1"]) == 3)
        #expect(try bound(["timeo": "5", "retrans": "0"]) == 0.5)
        #expect(try bound(["hard": "true"]) == nil)
    }
}
