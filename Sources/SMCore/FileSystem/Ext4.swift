#if canImport(Glibc)
    import Glibc
#endif

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
    ///
    /// `multiMountProtection` adds ext4's MMP (`-O mmp`, update interval
    /// `multiMountUpdateInterval`): a device that several hosts see then refuses a second mount.
    public static func make(
        on device: BlockDevice, uuid: CanonicalUUID, label: String,
        size: UInt64?, multiMountProtection: Bool = false,
        holding lock: HostLock? = nil
    ) throws(StorageError) {
        precondition(label.utf8.count <= maximumLabelLength, "ext4 labels hold at most 16 bytes")
        var arguments = ["-F", "-q", "-m", "0", "-U", uuid.string, "-L", label]
        if multiMountProtection {
            arguments += ["-O", "mmp", "-E", "mmp_update_interval=\(multiMountUpdateInterval)"]
        }
        arguments.append(device.path)
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
            let reason =
                ExternalCommand.lastLine(output.standardError) ?? ExternalCommand.lastLine(output.standardOutput)
                ?? "no output"
            throw .io("e2fsck -p \(device.path) failed (status \(output.status)): \(reason); run e2fsck -f \(device.path) by hand")
        }
        if output.status != 0 { Diagnostics.debug("e2fsck corrected errors on \(device.path)") }
    }

    // MARK: Multi-mount protection (MMP)

    /// Seconds between the MMP block updates of the host that has the filesystem mounted: the
    /// kernel's smallest check interval (EXT4_MMP_MIN_CHECK_INTERVAL), so a mount or fsck waits
    /// the least it can, 2 × 5 + 1 = 11 s, to see whether another host updates the block.
    public static let multiMountUpdateInterval = 5

    /// The MMP block as `debugfs -R dump_mmp` shows it.
    public struct MultiMountBlock: Sendable, Equatable {
        /// `mmp_seq` when no host has the filesystem open (EXT4_MMP_SEQ_CLEAN).
        public static let clean: UInt32 = 0xFF4D_4D50
        /// `mmp_seq` while e2fsck has it open (EXT4_MMP_SEQ_FSCK).
        public static let fsck: UInt32 = 0xE24D_4D50

        public var sequence: UInt32
        /// The update interval of the superblock, seconds.
        public var updateInterval: Int
        /// The holder's check interval, seconds (kmmpd writes it).
        public var checkInterval: Int
        /// Seconds since the epoch of the last update.
        public var time: Int
        /// The node name (the kernel's host name) and device name of the last opener.
        public var nodeName: String
        public var deviceName: String

        public var isClean: Bool { sequence == Self.clean }

        /// How long a mount or e2fsck waits to see whether the holder is alive (ext4's rule).
        public var livenessWait: Int {
            let interval = max(max(updateInterval, checkInterval), 5)
            return min(2 * interval + 1, interval + 60)
        }

        /// The holder in words, for messages.
        public var holderDescription: String {
            let who = "node '\(ArgumentParsing.printable(nodeName))' (device '\(ArgumentParsing.printable(deviceName))')"
            return sequence == Self.fsck ? "e2fsck on \(who)" : who
        }

        /// Parses the `key: value` lines of `debugfs -R dump_mmp`; nil when a field is missing.
        public init?(dumpMMP text: String) {
            var fields: [String: String] = [:]
            for line in text.split(whereSeparator: \.isNewline) {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let key = String(line[..<colon]).trimmingWhitespace()
                fields[key] = String(line[line.index(after: colon)...]).trimmingWhitespace()
            }
            guard let sequenceText = fields["sequence"], let sequence = UInt32(sequenceText, radix: 16),
                let update = fields["update_interval"].flatMap({ Int($0) }),
                let check = fields["check_interval"].flatMap({ Int($0) })
            else { return nil }
            self.sequence = sequence
            updateInterval = update
            checkInterval = check
            time = fields["time"].flatMap { $0.split(separator: " ").first }.flatMap { Int($0) } ?? 0
            nodeName = fields["node_name"] ?? ""
            deviceName = fields["device_name"] ?? ""
        }
    }

    /// The filesystem's MMP block, read without taking part in the protocol (debugfs opens
    /// read-only, so it neither waits nor writes); nil when the filesystem has no MMP.
    ///
    /// `-c` (debugfs's "catastrophic" open) reads the superblock and group descriptors but not
    /// the allocation bitmaps: on a filesystem another host has mounted and writes, this host's
    /// cached descriptors and the bitmaps read after them disagree for seconds at a time, and a
    /// full open then fails ("Inode bitmap checksum does not match bitmap"), which is when the
    /// block is wanted most. The MMP block itself is read with O_DIRECT either way.
    public static func multiMountBlock(_ device: BlockDevice) throws(StorageError) -> MultiMountBlock? {
        let output = try ExternalCommand.runAllowingFailure("debugfs", ["-c", "-R", "dump_mmp", device.path])
        let text = output.standardOutput + "\n" + output.standardError
        if text.contains("not active on this filesystem") { return nil }
        guard output.status == 0, let block = MultiMountBlock(dumpMMP: output.standardOutput) else {
            let reason = ExternalCommand.lastLine(output.standardError) ?? "no output"
            throw .io("debugfs -c -R dump_mmp \(device.path) failed (status \(output.status)): \(reason)")
        }
        return block
    }

    /// The messages of e2fsprogs' MMP refusals (lib/ext2fs/ext2_err.et.in): another host has
    /// the filesystem, e2fsck runs on it, or an operation e2fsprogs does not know holds it.
    static let multiMountRefusals = [
        "MMP: device currently active", "MMP: e2fsck being run", "MMP: undergoing an unknown operation"
    ]

    /// The MMP refusal an e2fsprogs message reports, or nil.
    public static func multiMountRefusal(in message: String) -> String? {
        multiMountRefusals.first { message.contains($0) }
    }

    /// The block of a live holder of the filesystem on another host, or nil. Clean: nil at
    /// once. Held by e2fsck: that holder. Otherwise waits as ext4 does (`livenessWait`, 11 s with
    /// our interval) and reads again: a changed block is a live holder; an unchanged one was left
    /// by a host that died, and the filesystem is free.
    public static func liveHolder(_ device: BlockDevice) throws(StorageError) -> MultiMountBlock? {
        guard let first = try multiMountBlock(device), !first.isClean else { return nil }
        if first.sequence == MultiMountBlock.fsck { return first }
        Syscall.sleep(seconds: Double(first.livenessWait))
        guard let second = try multiMountBlock(device), !second.isClean else { return nil }
        return second.sequence != first.sequence || second.sequence == MultiMountBlock.fsck ? second : nil
    }

    /// Turns on MMP in a filesystem made without it (not mounted anywhere: the caller checks).
    public static func enableMultiMountProtection(on device: BlockDevice, holding lock: HostLock? = nil) throws(StorageError) {
        try ExternalCommand.run(
            "tune2fs", ["-O", "mmp", "-E", "mmp_update_interval=\(multiMountUpdateInterval)", device.path],
            holding: lock)
    }
}
