import Testing

@testable import SMCore
@testable import SMLVM

/// Intent records of a VHD SR on a shared group (Docs/LVMoISCSISR.md, "VHD VDIs on a shared
/// group"): the host each names, and the judgement from sanlock's view of the lock space of
/// whether another host's record may be settled. Pure: the repository-level behaviour on a real
/// group is `LVMPoolRecordTests` (DriverTests) and the VM lane's `lvm-shared`.
@Suite struct PoolRecordTests {
    let a = CanonicalUUID("11111111-1111-4111-8111-111111111111")!
    let b = CanonicalUUID("22222222-2222-4222-8222-222222222222")!
    let c = CanonicalUUID("33333333-3333-4333-8333-333333333333")!

    /// A record names its host (and in a shared group its sanlock host id) after its VDIs; the
    /// new format round-trips, the old one (no host) still parses with no owner, and a host
    /// field that is empty, out of order, out of range or followed by a UUID is a damaged record.
    @Test func recordsNameTheirHost() throws {
        let shared = LVMIntent(.clone, [a, b, c], owner: .init(host: "h1", sanlockHostID: 1))
        #expect(shared.tag == "sm_intent=clone:\(a):\(b):\(c):host=h1:sanlock=1")
        #expect(try LVMIntent(tag: shared.tag) == shared)
        let local = LVMIntent(.snapshot, [a, b], owner: .init(host: "storage-7", sanlockHostID: nil))
        #expect(local.tag == "sm_intent=snapshot:\(a):\(b):host=storage-7")
        #expect(try LVMIntent(tag: local.tag) == local)
        let old = try LVMIntent(tag: "sm_intent=coalesce:\(a):\(b)")
        #expect(old == LVMIntent(.coalesce, [a, b]) && old?.owner == nil)
        let longest = LVMIntent(.clone, [a, b, c], owner: .init(host: String(repeating: "x", count: 64), sanlockHostID: 2000))
        #expect(try LVMIntent(tag: longest.tag) == longest)
        #expect(longest.owner?.description == "\(String(repeating: "x", count: 64)) (sanlock host id 2000)")
        for damaged in [
            "snapshot:\(a):\(b):host=", "snapshot:\(a):\(b):sanlock=1", "snapshot:\(a):\(b):sanlock=1:host=h1",
            "snapshot:\(a):host=h1:\(b)", "snapshot:\(a):\(b):host=h1:sanlock=0", "snapshot:\(a):\(b):host=h1:sanlock=2001",
            "snapshot:\(a):\(b):host=h1:sanlock=x", "snapshot:\(a):\(b):host=h1:host=h2", "snapshot:\(a):\(b):host=h1:sanlock=1:sanlock=2",
            "snapshot:\(a):host=h1"
        ] {
            #expect(throws: StorageError.self, "\(damaged)") { try LVMIntent(tag: "sm_intent=\(damaged)") }
        }
    }

    /// Only another sanlock host's record is judged by sanlock: this host's, one without a host
    /// (written before records named one) and every record in a local group are this host's (its
    /// host locks decide, as before). Another host is gone only when sanlock reports it DEAD or
    /// FREE (timestamp 0); LIVE, UNKNOWN, FAIL, not listed, "hosts not ready", a lock space not
    /// started here and sanlock not answering all leave its record alone.
    @Test func ownershipFromSanlock() {
        let h1 = LVMIntent.Owner(host: "h1", sanlockHostID: 1)
        func host(_ id: Int, _ state: String, timestamp: UInt64 = 4711) -> SanlockLockspace.Host {
            SanlockLockspace.Host(id: id, timestamp: timestamp, state: state)
        }
        let me = host(2, "LIVE")
        #expect(RecordOwnership.judge(nil, hostID: 2, hosts: .success([host(1, "LIVE"), me])) == .thisHost)
        #expect(RecordOwnership.judge(h1, hostID: nil, hosts: .success(nil)) == .thisHost)
        #expect(RecordOwnership.judge(h1, hostID: 1, hosts: .success([host(1, "LIVE")])) == .thisHost)
        #expect(RecordOwnership.judge(.init(host: "h1", sanlockHostID: nil), hostID: 2, hosts: .success([me])) == .thisHost)
        #expect(RecordOwnership.judge(h1, hostID: 2, hosts: .success([host(1, "DEAD"), me])) == .goneHost(h1, state: "DEAD"))
        #expect(RecordOwnership.judge(h1, hostID: 2, hosts: .success([host(1, "FREE", timestamp: 0), me])) == .goneHost(h1, state: "FREE"))
        #expect(
            RecordOwnership.judge(h1, hostID: 2, hosts: .success([host(1, "UNKNOWN", timestamp: 0), me])) == .goneHost(h1, state: "FREE"))
        for state in ["LIVE", "UNKNOWN", "FAIL", "ERROR"] {
            #expect(RecordOwnership.judge(h1, hostID: 2, hosts: .success([host(1, state), me])) == .liveHost(h1, state: state))
        }
        for hosts: Result<[SanlockLockspace.Host]?, StorageError> in [
            .success([me]), .success([]), .success(nil), .failure(.io("sanlock: connection refused"))
        ] {
            guard case .liveHost(h1, _) = RecordOwnership.judge(h1, hostID: 2, hosts: hosts) else {
                Issue.record("\(hosts) did not leave host 1's record alone")
                continue
            }
        }
    }

    /// The EBUSY of a verb on a VDI of a live host's record names the VDI, the operation, the
    /// host and sanlock's word for it.
    @Test func liveHostsRecordIsEBUSYNamingTheHost() {
        let owner = LVMIntent.Owner(host: "h1", sanlockHostID: 1)
        let error = StorageError.recordOfLiveHost(a, intent: LVMIntent(.snapshot, [a, b], owner: owner), owner: owner, state: "LIVE")
        #expect(error.code == .resourceBusy)
        #expect(
            error.message.contains("VDI \(a)") && error.message.contains("snapshot") && error.message.contains("h1 (sanlock host id 1)"))
        #expect(error.message.contains("LIVE"))
    }
}
