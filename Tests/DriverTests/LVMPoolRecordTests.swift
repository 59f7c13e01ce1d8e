import Foundation
import Testing

@testable import SMCore
@testable import SMLVM

/// Intent records of a VHD SR judged as a host of a shared group judges them, on a real volume
/// group (loop device, LVM's activation disabled as in the other LVM suites). sanlock cannot run
/// here (its lock space lives on an activated volume), so the repository runs in this process
/// with a stand-in for sanlock's answer (`PoolView`, the hosts `sanlock client gets -h 1` would
/// list): everything else, the records, the volumes, the recovery, is LVM's. The same judgement
/// over real sanlock and lvmlockd, with a host killed in a snapshot, is the VM lane's
/// `lvm-shared`.
@Suite(.serialized) struct LVMPoolRecordTests {
    /// What the stand-in for sanlock answers, changed by the test between verbs.
    final class SanlockAnswer: @unchecked Sendable {
        var hosts: [SanlockLockspace.Host]? = []
    }

    func host(_ id: Int, _ state: String) -> SanlockLockspace.Host { SanlockLockspace.Host(id: id, timestamp: 4711, state: state) }

    /// The planted state of a `create` record at its `written` fault point: the VHD's volume
    /// under its temporary name.
    func plantCreate(_ f: LVMSRFixture, _ vdi: String, record: String) throws {
        let created = try LVMOracle.lvm(
            "lvcreate",
            [
                "--yes", "-an", "-Zn", "-L", "4m", "-n", "LV-\(vdi).new", "--addtag", "sm_type=vhd", "--addtag", "sm_vsize=\(8 << 20)",
                f.volumeGroup
            ])
        #expect(created.status == 0, "lvcreate: \(created)")
        let tagged = try LVMOracle.lvm("vgchange", ["--addtag", "sm_intent=\(record)", f.volumeGroup])
        #expect(tagged.status == 0, "vgchange: \(tagged)")
    }

    func groupTags(_ f: LVMSRFixture) throws -> [String] {
        let row = try LVMOracle.report("vgs", section: "vg", ["-o", "vg_tags", f.volumeGroup])?.first
        return (row?["vg_tags"] ?? "").split(separator: ",").map(String.init)
    }

    func volumeNames(_ f: LVMSRFixture) throws -> Set<String> { Set(try LVMOracle.logicalVolumes(of: f.volumeGroup).keys) }

    /// Host h2 (sanlock host id 2) of a pool: the fixture's host paths, sanlock's answer from
    /// `answer`.
    func hostTwo(_ f: LVMSRFixture, _ answer: SanlockAnswer) -> LVMRepository {
        var environment = HostEnvironment(
            runDirectory: f.scratch.path("run"), lockDirectory: f.scratch.path("lock"), logFile: f.scratch.path("SMlog"),
            mountDirectory: f.scratch.path("mount"), lockTimeout: 5, lvmConfiguration: LVMSRFixture.lvmConfiguration)
        environment.identity = "h2"
        let repository = LVMRepository(devices: f.devices, host: environment, locking: .local, vdiType: .vhd)
        repository.poolView = PoolView(hostID: 2) { (_: String) throws(StorageError) -> [SanlockLockspace.Host]? in answer.hosts }
        return repository
    }

    /// A record of host h1 (sanlock host id 1) is left, volumes and all, while sanlock reports
    /// h1 LIVE, UNKNOWN or FAIL, does not list it, has not read the leases, or does not list the
    /// lock space; sr_scan, sr_check (which does not report it) and sr_gc go on; a verb on its VDI
    /// is EBUSY naming h1. Once sanlock reports h1 DEAD the next sr_scan settles it (rolled back:
    /// the temporary volume removed). A record in the old format (no host) and one of this host
    /// are settled at the first sr_scan, as before; and LVMSR (a local group: one host) settles a
    /// record naming another sanlock host as its own.
    @Test(.timeLimit(.minutes(3))) func anotherHostsRecordWaitsForSanlockToCallItDead() throws {
        let f = try LVMSRFixture.vhdSR()
        defer { f.tearDown() }
        let (theirs, old, mine) = (newUUID(), newUUID(), newUUID())
        try plantCreate(f, theirs, record: "create:\(theirs):host=h1:sanlock=1")
        try plantCreate(f, old, record: "create:\(old)")
        try plantCreate(f, mine, record: "create:\(mine):host=h2:sanlock=2")
        let answer = SanlockAnswer()
        let repository = hostTwo(f, answer)
        let sr = try #require(CanonicalUUID(f.sr))
        let theirRecord = "sm_intent=create:\(theirs):host=h1:sanlock=1"
        let me = host(2, "LIVE")

        answer.hosts = [host(1, "LIVE"), me]
        _ = try repository.scan(sr: sr)
        #expect(try groupTags(f).filter { $0.hasPrefix("sm_intent=") } == [theirRecord])
        #expect(try volumeNames(f) == ["LV-\(theirs).new"])

        for hosts: [SanlockLockspace.Host]? in [
            [host(1, "LIVE"), me], [host(1, "UNKNOWN"), me], [host(1, "FAIL"), me], [me], [], nil
        ] {
            answer.hosts = hosts
            _ = try repository.scan(sr: sr)
            #expect(try groupTags(f).contains(theirRecord), "\(String(describing: hosts))")
            #expect(try volumeNames(f) == ["LV-\(theirs).new"], "\(String(describing: hosts))")
        }

        answer.hosts = [host(1, "LIVE"), me]
        let theirVDI = try #require(CanonicalUUID(theirs))
        do throws(StorageError) {
            try repository.createVDI(sr: sr, vdi: theirVDI, size: 8 << 20)
            Issue.record("vdi_create of a VDI named by a live host's record succeeded")
        } catch {
            #expect(error.code == .resourceBusy, "\(error)")
            #expect(error.message.contains("h1 (sanlock host id 1)") && error.message.contains("LIVE"), "\(error.message)")
        }
        let check = try repository.check(sr: sr)
        #expect(check.problems.isEmpty, "\(check.problems)")
        _ = try repository.collectGarbage(sr: sr)
        #expect(try groupTags(f).contains(theirRecord))
        #expect(try volumeNames(f) == ["LV-\(theirs).new"])

        answer.hosts = [host(1, "DEAD"), me]
        _ = try repository.scan(sr: sr)
        #expect(try !groupTags(f).contains { $0.hasPrefix("sm_intent=") })
        #expect(try volumeNames(f).isEmpty)
        let log = (try? String(contentsOfFile: f.scratch.path("SMlog"), encoding: .utf8)) ?? ""
        #expect(log.contains("is of host h1 (sanlock host id 1), which sanlock reports LIVE; left in place"), "\(log)")
        #expect(log.contains("is of host h1 (sanlock host id 1), which sanlock reports DEAD; settling it"), "\(log)")

        let another = newUUID()
        try plantCreate(f, another, record: "create:\(another):host=h1:sanlock=1")
        let scanned = try f.vhdCall("sr_scan", [f.sr])
        #expect(scanned.status == 0, "\(scanned)")
        #expect(try !groupTags(f).contains { $0.hasPrefix("sm_intent=") })
        #expect(try volumeNames(f).isEmpty)
    }
}
