#if canImport(Glibc)
    import Glibc
#endif

/// Runs a few waits side by side: `body(index)` for every index in `0..<count`, each on a thread
/// of its own (the caller's among them), returning once all have returned. For work that mostly
/// sleeps (each takeover of a lapsed claim waits one lease), not for CPU work (`ParallelBlocks`).
enum SideBySide {
    static func run(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        var helpers: [pthread_t] = []
        var inline: [Int] = []
        for index in 1..<max(1, count) {
            if let thread = Threads.start({ body(index) }) {
                helpers.append(thread)
            } else {
                inline.append(index)  // no thread to be had: run on this one, after its own
            }
        }
        if count > 0 { body(0) }
        for index in inline { body(index) }
        for thread in helpers { pthread_join(thread, nil) }
    }
}

/// Plain threads (the work of `SideBySide` and `ParallelBlocks` is synchronous system calls, not
/// tasks for Swift's cooperative pool, whose threads must not block).
enum Threads {
    private final class Start {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body` on a new thread, to be joined; nil when none can be had (the caller then
    /// runs the work itself).
    static func start(_ body: @escaping () -> Void) -> pthread_t? {
        let context = Unmanaged.passRetained(Start(body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { context in
                guard let context else { return nil }
                Unmanaged<Start>.fromOpaque(context).takeRetainedValue().body()
                return nil
            }, context)
        guard created == 0 else {
            Unmanaged<Start>.fromOpaque(context).release()
            return nil
        }
        return thread
    }
}
