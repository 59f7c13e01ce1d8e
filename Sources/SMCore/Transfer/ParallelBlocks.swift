import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs independent per-block work on a few threads (the calling one among them), as qemu-img
/// keeps several requests in flight: with the data in the page cache a transfer is memory copies
/// in the kernel, and one thread leaves the other cores idle. Blocks are taken in increasing
/// order from a shared counter; the first failure stops every thread from taking more, and is
/// what `run` throws once all have stopped.
///
/// The body must be safe to run concurrently for different blocks: positioned reads and writes
/// (pread, pwrite, copy_file_range at explicit offsets) on descriptors shared read-only, buffers
/// per worker, no shared mutable state but what it locks itself.
final class ParallelBlocks: @unchecked Sendable {
    /// Threads in all (the caller included): enough to overlap one block's read with another's
    /// write, one per online CPU (at least two, at most four): more only wait for the output
    /// file's lock and take the CPU from the ones that hold it.
    static let threads = max(2, min(4, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))

    struct State {
        var next = 0
        var failure: StorageError?
    }

    let count: Int
    let body: (_ block: Int, _ worker: Int) throws(StorageError) -> Void
    let state = Mutex(State())

    private init(count: Int, body: @escaping (_ block: Int, _ worker: Int) throws(StorageError) -> Void) {
        self.count = count
        self.body = body
    }

    /// Calls `body(block, worker)` for every block in `0..<count`, `worker` in `0..<threads`.
    static func run(count: Int, _ body: @escaping (_ block: Int, _ worker: Int) throws(StorageError) -> Void) throws(StorageError) {
        let work = ParallelBlocks(count: count, body: body)
        var helpers: [pthread_t] = []
        for worker in 1..<max(1, min(threads, count)) {
            // No thread to be had: its share runs on this one instead.
            if let thread = Threads.start({ work.loop(worker: worker) }) { helpers.append(thread) }
        }
        work.loop(worker: 0)
        for thread in helpers { pthread_join(thread, nil) }
        if let failure = work.state.withLock({ $0.failure }) { throw failure }
    }

    func loop(worker: Int) {
        while true {
            let block: Int? = state.withLock { state in
                guard state.failure == nil, state.next < count else { return nil }
                defer { state.next += 1 }
                return state.next
            }
            guard let block else { return }
            do throws(StorageError) {
                try body(block, worker)
            } catch {
                state.withLock { state in
                    if state.failure == nil { state.failure = error }
                }
                return
            }
        }
    }
}
