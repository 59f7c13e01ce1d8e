#if canImport(Glibc)
    import Glibc
#endif

/// Mounting and unmounting filesystems, for the drivers whose SR root is a mount (EXT, NFS,
/// EXT over iSCSI).
///
/// `mount` runs mount(8) through `ExternalCommand`, so filesystem helpers (`mount.nfs`) take part
/// and the reason line is mount's own. `unmount` calls umount2(2) directly, so that "busy" is the
/// kernel's EBUSY and not a parsed message. `/proc/self/mountinfo` is the truth for both.
public enum Mount {
    /// Mounts `source` (a device path or `server:/export`) on `mountPoint`, creating the directory
    /// (and its parents) when missing. EIO with mount's reason on failure; a mount point this call
    /// created is removed again.
    public static func mount(
        _ source: String, at mountPoint: String, type: String,
        options: [String] = []
    ) throws(StorageError) {
        let created = !Syscall.exists(mountPoint)
        try Syscall.makeDirectories(mountPoint)
        var arguments = ["-t", type]
        if !options.isEmpty { arguments += ["-o", options.joinedText(separator: ",")] }
        do throws(StorageError) {
            let output = try ExternalCommand.runAllowingFailure("mount", arguments + [source, mountPoint])
            guard output.status == 0 else {
                // mount(8) puts its reason first and "dmesg(1) may have more information" last.
                let reason = output.standardError.split(whereSeparator: \.isNewline)
                    .map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }.joinedText(separator: " ")
                throw .io("mount \(source) on \(mountPoint) failed (status \(output.status)): \(reason.isEmpty ? "no output" : reason)")
            }
            guard try isMounted(mountPoint) else {
                throw .io("mount \(source) on \(mountPoint) reported success but nothing is mounted there")
            }
        } catch {
            if created { try? Syscall.removeDirectoryIfPresent(mountPoint) }
            throw error
        }
    }

    /// Unmounts whatever is mounted on `mountPoint`; nothing mounted there is fine (idempotent).
    /// EBUSY while a process has files open in it. Symlinks are not followed.
    public static func unmount(_ mountPoint: String) throws(StorageError) {
        switch Syscall.attempt({ umount2(mountPoint, Int32(UMOUNT_NOFOLLOW)) }) {
        case .success:
            return
        case .failure(.resourceBusy):
            throw .mountPointBusy(mountPoint)
        case .failure(.invalidArgument), .failure(.noSuchFileOrDirectory):
            // Not a mount point (or not there): check rather than trust the errno.
            if try isMounted(mountPoint) { throw .io("cannot unmount \(mountPoint): umount2 refused (EINVAL)") }
        case .failure(let code):
            throw .system(code, "umount", path: mountPoint)
        }
    }

    /// Removes an (empty) mount-point directory after an unmount; one that still holds something
    /// stays, which only costs a `--verbose` line.
    public static func removeMountPoint(_ path: String) {
        do throws(StorageError) {
            try Syscall.removeDirectoryIfPresent(path)
        } catch {
            Diagnostics.debug("leaving mount point \(path): \(error)")
        }
    }

    /// True when a filesystem is mounted exactly on `mountPoint`.
    public static func isMounted(_ mountPoint: String) throws(StorageError) -> Bool {
        try MountTable.current().entry(at: mountPoint) != nil
    }
}
