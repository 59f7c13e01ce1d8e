#if canImport(Glibc)
    import Glibc
#endif

/// One line of `/proc/self/mountinfo` (proc(5)).
public struct MountEntry: Sendable, Equatable {
    /// The device the mounted filesystem lives on (`0:N` for network and pseudo filesystems).
    public var device: DeviceNumber
    /// The directory within the filesystem that is mounted (`/` unless a bind mount).
    public var root: String
    public var mountPoint: String
    public var fileSystemType: String
    /// What was mounted: a device path, `server:/export`, or a pseudo name.
    public var source: String
    /// Per-mount options (`rw`, `relatime` ...).
    public var options: [String]

    public var isReadOnly: Bool { options.contains("ro") }
}

/// The mounts this process sees, read from `/proc/self/mountinfo`: the one place that says what
/// is mounted (Debian's `/etc/mtab` is a link to the kernel's table anyway).
public struct MountTable: Sendable {
    public static let path = "/proc/self/mountinfo"
    /// Larger tables (thousands of container mounts) are read up to this much.
    static let readLimit = 8 << 20

    public var entries: [MountEntry]

    /// The table as it is now.
    public static func current() throws(StorageError) -> MountTable {
        let descriptor = try Syscall.open(path, .readOnly)
        defer { descriptor.closeIgnoringErrors() }
        let bytes = try descriptor.readToEnd(limit: readLimit, path: path)
        return MountTable(mountinfo: String(decoding: bytes, as: UTF8.self))
    }

    /// Parses mountinfo text; lines that do not have its shape are skipped.
    public init(mountinfo: String) {
        entries = mountinfo.split(separator: "\n").compactMap { Self.parse(String($0)) }
    }

    /// The filesystem mounted on `mountPoint` (the topmost, if several are stacked), or nil.
    /// `mountPoint` is compared after resolving symlinks, as the kernel prints it.
    public func entry(at mountPoint: String) -> MountEntry? {
        let resolved = Self.resolve(mountPoint)
        return entries.last { $0.mountPoint == resolved }
    }

    /// Every mount of a filesystem on `device`.
    public func entries(on device: DeviceNumber) -> [MountEntry] {
        entries.filter { $0.device == device }
    }

    /// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
    /// ID, parent, major:minor, root, mount point, options, optional fields, `-`, type, source, super options.
    static func parse(_ line: String) -> MountEntry? {
        // Single spaces only: the kernel escapes spaces in fields, and an empty source is an empty field.
        let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 10, let separator = fields.firstIndex(of: "-"), separator >= 6,
            fields.count >= separator + 3
        else { return nil }
        let numbers = fields[2].split(separator: ":")
        guard numbers.count == 2, let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]) else { return nil }
        return MountEntry(
            device: DeviceNumber(major: major, minor: minor), root: unescape(fields[3]),
            mountPoint: unescape(fields[4]), fileSystemType: unescape(fields[separator + 1]),
            source: unescape(fields[separator + 2]),
            options: fields[5].split(separator: ",").map(String.init))
    }

    /// The kernel writes space, tab, newline and backslash in paths as `\040`, `\011`, `\012`, `\134`.
    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var bytes: [UInt8] = []
        let source = Array(field.utf8)
        var index = 0
        while index < source.count {
            if source[index] == UInt8(ascii: "\\"), index + 3 < source.count,
                let value = UInt8(String(decoding: source[(index + 1)...(index + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(source[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `path` with symlinks resolved, or as given when it does not exist.
    static func resolve(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
