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
    func tryHoldVDI(_ vdi: CanonicalUUID) -> VDIHold? {
        guard let local = try? HostLock.acquire("\(host.lockDirectory)/\(sr)/\(vdi)", mode: .exclusive, timeout: 0) else {
            return nil
        }
        var holder = ""
        guard let claim = try? SharedClaim.tryAcquire(vdi.string, srRoot: root, host: host, holder: &holder) else {
            if !holder.isEmpty { Diagnostics.debug("VDI \(vdi) is claimed by \(holder)") }
            local.release()
            return nil
        }
        return VDIHold(local: local, shared: claim)
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
