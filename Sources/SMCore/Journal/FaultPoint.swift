#if canImport(Glibc)
import Glibc
#endif

/// Named places between two durable steps of a multi-step operation, where a test can make the
/// process die as a power cut would: with `SM_FAULT_POINT=<name>` in the environment, the
/// process sends itself SIGKILL on reaching that point (nothing is flushed or cleaned up).
///
/// Every name is listed in `FaultPoint.all` so that crash tests can visit each in turn; see
/// Docs/copy-on-write.md for what each operation has done when it reaches each point.
public enum FaultPoint {
    public static let snapshot = [
        "snapshot.journaled", "snapshot.child-created", "snapshot.linked", "snapshot.committed",
    ]
    public static let clone = [
        "clone.journaled", "clone.children-created", "clone.base-linked", "clone.destination-linked", "clone.committed",
    ]
    public static let delete = [
        "delete.journaled", "delete.hidden", "delete.unlinked", "delete.ancestor-reclaimed",
    ]
    public static let coalesce = [
        "coalesce.journaled", "coalesce.block-copied", "coalesce.data-copied", "coalesce.bitmaps-written",
        "coalesce.merged", "coalesce.identity-written", "coalesce.renamed",
    ]
    /// vdi_create: the new VHD is written (claimed, under its temporary name), not yet linked.
    public static let create = ["create.written"]
    public static let resize = [
        "resize.file-extended", "resize.block-copied", "resize.block-moved", "resize.locators-moved",
        "resize.table-grown", "resize.end-footer-written",
    ]
    public static let all = create + snapshot + clone + delete + coalesce + resize
    /// RBDSR's multi-step verbs (Docs/RBDSR.md, "Crash safety"); not in `all`, which is the VHD engine's.
    public static let rbdSRCreate = ["rbd-sr-create.namespace-created"]
    public static let rbdSRDelete = ["rbd-sr-delete.swept", "rbd-sr-delete.marker-removed"]
    public static let rbdSnapshot = ["rbd-snapshot.indexed"]
    public static let rbdClone = [
        "rbd-clone.intent-written", "rbd-clone.base-copy-marked", "rbd-clone.snapshot-created", "rbd-clone.protected",
        "rbd-clone.cloned",
    ]
    public static let rbdCloneOfSnapshot = ["rbd-clone.snapshot-protected"]
    public static let rbdDelete = ["rbd-delete.intent-written", "rbd-delete.removed", "rbd-delete.reclaimed"]

    nonisolated(unsafe) private static var armed: String?? = nil
    nonisolated(unsafe) private static var pause: (name: String, seconds: UInt32)?? = nil

    /// Dies here if the environment names this point; with `SM_FAULT_PAUSE=<name>:<seconds>`,
    /// sleeps here instead (a test's way to act on shared storage while an operation is under way).
    public static func reach(_ name: String) {
        if pause == nil {
            pause = .some(Syscall.environment("SM_FAULT_PAUSE").flatMap { text in
                guard let colon = text.lastIndex(of: ":"), let seconds = UInt32(text[text.index(after: colon)...]) else { return nil }
                return (String(text[..<colon]), seconds)
            })
        }
        if case .some(.some(let paused)) = pause, paused.name == name {
            Diagnostics.debug("fault point \(name): pausing \(paused.seconds) s")
            sleep(paused.seconds)
        }
        if armed == nil { armed = .some(Syscall.environment("SM_FAULT_POINT")) }
        guard case .some(.some(let wanted)) = armed, wanted == name else { return }
        Diagnostics.debug("fault point \(name): killing myself")
        kill(getpid(), SIGKILL)
    }
}
