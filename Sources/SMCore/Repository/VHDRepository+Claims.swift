import Synchronization

/// Who may change a VDI of an SR that several hosts share: a process holds the VDI's host-local
/// lock (against the other processes of its host) and its claim on the shared storage (against
/// the other hosts: `SharedClaim`). Verbs wait for both; the collector and the recovery pass
/// only take what is free now. Docs/pools.md.
public final class VDIHold {
    let local: HostLock
    let shared: SharedClaim

    init(local: HostLock, shared: SharedClaim) {
        self.local = local
        self.shared = shared
    }

    /// The claim first: no other process of this host can slip in while it is dropped.
    public func release() {
        shared.release()
        local.release()
    }
}

extension VHDRepository {
    /// The host-local lock and the shared claim of `vdi` if both are free now, nil otherwise
    /// (including when the claims cannot be read: whoever asks treats the VDI as busy).
    func tryHoldVDI(_ vdi: CanonicalUUID) -> VDIHold? { tryHoldVDIs([vdi])?.first }

    /// The holds of every VDI of `vdis` (in that order) if all can be had now, nil otherwise (and
    /// nothing is kept). The host-local locks first, all of them, so that a VDI busy on this host
    /// costs no wait; then the shared claims side by side: a claim another host let lapse is
    /// taken over with a wait of one lease (`SharedClaim`), and a recovery or a merge that
    /// needs two or three of them waits that lease once, not once for each.
    func tryHoldVDIs(_ vdis: [CanonicalUUID]) -> [VDIHold]? {
        var locals: [HostLock] = []
        for vdi in vdis {
            guard let local = try? HostLock.acquire("\(host.lockDirectory)/\(sr)/\(vdi)", mode: .exclusive, timeout: 0) else {
                locals.forEach { $0.release() }
                return nil
            }
            locals.append(local)
        }
        let claims = Claims(count: vdis.count)
        let (root, host) = (self.root, self.host)
        SideBySide.run(vdis.count) { index in
            var holder = ""
            let claim = try? SharedClaim.tryAcquire(vdis[index].string, srRoot: root, host: host, holder: &holder)
            if claim == nil, !holder.isEmpty { Diagnostics.debug("VDI \(vdis[index]) is claimed by \(holder)") }
            claims.taken.withLock { $0[index] = claim }
        }
        let taken = claims.taken.withLock { $0 }
        guard taken.allSatisfy({ $0 != nil }) else {
            taken.forEach { $0?.release() }
            locals.forEach { $0.release() }
            return nil
        }
        return zip(locals, taken).map { VDIHold(local: $0, shared: $1!) }
    }

    /// The claims `tryHoldVDIs` takes on its threads.
    final class Claims: Sendable {
        let taken: Mutex<[SharedClaim?]>
        init(count: Int) { taken = Mutex(Array(repeating: nil, count: count)) }
    }

    /// The shared claims of the VDIs a verb names (the dispatcher holds their host-local locks),
    /// in sorted order; each waits up to the lock timeout for another host's collector or
    /// recovery to let go, then EBUSY. On a full SR (no room for a claim's files) a VDI that
    /// nobody claims goes on unclaimed, so that deleting VDIs can free the space.
    public func claimVDIs(_ vdis: Set<CanonicalUUID>) throws(StorageError) -> [SharedClaim] {
        var claims: [SharedClaim] = []
        do throws(StorageError) {
            for vdi in vdis.sorted() {
                do throws(StorageError) {
                    claims.append(try SharedClaim.acquire(vdi.string, srRoot: root, host: host, what: "VDI \(vdi)"))
                } catch  where error.code == .noSpace {
                    // A full SR must still let VDIs be deleted. Nobody can take a claim while no
                    // file can be written, so a VDI nobody claims now stays unclaimed.
                    guard let target = LockTarget("\(SharedClaim.directory(srRoot: root))/\(vdi)"),
                        (try? PersistentLock.holders(of: target))?.isEmpty == true
                    else { throw error }
                    OperationLog.note(host: host, "SR \(sr): no space for the claim of VDI \(vdi); nobody holds it, going on")
                }
            }
        } catch {
            claims.forEach { $0.release() }
            throw error
        }
        return claims
    }
}
