/// An ext4 filesystem on a block device, through e2fsprogs (mkfs.ext4, tune2fs, e2fsck) run by
/// `ExternalCommand`: the substrate of EXTSR and EXToISCSISR.
public enum Ext4 {
    /// The `-t` of mount(8) and libblkid's `TYPE`.
    public static let type = "ext4"
    /// The longest label ext4 stores (bytes).
    public static let maximumLabelLength = 16
    /// The smallest filesystem worth making: room for the journal and a few VHD files.
    public static let minimumSize: UInt64 = 32 << 20

    /// Makes an ext4 filesystem of `size` bytes (rounded down to a KiB; nil for the whole device)
    /// with the given UUID and label, no blocks reserved for root, and nothing asked on stdin.
    ///
    /// mke2fs writes the primary superblock last (after the group descriptors, in `ext2fs_flush`),
    /// so until it has finished libblkid finds no ext4 on the device: a crash part-way leaves a
    /// device that probes blank (or as it was, had it not been wiped), never a half-made SR.
    ///
    /// `lock` (the caller's claim on the device) is held by mkfs.ext4 too, until it exits: a
    /// caller killed part-way leaves the device claimed while its mkfs still writes.
    public static func make(on device: BlockDevice, uuid: CanonicalUUID, label: String,
                            size: UInt64?, holding lock: HostLock? = nil) throws(StorageError) {
        precondition(label.utf8.count <= maximumLabelLength, "ext4 labels hold at most 16 bytes")
        var arguments = ["-F", "-q", "-m", "0", "-U", uuid.string, "-L", label, device.path]
        if let size { arguments.append("\(size / 1024)k") }
        try ExternalCommand.run("mkfs.ext4", arguments, holding: lock)
    }

    /// Rewrites the label in the superblock (the filesystem must not be mounted); tune2fs holds
    /// `lock` until it exits, as mkfs.ext4 does.
    public static func setLabel(_ label: String, on device: BlockDevice, holding lock: HostLock? = nil) throws(StorageError) {
        precondition(label.utf8.count <= maximumLabelLength, "ext4 labels hold at most 16 bytes")
        try ExternalCommand.run("tune2fs", ["-L", label, device.path], holding: lock)
    }

    /// `e2fsck -p` ("preen"): replays the journal and fixes what is safe to fix without asking; a
    /// clean filesystem costs a superblock read. EIO when it finds what it cannot fix.
    public static func check(_ device: BlockDevice, holding lock: HostLock? = nil) throws(StorageError) {
        let output = try ExternalCommand.runAllowingFailure("e2fsck", ["-p", device.path], holding: lock)
        // e2fsck's exit bits: 1 = errors corrected, 2 = corrected and a reboot advised (root only).
        let corrected: Int32 = 1 | 2
        guard output.status & ~corrected == 0 else {
            let reason = ExternalCommand.lastLine(output.standardError) ?? ExternalCommand.lastLine(output.standardOutput)
                ?? "no output"
            throw .io("e2fsck -p \(device.path) failed (status \(output.status)): \(reason); run e2fsck -f \(device.path) by hand")
        }
        if output.status != 0 { Diagnostics.debug("e2fsck corrected errors on \(device.path)") }
    }
}
