import Testing

@testable import SMCore

/// Reading ext4's MMP block as `debugfs -c -R dump_mmp` prints it, e2fsprogs' MMP refusals, and
/// the NFS soft timeout.
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

    /// e2fsprogs' MMP refusals are found in an e2fsck failure (the EIO message a CI run gave
    /// when the block could not be read); other failures are not refusals.
    @Test func refusalsInMessages() {
        let active =
            "e2fsck -p /run/h2/by-path/lun-1 failed (status 8): /usr/sbin/e2fsck: MMP: device currently "
            + "active while trying to open /run/h2/by-path/lun-1; run e2fsck -f /run/h2/by-path/lun-1 by hand"
        #expect(Ext4.multiMountRefusal(in: active) == "MMP: device currently active")
        #expect(Ext4.multiMountRefusal(in: "e2fsck: MMP: e2fsck being run while checking MMP block") == "MMP: e2fsck being run")
        #expect(Ext4.multiMountRefusal(in: "e2fsck: MMP: undergoing an unknown operation") != nil)
        #expect(Ext4.multiMountRefusal(in: "e2fsck: MMP block checksum does not match while reading MMP block") == nil)
        #expect(Ext4.multiMountRefusal(in: "e2fsck -p /dev/sdb failed (status 4): UNEXPECTED INCONSISTENCY") == nil)
    }

    /// The error when e2fsck refused for MMP and the block did not name a holder: EBUSY, one line,
    /// the refusal and why the holder is not named.
    @Test func refusalWithoutHolder() {
        let error = StorageError.srRefusedByMultiMountProtection(
            "0d9e8f7a-6b5c-4d4e-8f3a-2b1c0d9e8f7a", device: "/dev/sdb", refusal: "MMP: device currently active",
            detail: "its MMP block could not be read (debugfs failed)", outcome: "nothing was mounted here")
        #expect(error.code == .resourceBusy)
        #expect(
            error.description
                == "EBUSY: SR 0d9e8f7a-6b5c-4d4e-8f3a-2b1c0d9e8f7a on device /dev/sdb is in use by another host: ext4 "
                + "multi-mount protection refused it (MMP: device currently active); its MMP block could not be read "
                + "(debugfs failed); nothing was mounted here")
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
