import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Where vdi_export writes: stdout, a pipe or a file, from its current offset on.
///
/// A fresh regular file (no append mode, nothing past the current offset: `> file`) is
/// *seekable*: runs of zeros are skipped (holes, the file stays sparse) and blocks are written at
/// their offsets, several at once; at the end the file is cut to the exact length and its
/// offset left there. Anything else (a pipe, a terminal refused earlier, a file opened to append
/// or over old contents) gets every byte, zeros included, in order.
final class TransferOutput {
    let descriptor: FileDescriptor
    let name = "stdout"
    let seekable: Bool
    let base: UInt64
    /// Bytes of the stream produced so far (written or skipped).
    private(set) var position: UInt64 = 0
    private static let zeros = [UInt8](repeating: 0, count: Int(TransferBlock.size))

    init(_ descriptor: FileDescriptor) {
        self.descriptor = descriptor
        var seekable = false
        var base: UInt64 = 0
        if let status = try? descriptor.status(path: "stdout"), (status.st_mode & S_IFMT) == S_IFREG,
            fcntl(descriptor.rawValue, F_GETFL) & O_APPEND == 0,
            let offset = try? descriptor.seek(offset: 0, from: .current), offset >= 0, UInt64(offset) == UInt64(status.st_size)
        {
            seekable = true
            base = UInt64(offset)
        }
        self.seekable = seekable
        self.base = base
    }

    /// Appends `bytes` to the stream.
    func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
        var done = 0
        while done < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[done...])
            let wrote: Int
            if seekable {
                wrote = try Syscall.call("write", path: name) {
                    try descriptor.write(toAbsoluteOffset: Int64(base + position) + Int64(done), rest)
                }
            } else {
                wrote = try Syscall.call("write", path: name) { try descriptor.write(rest) }
            }
            done += wrote
        }
        position += UInt64(bytes.count)
    }

    func write(_ bytes: [UInt8]) throws(StorageError) {
        let outcome: Result<Void, StorageError> = bytes.withUnsafeBytes { buffer in
            do throws(StorageError) {
                try write(buffer)
                return .success(())
            } catch { return .failure(error) }
        }
        try outcome.get()
    }

    /// Appends `count` zero bytes: a hole when seekable.
    func zeros(_ count: UInt64) throws(StorageError) {
        if seekable {
            position += count
            return
        }
        var left = count
        while left > 0 {
            let step = Int(min(left, UInt64(Self.zeros.count)))
            try Self.zeros.withTransferBytes { buffer throws(StorageError) in try write(UnsafeRawBufferPointer(rebasing: buffer[0..<step]))
            }
            left -= UInt64(step)
        }
    }

    /// `count` bytes of a seekable stream were written by others at explicit offsets
    /// (`base + position` onwards: `ParallelBlocks`); the stream continues after them.
    func skipWritten(_ count: UInt64) {
        precondition(seekable, "only a seekable output is written at explicit offsets")
        position += count
    }

    /// The stream is complete: a seekable file gets its exact length (a final hole) and its
    /// offset at the end, as if every byte had been written.
    func finish() throws(StorageError) {
        guard seekable else { return }
        try descriptor.resize(to: base + position, path: name)
        _ = try Syscall.call("lseek", path: name) { try descriptor.seek(offset: Int64(base + position), from: .start) }
    }
}
