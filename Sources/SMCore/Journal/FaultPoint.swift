#if canImport(Glibc)
    import Glibc
#endif

/// The fault points of one multi-step operation: one enum per operation, whose raw values are the
/// names `SM_FAULT_POINT` and `SM_FAULT_PAUSE` take (`<operation>.<step>`). Code reaches a point
/// by its case (`FaultPoint.Snapshot.linked.reach()`), so a misspelt point does not compile, and a
/// crash test iterates the operation's `allCases`, so a point added to the enum is visited.
///
/// A new operation's points: declare `enum <Operation>: String, NamedFaultPoint` (in `FaultPoint`,
/// or in an extension of it in the module that runs the operation) with one case per point, add the
/// type to `FaultPoint.operations` when it is SMCore's, call `.reach()` at each point, and give the
/// operation a crash test over `<Operation>.allCases`.
public protocol NamedFaultPoint: RawRepresentable<String>, CaseIterable, Sendable, CustomStringConvertible
where AllCases == [Self] {}

extension NamedFaultPoint {
    /// Dies here if the environment names this point, or pauses (`FaultPoint.reach(named:)`).
    public func reach() { FaultPoint.reach(named: rawValue) }

    /// The names of every point of this operation, in the order the operation reaches them.
    public static var names: [String] { allCases.map(\.rawValue) }

    public var description: String { rawValue }
}

/// Named places between two durable steps of a multi-step operation, where a test can make the
/// process die as a power cut would: with `SM_FAULT_POINT=<name>` in the environment, the
/// process sends itself SIGKILL on reaching that point (nothing is flushed or cleaned up).
///
/// See Docs/copy-on-write.md for what each operation has done when it reaches each point.
public enum FaultPoint {
    /// vdi_create: the new VHD is written (claimed, under its temporary name), not yet linked.
    public enum Create: String, NamedFaultPoint {
        case written = "create.written"
    }

    public enum Snapshot: String, NamedFaultPoint {
        case journaled = "snapshot.journaled"
        case childCreated = "snapshot.child-created"
        case linked = "snapshot.linked"
        case committed = "snapshot.committed"
    }

    public enum Clone: String, NamedFaultPoint {
        case journaled = "clone.journaled"
        case childrenCreated = "clone.children-created"
        case baseLinked = "clone.base-linked"
        case destinationLinked = "clone.destination-linked"
        case committed = "clone.committed"
    }

    public enum Delete: String, NamedFaultPoint {
        case journaled = "delete.journaled"
        case hidden = "delete.hidden"
        case unlinked = "delete.unlinked"
        case ancestorReclaimed = "delete.ancestor-reclaimed"
    }

    public enum Coalesce: String, NamedFaultPoint {
        case journaled = "coalesce.journaled"
        /// After the first block.
        case blockCopied = "coalesce.block-copied"
        case dataCopied = "coalesce.data-copied"
        case bitmapsWritten = "coalesce.bitmaps-written"
        case merged = "coalesce.merged"
        case identityWritten = "coalesce.identity-written"
        case renamed = "coalesce.renamed"
    }

    public enum Resize: String, NamedFaultPoint {
        /// After the first moved block (as are the next two).
        case fileExtended = "resize.file-extended"
        case blockCopied = "resize.block-copied"
        case blockMoved = "resize.block-moved"
        case locatorsMoved = "resize.locators-moved"
        case tableGrown = "resize.table-grown"
        /// Between the end footer and its copy at offset 0.
        case endFooterWritten = "resize.end-footer-written"
    }

    // RBDSR's multi-step verbs (Docs/RBDSR.md, "Crash safety"): not in `operations`, which are
    // SMCore's (the VHD engine's); RBDSRCrashTests iterates each.
    public enum RBDSRCreate: String, NamedFaultPoint {
        case namespaceCreated = "rbd-sr-create.namespace-created"
    }

    public enum RBDSRDelete: String, NamedFaultPoint {
        case swept = "rbd-sr-delete.swept"
        case markerRemoved = "rbd-sr-delete.marker-removed"
    }

    public enum RBDSnapshot: String, NamedFaultPoint {
        case indexed = "rbd-snapshot.indexed"
    }

    public enum RBDClone: String, NamedFaultPoint {
        case intentWritten = "rbd-clone.intent-written"
        case baseCopyMarked = "rbd-clone.base-copy-marked"
        case snapshotCreated = "rbd-clone.snapshot-created"
        case protected = "rbd-clone.protected"
        case cloned = "rbd-clone.cloned"
    }

    public enum RBDCloneOfSnapshot: String, NamedFaultPoint {
        case snapshotProtected = "rbd-clone.snapshot-protected"
    }

    public enum RBDDelete: String, NamedFaultPoint {
        case intentWritten = "rbd-delete.intent-written"
        case removed = "rbd-delete.removed"
        case reclaimed = "rbd-delete.reclaimed"
    }

    /// SMCore's operations, each with its points.
    public static let operations: [any NamedFaultPoint.Type] = [
        Create.self, Snapshot.self, Clone.self, Delete.self, Coalesce.self, Resize.self
    ]

    /// Every point of SMCore's operations by name.
    public static var all: [String] { operations.flatMap { $0.names } }

    nonisolated(unsafe) private static var armed: String?? = nil
    nonisolated(unsafe) private static var pause: (name: String, seconds: UInt32)?? = nil

    /// Dies here if the environment names this point; with `SM_FAULT_PAUSE=<name>:<seconds>`,
    /// sleeps here instead (a test's way to act on shared storage while an operation is under way).
    /// Code calls `reach()` on a point's case; this is the mechanism behind it.
    static func reach(named name: String) {
        if pause == nil {
            pause = .some(
                Syscall.environment("SM_FAULT_PAUSE").flatMap { text in
                    guard let colon = text.lastIndex(of: ":"), let seconds = UInt32(text[text.index(after: colon)...]) else { return nil }
                    return (String(text[..<colon]), seconds)
                })
        }
        if case .some(.some(let paused)) = pause, paused.name == name {
            Diagnostics.debug("fault point \(name): pausing \(paused.seconds) s")
            Syscall.sleep(seconds: Double(paused.seconds))
        }
        if armed == nil { armed = .some(Syscall.environment("SM_FAULT_POINT")) }
        guard case .some(.some(let wanted)) = armed, wanted == name else { return }
        Diagnostics.debug("fault point \(name): killing myself")
        Syscall.killSelf()
    }
}
