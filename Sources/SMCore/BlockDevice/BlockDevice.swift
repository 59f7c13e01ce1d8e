import CBlkid
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A block device named by path: a disk, a partition, a loop device or an iSCSI LUN.
///
/// `init(path:)` checks that the path names a block device (symlinks such as `/dev/disk/by-id/...`
/// are followed); everything else (probe, size, wipe) opens it afresh, so a value never holds a
/// descriptor. This folder is the only importer of libblkid.
public struct BlockDevice: Sendable, Equatable {
    /// The path as given (not resolved), for messages.
    public let path: String
    /// The kernel's device number, to match `/proc/self/mountinfo` and lock by device.
    public let number: DeviceNumber

    /// Opens nothing; ENODEV when `path` does not exist or is not a block device.
    public init(path: String) throws(StorageError) {
        guard let status = Syscall.fileStatus(path) else { throw .noSuchBlockDevice(path, reason: "does not exist") }
        guard (status.st_mode & S_IFMT) == S_IFBLK else {
            let what = (status.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "a file or other non-block node"
            throw .noSuchBlockDevice(path, reason: "is \(what), not a block device")
        }
        self.path = path
        number = DeviceNumber(status.st_rdev)
    }

    /// The device's size in bytes, as the kernel reports it.
    public var size: UInt64 {
        get throws(StorageError) {
            let descriptor = try open(.readOnly)
            defer { descriptor.closeIgnoringErrors() }
            return try size(of: descriptor)
        }
    }

    func size(of descriptor: FileDescriptor) throws(StorageError) -> UInt64 {
        let bytes = blkid_get_dev_size(descriptor.rawValue)
        guard bytes > 0 else { throw .io("cannot read the size of block device \(path)") }
        return UInt64(bytes)
    }

    /// Opens the device. `exclusive` (O_EXCL on a block device): the kernel refuses (EBUSY) while
    /// the device is mounted or held by device-mapper, RAID or another exclusive opener, which is
    /// what a wipe needs.
    func open(_ mode: FileDescriptor.AccessMode, exclusive: Bool = false) throws(StorageError) -> FileDescriptor {
        do {
            return try path.withCString {
                try FileDescriptor.open($0, mode, options: exclusive ? [.closeOnExec, .exclusiveCreate] : .closeOnExec)
            }
        } catch Errno.resourceBusy {
            throw .blockDeviceInUse(path)
        } catch Errno.noSuchFileOrDirectory, Errno.noSuchAddressOrDevice, Errno.noSuchDevice {
            throw .noSuchBlockDevice(path, reason: "cannot be opened (no medium or gone)")
        } catch {
            throw .system(error as? Errno ?? .ioError, "open", path: path)
        }
    }
}

/// A Linux device number (`dev_t`) split into major and minor, as `/proc/self/mountinfo` prints it.
public struct DeviceNumber: Hashable, Sendable, CustomStringConvertible {
    public let major: UInt32
    public let minor: UInt32

    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    /// Splits glibc's 64-bit `dev_t` encoding (the `major()`/`minor()` macros of sys/sysmacros.h).
    public init(_ value: dev_t) {
        let raw = UInt64(value)
        major = UInt32(truncatingIfNeeded: ((raw >> 8) & 0x0000_0fff) | ((raw >> 32) & 0xffff_f000))
        minor = UInt32(truncatingIfNeeded: (raw & 0x0000_00ff) | ((raw >> 12) & 0xffff_ff00))
    }

    /// `major:minor`, as in mountinfo and `/sys/dev/block`.
    public var description: String { "\(major):\(minor)" }
}
