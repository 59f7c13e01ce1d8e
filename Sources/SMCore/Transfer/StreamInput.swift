import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// What vdi_import reads: stdin, a pipe or a file, once, from its current offset to its end.
/// Every read says what it expected, so that a stream cut short fails naming the place.
final class StreamInput {
    let descriptor: FileDescriptor
    let name = "stdin"
    /// Bytes consumed so far.
    private(set) var position: UInt64 = 0

    init(_ descriptor: FileDescriptor) {
        self.descriptor = descriptor
    }

    /// Reads until `buffer` is full or the stream ends; returns how many bytes came.
    func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int {
        var done = 0
        while done < buffer.count {
            let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            let got = try Syscall.call("read", path: name) { try descriptor.read(into: rest) }
            if got == 0 { break }
            done += got
        }
        position += UInt64(done)
        return done
    }

    /// Exactly `buffer.count` bytes; EIO when the stream ends first (`expected` says what was due).
    func fillExactly(_ buffer: UnsafeMutableRawBufferPointer, expected: @autoclosure () -> String) throws(StorageError) {
        let got = try fill(buffer)
        guard got == buffer.count else { throw .streamEnded(after: position, expected: expected()) }
    }

    func read(_ count: Int, expected: @autoclosure () -> String) throws(StorageError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let outcome: Result<Void, StorageError> = bytes.withUnsafeMutableBytes { buffer in
            do throws(StorageError) {
                try fillExactly(buffer, expected: expected())
                return .success(())
            } catch { return .failure(error) }
        }
        try outcome.get()
        return bytes
    }

    /// Reads and drops everything up to `offset` of the stream. EINVAL when the stream is
    /// already past it (the VHD puts two things in one place, or out of order).
    func skip(to offset: UInt64, what: String) throws(StorageError) {
        guard offset >= position else {
            throw .badStream("the VHD's \(what) at offset \(offset) overlaps what comes before it (ends at \(position))")
        }
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        while position < offset {
            let step = Int(min(offset - position, UInt64(scratch.count)))
            let outcome: Result<Void, StorageError> = scratch.withUnsafeMutableBytes { buffer in
                do throws(StorageError) {
                    try fillExactly(
                        UnsafeMutableRawBufferPointer(rebasing: buffer[0..<step]),
                        expected: "expected the VHD's \(what) at offset \(offset)")
                    return .success(())
                } catch { return .failure(error) }
            }
            try outcome.get()
        }
    }

    /// lseek's SEEK_DATA (<unistd.h>, a GNU extension Swift's Glibc module does not import).
    static let seekData: Int32 = 3

    /// Whether the stream is a regular file (stdin redirected from one), where holes can be found.
    private lazy var isRegularFile: Bool = {
        guard let status = try? descriptor.status(path: name) else { return false }
        return (status.st_mode & S_IFMT) == S_IFREG
    }()

    /// Passes the next `length` bytes without reading them when the stream is a regular file
    /// that holds no data there (a hole: zeros by definition, SEEK_DATA says so) and is long
    /// enough; false (nothing consumed) otherwise. EIO only when the offset cannot be put back.
    func skipHole(_ length: UInt64) throws(StorageError) -> Bool {
        guard length > 0, isRegularFile, case .success(let current) = Syscall.attempt({ lseek(descriptor.rawValue, 0, SEEK_CUR) }),
            let status = try? descriptor.status(path: name), UInt64(status.st_size) >= UInt64(current) + length
        else { return false }
        // SEEK_DATA moves the offset to the data it finds: put it back when that lies inside.
        switch Syscall.attempt({ lseek(descriptor.rawValue, current, Self.seekData) }) {
        case .success(let data) where UInt64(data) >= UInt64(current) + length: break
        case .failure(.noSuchAddressOrDevice): break  // ENXIO: no data after `current` at all
        case .success:
            _ = try Syscall.call("lseek", path: name) { try descriptor.seek(offset: Int64(current), from: .start) }
            return false
        default: return false
        }
        guard case .success = Syscall.attempt({ lseek(descriptor.rawValue, current + off_t(length), SEEK_SET) }) else { return false }
        position += length
        return true
    }

    /// The rest of the stream, nil when it holds more than `limit` bytes (the rest is not read).
    func rest(limit: Int) throws(StorageError) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        let got: Result<Int, StorageError> = bytes.withUnsafeMutableBytes { buffer in
            do throws(StorageError) { return .success(try fill(buffer)) } catch { return .failure(error) }
        }
        let count = try got.get()
        return count > limit ? nil : Array(bytes[0..<count])
    }
}
