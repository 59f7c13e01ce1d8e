import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// File operations the VHD engine and the copy-on-write code need beyond `Syscall`'s basics and
/// swift-system's `FileDescriptor`: modification times by path (a child records its parent's),
/// no-replace links, in-kernel copies and space reservation.
extension Syscall {
    /// The modification time of a file by path, nil when it cannot be read.
    public static func modificationTime(_ path: String) -> timespec? {
        fileStatus(path)?.st_mtim
    }

    /// Links `existing` as `new`; false when `new` already exists (nothing changed then).
    public static func linkNoReplace(_ existing: String, _ new: String) throws(StorageError) -> Bool {
        switch link(existing, new) {
        case .success: return true
        case .failure(.fileExists): return false
        case .failure(let code): throw .system(code, "link", path: "\(existing) -> \(new)")
        }
    }

    /// True when both paths name the same file (the same inode on the same device).
    public static func sameFile(_ first: String, _ second: String) -> Bool {
        guard let a = fileStatus(first), let b = fileStatus(second) else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    /// Starts the writeback of `count` bytes at `offset` (sync_file_range with
    /// SYNC_FILE_RANGE_WRITE) and returns without waiting for it: a long copy whose end is an
    /// fsync gets its pages to the disk while it copies the next ones, instead of all of them in
    /// that fsync. It promises nothing (the fsync still does); a filesystem that cannot is
    /// ignored. A `count` of 0 means to the end of the file.
    public static func startWriteback(_ descriptor: FileDescriptor, at offset: UInt64, count: Int) {
        let syncFileRangeWrite: UInt32 = 2  // SYNC_FILE_RANGE_WRITE
        _ = glibcSyncFileRange(descriptor.rawValue, off_t(offset), off_t(count), syncFileRangeWrite)
    }

    /// Copies `count` bytes between two files inside the kernel (copy_file_range), falling back
    /// to read and write where the filesystem cannot; returns how many bytes the source had.
    public static func copyRange(
        from source: FileDescriptor, at sourceOffset: UInt64, to destination: FileDescriptor,
        at destinationOffset: UInt64, count: Int, path: String
    ) throws(StorageError) -> Int {
        var done = 0
        var input = off_t(sourceOffset)
        var output = off_t(destinationOffset)
        while done < count {
            guard let copyFileRange = Self.copyFileRange else {
                let rest = try source.read(count: count - done, at: UInt64(input), path: path)
                try destination.writeAll(rest, at: UInt64(output), path: path)
                return done + rest.count
            }
            switch attempt({ copyFileRange(source.rawValue, &input, destination.rawValue, &output, count - done, 0) }) {
            case .success(0):
                return done
            case .success(let copied):
                done += copied
            case .failure(.improperLink), .failure(.noFunction), .failure(.invalidArgument), .failure(.notSupported):
                let rest = try source.read(count: count - done, at: UInt64(input), path: path)
                try destination.writeAll(rest, at: UInt64(output), path: path)
                return done + rest.count
            case .failure(let code):
                throw .system(code, "copy_file_range", path: path)
            }
        }
        return done
    }

    /// Reserves disk space for `length` bytes from `offset` without changing the file size
    /// (fallocate with FALLOC_FL_KEEP_SIZE), so that later writes there cannot fail with ENOSPC.
    /// False when the filesystem cannot reserve (NFSv3, some FUSE filesystems): the caller then
    /// relies on its write order alone. ENOSPC is thrown; the caller cuts what was reserved.
    public static func reserveSpace(_ descriptor: FileDescriptor, at offset: UInt64, length: UInt64, path: String) throws(StorageError)
        -> Bool
    {
        guard length > 0, let fallocate = Self.fallocate else { return false }
        switch attempt({ fallocate(descriptor.rawValue, keepSize, off_t(offset), off_t(length)) }) {
        case .success: return true
        case .failure(.notSupported), .failure(.noFunction), .failure(.invalidArgument): return false
        case .failure(let code): throw .system(code, "fallocate", path: path)
        }
    }

    /// FALLOC_FL_KEEP_SIZE from <linux/falloc.h>.
    static let keepSize: Int32 = 0x01

    typealias Fallocate = @Sendable (Int32, Int32, off_t, off_t) -> Int32

    /// glibc's fallocate (declared under _GNU_SOURCE, like `copyFileRange`).
    static let fallocate: Fallocate? = glibcFallocate

    typealias CopyFileRange = @Sendable (Int32, UnsafeMutablePointer<off_t>?, Int32, UnsafeMutablePointer<off_t>?, Int, UInt32) -> Int

    /// glibc's copy_file_range (2.27+). Swift's Glibc module does not import it (it is declared
    /// under _GNU_SOURCE), so it is bound by its symbol name below. (It was looked up with dlsym,
    /// which finds nothing in a fully static executable, Package.swift's `linkage`: the static
    /// drivers merged through user space and reserved no space before a resize.)
    static let copyFileRange: CopyFileRange? = glibcCopyFileRange
}

// The C functions by their symbol names; integer and pointer arguments only, which Swift passes
// as C does. Linked from glibc statically or dynamically alike.
@_silgen_name("copy_file_range")
private func glibcCopyFileRange(
    _ input: Int32, _ inputOffset: UnsafeMutablePointer<off_t>?, _ output: Int32, _ outputOffset: UnsafeMutablePointer<off_t>?,
    _ length: Int, _ flags: UInt32
) -> Int

@_silgen_name("fallocate")
private func glibcFallocate(_ descriptor: Int32, _ mode: Int32, _ offset: off_t, _ length: off_t) -> Int32

@_silgen_name("sync_file_range")
private func glibcSyncFileRange(_ descriptor: Int32, _ offset: off_t, _ count: off_t, _ flags: UInt32) -> Int32
