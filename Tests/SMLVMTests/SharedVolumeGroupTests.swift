import Foundation
import Testing

@testable import SMCore
@testable import SMLVM

/// The host-side pieces of LVMoISCSISR's shared volume groups (the locking itself needs a kernel
/// with device-mapper, sanlock and lvmlockd: Tests/vm/groups/lvm-shared.sh).
@Suite struct SharedVolumeGroupTests {
    /// `sanlock client gets -h 1` as sanlock 3.8 prints it: two lock spaces, hosts in several states.
    static let sanlockOutput = """
        s lvm_VG_XenStorage-3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a:2:/dev/mapper/VG_XenStorage--3a4b5c6d-lvmlock:0
        h 1 gen 3 timestamp 4711 UNKNOWN
        h 2 gen 1 timestamp 4720 LIVE
        h 3 gen 2 timestamp 0 FREE
        h 4 gen 1 timestamp 3000 DEAD
        s lvm_other:2:/dev/mapper/other-lvmlock:0
        h 5 gen 1 timestamp 99 LIVE
        """

    /// The lock space name is lvmlockd's: `lvm_` + the group, cut to sanlock's 48 bytes; the hosts
    /// under it are parsed, this host left out, and only FREE (timestamp 0) and DEAD hosts count
    /// as not using it. A lock space that is not listed is nil, not "nobody".
    @Test func sanlockHostsOfALockspace() {
        let lockspace = SanlockLockspace(volumeGroup: "VG_XenStorage-3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d")
        #expect(lockspace.name == "lvm_VG_XenStorage-3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a")
        #expect(lockspace.name.utf8.count == 48)
        let hosts = lockspace.otherHosts(in: Self.sanlockOutput, excluding: 2)
        #expect(hosts?.map(\.id) == [1, 3, 4])
        #expect(hosts?.filter(\.mayBeUsing).map(\.id) == [1])
        #expect(SanlockLockspace(volumeGroup: "other").otherHosts(in: Self.sanlockOutput, excluding: 2)?.map(\.id) == [5])
        #expect(SanlockLockspace(volumeGroup: "absent").otherHosts(in: Self.sanlockOutput, excluding: 2) == nil)
    }

    /// sr_delete's decision from one answer of sanlock: LIVE elsewhere is busy at once; UNKNOWN
    /// or FAIL (sanlock has not watched long enough), and "hosts not ready" (no host listed,
    /// not even this one: sanlock has not read the leases since joining), are undecided, never
    /// "nobody" (taking that for "nobody" is how a retried sr_delete once passed by luck); only
    /// FREE and DEAD let it go on.
    @Test func srDeleteDecision() {
        let lockspace = SanlockLockspace(volumeGroup: "VG_XenStorage-3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d")
        let head = "s lvm_VG_XenStorage-3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a:2:/dev/mapper/x-lvmlock:0\n"
        let me = "h 2 gen 1 timestamp 4720 LIVE\n"
        func host(_ state: String, timestamp: UInt64 = 4711) -> SanlockLockspace.Host {
            SanlockLockspace.Host(id: 1, timestamp: timestamp, state: state)
        }
        #expect(lockspace.decision(in: head + "hosts not ready\n", hostID: 2) == .undecided([]))
        #expect(lockspace.decision(in: head, hostID: 2) == .undecided([]))
        #expect(lockspace.decision(in: head + me, hostID: 2) == .clear)
        for state in ["UNKNOWN", "FAIL", "ERROR"] {
            #expect(lockspace.decision(in: head + "h 1 gen 3 timestamp 4711 \(state)\n" + me, hostID: 2) == .undecided([host(state)]))
        }
        #expect(lockspace.decision(in: head + "h 1 gen 3 timestamp 4711 LIVE\n" + me, hostID: 2) == .busy([host("LIVE")]))
        #expect(lockspace.decision(in: head + "h 1 gen 3 timestamp 4711 DEAD\n" + me, hostID: 2) == .clear)
        #expect(lockspace.decision(in: head + "h 1 gen 3 timestamp 0 FREE\n" + me, hostID: 2) == .clear)
        #expect(lockspace.decision(in: Self.sanlockOutput, hostID: 2) == .undecided([host("UNKNOWN")]))
        #expect(lockspace.decision(in: "s lvm_other:2:/dev/x:0\n", hostID: 2) == nil)
    }

    /// The sanlock host id: 1 to 2000 from `sanlock_host_id`; anything else EINVAL naming it.
    @Test func hostIDRange() throws {
        func locking(_ value: String?) throws(StorageError) -> VolumeGroupLocking {
            var host = HostEnvironment()
            host.settings["sanlock_host_id"] = value
            return try VolumeGroupLocking.sanlock(host: host)
        }
        #expect(try locking("1") == .sanlock(hostID: 1))
        #expect(try locking("2000") == .sanlock(hostID: 2000))
        for value in [nil, "", "0", "2001", "01x", "-3", " 7", "99999999999"] {
            #expect(throws: StorageError.self) { try locking(value) }
            do { _ = try locking(value) } catch { #expect(error.code == .invalidArgument && error.message.contains("sanlock_host_id")) }
        }
    }

    /// The shared overlay is separate from LVMSR's, says `use_lvmlockd = 1` after the host's
    /// `lvm.conf`, and makes `lvmlocal.conf` the host's text plus `local/host_id` (a file, not
    /// the symlink the local overlay keeps); the local overlay never mentions lvmlockd.
    @Test func overlayForSharedGroups() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sm-overlay-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let source = "\(root)/etc-lvm"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try "global {\n    umask = 077\n}\n".write(toFile: "\(source)/lvm.conf", atomically: true, encoding: .utf8)
        try "local {\n    system_id = \"x\"\n}\n".write(toFile: "\(source)/lvmlocal.conf", atomically: true, encoding: .utf8)
        let host = HostEnvironment(runDirectory: "\(root)/run")
        let shared = try LVMSystemDirectory(host: host, locking: .sanlock(hostID: 17), source: source).prepare()
        let local = try LVMSystemDirectory(host: host, source: source).prepare()
        #expect(shared == "\(root)/run/lvm-sanlock" && local == "\(root)/run/lvm")
        let sharedConfiguration = try String(contentsOfFile: "\(shared)/lvm.conf", encoding: .utf8)
        #expect(sharedConfiguration.hasPrefix("global {\n    umask = 077\n}\n") && sharedConfiguration.contains("use_lvmlockd = 1"))
        let localSettings = try String(contentsOfFile: "\(shared)/lvmlocal.conf", encoding: .utf8)
        #expect(localSettings.hasPrefix("local {\n    system_id = \"x\"\n}\n") && localSettings.contains("host_id = 17"))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(shared)/lvmlocal.conf")) == nil)
        #expect(!(try String(contentsOfFile: "\(local)/lvm.conf", encoding: .utf8)).contains("lvmlockd"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(local)/lvmlocal.conf") == "\(source)/lvmlocal.conf")
    }
}
