#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// File operations the VHD engine and the copy-on-write code need beyond `Syscall`'s basics:
/// reads into caller buffers (no copies through a chain), modification times (a child records
/// its parent's), truncation, and no-replace links.
extension Syscall {
    /// Reads up to `buffer.count` bytes at `offset` into `buffer`; returns how many (fewer only at end of file).
    public static func pread(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64,
                             path: String) throws(StorageError) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let got = try retrying("read", path: path) {
                Glibc.pread(descriptor, base + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            if got == 0 { break }
            done += got
        }
        return done
    }

    /// The modification time of an open file.
    public static func modificationTime(descriptor: Int32, path: String) throws(StorageError) -> timespec {
        try fileStatus(descriptor: descriptor, path: path).st_mtim
    }

    /// The modification time of a file by path, nil when it cannot be read.
    public static func modificationTime(_ path: String) -> timespec? {
        fileStatus(path)?.st_mtim
    }

    /// Sets the modification (and access) time of an open file.
    public static func setModificationTime(descriptor: Int32, _ time: timespec, path: String) throws(StorageError) {
        var times = [time, time]
        try retrying("futimens", path: path) { futimens(descriptor, &times) }
    }

    public static func truncate(_ descriptor: Int32, to length: UInt64, path: String) throws(StorageError) {
        try retrying("ftruncate", path: path) { ftruncate(descriptor, off_t(length)) }
    }

    /// Links `existing` as `new`; false when `new` already exists (nothing changed then).
    public static func linkNoReplace(_ existing: String, _ new: String) throws(StorageError) -> Bool {
        switch attempt({ link(existing, new) }) {
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
}
