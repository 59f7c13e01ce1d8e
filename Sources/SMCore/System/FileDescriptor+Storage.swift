import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Open files are swift-system `FileDescriptor`s: open, positioned reads and writes, resize and
/// close are swift-system's (which retries EINTR itself). Bytes in contiguous storage are written
/// with its non-generic `write` in a loop (short writes continue): its generic `writeAll`, not
/// specialised here, looks up a conformance at its first call by scanning every conformance record
/// of the executable (Docs/performance.md); other sequences still go through it. These few methods add
/// what SMCore needs on top: failures as `StorageError` naming the operation and the file's path
/// (the errno kept as the cause), reads that fill their buffer unless the file ends, and the
/// calls swift-system does not have (fsync, fstat into a `stat`, futimens).
extension FileDescriptor {
    /// Writes all of `bytes` at `offset` (pwrite; the file offset is not moved).
    public func writeAll(_ bytes: some Sequence<UInt8>, at offset: UInt64, path: String) throws(StorageError) {
        try Syscall.call("write", path: path) {
            let written: Void? = try bytes.withContiguousStorageIfAvailable { try writeWhole(UnsafeRawBufferPointer($0), at: offset) }
            if written == nil { _ = try writeAll(toAbsoluteOffset: Int64(offset), bytes) }
        }
    }

    /// Writes all of `buffer` at `offset` (pwrite; the file offset is not moved).
    public func writeAll(_ buffer: UnsafeRawBufferPointer, at offset: UInt64, path: String) throws(StorageError) {
        try Syscall.call("write", path: path) { try writeWhole(buffer, at: offset) }
    }

    /// Writes all of `bytes` at the current offset: a pipe, or a file opened to append.
    public func writeAll(_ bytes: some Sequence<UInt8>, path: String) throws(StorageError) {
        try Syscall.call("write", path: path) {
            let written: Void? = try bytes.withContiguousStorageIfAvailable { try writeWhole(UnsafeRawBufferPointer($0)) }
            if written == nil { _ = try writeAll(bytes) }
        }
    }

    /// Writes all of `buffer` at the current offset with the non-generic `write`, as many times as
    /// it takes; swift-system's errors as they are (`Diagnostics` words its own).
    func writeWhole(_ buffer: UnsafeRawBufferPointer) throws {
        var rest = buffer
        while !rest.isEmpty { rest = UnsafeRawBufferPointer(rebasing: rest[try write(rest)...]) }
    }

    /// Writes all of `buffer` at `offset` with the non-generic `pwrite`, as many times as it takes.
    func writeWhole(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < buffer.count {
            done += try write(toAbsoluteOffset: Int64(offset) + Int64(done), UnsafeRawBufferPointer(rebasing: buffer[done...]))
        }
    }

    /// Reads up to `buffer.count` bytes at `offset` into `buffer`; returns how many (fewer only
    /// at end of file).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, path: String) throws(StorageError) -> Int {
        var done = 0
        while done < buffer.count {
            let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            let got = try Syscall.call("read", path: path) { try read(fromAbsoluteOffset: Int64(offset) + Int64(done), into: rest) }
            if got == 0 { break }
            done += got
        }
        return done
    }

    /// Reads up to `count` bytes at `offset`; fewer only at end of file.
    public func read(count: Int, at offset: UInt64, path: String) throws(StorageError) -> [UInt8] {
        var failure: StorageError?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(StorageError) {
                initialized = try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset, path: path)
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Reads a pipe or file from its current offset until end of file or `limit` bytes.
    public func readToEnd(limit: Int, path: String) throws(StorageError) -> [UInt8] {
        var failure: StorageError?
        let bytes = [UInt8](unsafeUninitializedCapacity: limit) { buffer, initialized in
            initialized = 0
            while initialized < limit {
                let rest = UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[initialized...])
                do throws(StorageError) {
                    let got = try Syscall.call("read", path: path) { try read(into: rest) }
                    if got == 0 { break }
                    initialized += got
                } catch {
                    failure = error
                    break
                }
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Sets the file's size (ftruncate).
    public func resize(to size: UInt64, path: String) throws(StorageError) {
        try Syscall.call("ftruncate", path: path) { try resize(to: Int64(size)) }
    }

    /// Closes, ignoring a failure: for descriptors only read from, or abandoned after a failure
    /// already being reported. A written file whose contents matter is fsynced first.
    public func closeIgnoringErrors() {
        try? close()
    }

    /// Makes the file's contents durable (fsync; swift-system has no call for it).
    public func sync(path: String) throws(StorageError) {
        try Syscall.retrying("fsync", path: path) { Glibc.fsync(rawValue) }
    }

    /// The file's status (fstat).
    public func status(path: String) throws(StorageError) -> stat {
        do throws(Errno) { return try stat().rawValue } catch { throw .system(error, "fstat", path: path) }
    }

    /// The file's size in bytes.
    public func size(path: String) throws(StorageError) -> UInt64 {
        UInt64(try status(path: path).st_size)
    }

    /// Sets the modification (and access) time (futimens; swift-system has no call for it).
    public func setModificationTime(_ time: timespec, path: String) throws(StorageError) {
        var times = [time, time]
        try Syscall.retrying("futimens", path: path) { futimens(rawValue, &times) }
    }
}
