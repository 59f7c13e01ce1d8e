import SMCore

/// A logical volume, by volume group and name, over liblvm2cmd.
public struct LogicalVolume {
    public let volumeGroup: String
    public let name: String
    let lvm: LVMHandle

    /// The block device LVM (or udev) makes for it while it is active.
    public var path: String { "/dev/\(volumeGroup)/\(name)" }
    /// `VG/LV`, as LVM commands name it.
    public var qualifiedName: String { "\(volumeGroup)/\(name)" }

    /// Whether LVM has the volume active on this host.
    public enum Activation: Sendable, Equatable {
        case active
        case inactive
        /// LVM cannot tell: activation is disabled by configuration (`global/activation = 0`)
        /// or device-mapper is not available.
        case unknown
    }

    /// What `lvs` says about a logical volume.
    public struct Report: Sendable, Equatable {
        public var name: String
        public var size: UInt64
        /// `lv_attr`, e.g. `-wi-a-----`.
        public var attributes: String
        public var activation: Activation
        /// Whether something holds the device open; nil when LVM cannot tell.
        public var isOpen: Bool?
        /// `lv_tags`: the VDI's type, parent, virtual size and hidden flag (`VDITags`).
        public var tags: [String]

        static let fields = "lv_name,lv_size,lv_attr,lv_active,lv_device_open,lv_tags"

        public init(name: String, size: UInt64, attributes: String, activation: Activation, isOpen: Bool?, tags: [String] = []) {
            self.name = name
            self.size = size
            self.attributes = attributes
            self.activation = activation
            self.isOpen = isOpen
            self.tags = tags
        }

        init(_ row: LVMReport.Row) throws(StorageError) {
            name = try row.text("lv_name")
            size = try row.number("lv_size")
            attributes = try row.text("lv_attr")
            switch try row.text("lv_active") {
            case "unknown": activation = .unknown
            case "": activation = .inactive
            default: activation = .active
            }
            switch try row.text("lv_device_open") {
            case "unknown": isOpen = nil
            case "": isOpen = false
            default: isOpen = true
            }
            tags = (row.fields["lv_tags"] ?? "").split(separator: ",").map(String.init)
        }

        /// The permission letter of `lv_attr` is `r` for a read-only volume.
        public var isReadOnly: Bool {
            let letters = Array(attributes)
            return letters.count > 1 && letters[1] == "r"
        }
    }

    /// Activates the volume (`lvchange --activate y`; in a shared group `ey`, exclusively, or
    /// with `shared` `sy`, read by several hosts at once: LVM takes the volume's lock from
    /// lvmlockd in that mode first and keeps it until deactivation). With activation disabled by
    /// configuration LVM does nothing and reports success. EBUSY when another host has the
    /// volume active in a mode that excludes this one (an exclusive lock excludes every other).
    public func activate(shared: Bool = false) throws(StorageError) {
        let mode = lvm.locking.isShared ? (shared ? "sy" : "ey") : "y"
        try runLocked(LVMCommand("lvchange", ["-qq", "--activate", mode, qualifiedName]))
    }

    /// Deactivates the volume; LVM refuses while it is open.
    public func deactivate() throws(StorageError) {
        try lvm.run(LVMCommand("lvchange", ["-qq", "--activate", "n", qualifiedName]))
    }

    /// Removes the volume, deactivating it first if needed (`--force` answers that question;
    /// callers check that it is not in use). EBUSY when another host has it active.
    public func remove() throws(StorageError) {
        try runLocked(LVMCommand("lvremove", ["-qq", "--force", qualifiedName]))
    }

    /// Grows the volume to `extents` extents. EBUSY when another host has it active.
    public func extend(toExtents extents: UInt64) throws(StorageError) {
        try runLocked(LVMCommand("lvextend", ["-qq", "--extents", String(extents), qualifiedName]))
    }

    /// Shrinks the volume to `extents` extents (`--force` answers LVM's "really reduce?": the
    /// caller has checked that nothing past them is in use).
    public func reduce(toExtents extents: UInt64) throws(StorageError) {
        try runLocked(LVMCommand("lvreduce", ["-qq", "--force", "--extents", String(extents), qualifiedName]))
    }

    /// Renames the volume within its group (one metadata commit; LVM refuses a name in use).
    public func rename(to newName: String) throws(StorageError) {
        try lvm.run(LVMCommand("lvrename", ["-qq", volumeGroup, name, newName]))
    }

    /// Adds and removes tags in one metadata commit.
    public func changeTags(adding: [String] = [], removing: [String] = []) throws(StorageError) {
        guard !adding.isEmpty || !removing.isEmpty else { return }
        let arguments = adding.flatMap { ["--addtag", $0] } + removing.flatMap { ["--deltag", $0] }
        try lvm.run(LVMCommand("lvchange", ["-qq"] + arguments + [qualifiedName]))
    }

    /// Runs a command that needs the volume's lock in a shared group: lvmlockd refuses it while
    /// another host holds the lock (the volume is active there), which is EBUSY; any other
    /// failure is LVM's (EIO).
    private func runLocked(_ command: LVMCommand) throws(StorageError) {
        let outcome = try lvm.attempt(command)
        guard !outcome.succeeded else { return }
        if outcome.errors.contains(where: { $0.hasPrefix(Self.lockedByOtherHost) }) {
            throw .activeOnAnotherHost(qualifiedName)
        }
        throw .lvmFailed(command, outcome)
    }

    /// lvmlockd's words (lib/locking/lvmlockd.c, `lockd_lv`) when another host holds the lock.
    static let lockedByOtherHost = "LV locked by other host"
}
