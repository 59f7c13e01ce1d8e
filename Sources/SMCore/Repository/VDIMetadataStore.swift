import SystemPackage

/// Per-VDI attributes the VHD format has no room for (label, description, read-only), kept as
/// small `key=value` files under `<SR root>/.sm/vdi/<VDI-UUID>`, each written atomically.
public struct VDIMetadataStore: Sendable {
    public let directory: String

    public init(srRoot: String) {
        directory = "\(srRoot)/.sm/vdi"
    }

    public func path(_ vdi: CanonicalUUID) -> String { "\(directory)/\(vdi)" }

    /// The attributes of `vdi`, empty when none were recorded or what has the file's name is not
    /// a regular file (never opened then: a FIFO there would hold sr_scan forever).
    public func attributes(of vdi: CanonicalUUID) -> [String: String] {
        guard let bytes = try? Syscall.readRegularFile(path(vdi), limit: 1 << 16) else { return [:] }
        return KeyValueLines(bytes).dictionary
    }

    /// The names in the attribute directory (VDI UUIDs, and temporaries of attribute writes):
    /// a VDI whose UUID is not among them has no attributes. Empty when there is no directory.
    public func recordedVDIs() -> Set<String> {
        Set((try? Syscall.directoryEntries(directory)) ?? [])
    }

    /// Replaces the attributes of `vdi` (values must not contain line breaks).
    public func setAttributes(_ attributes: [String: String], of vdi: CanonicalUUID) throws(StorageError) {
        try Syscall.makeDirectories(directory)
        try Syscall.writeFileAtomically(path(vdi), Array(Self.text(attributes).utf8))
    }

    /// Writes the attributes of a VDI that a copy-on-write operation is creating, without
    /// waiting for the disk: under a claimed temporary name (`<VDI>.tmp.<id>`), renamed into
    /// place at once. Nothing is durable until `StagedAttributes.makeDurable()` (the file, then
    /// the directory); the operation's intent record covers the time between (recovery removes
    /// the file when it rolls back and writes it again when it rolls forward).
    public func stageAttributes(_ attributes: [String: String], of vdi: CanonicalUUID) throws(StorageError) -> StagedAttributes {
        try Syscall.makeDirectories(directory)
        let target = path(vdi)
        let temporary = target + Syscall.temporarySuffix + String(CanonicalUUID.random().string.prefix(8))
        let descriptor = try ClaimedTemporary.create(temporary)
        do throws(StorageError) {
            try descriptor.writeAll(Array(Self.text(attributes).utf8), at: 0, path: temporary)
            try Syscall.rename(temporary, target)
        } catch {
            descriptor.closeIgnoringErrors()
            try? Syscall.unlinkIfPresent(temporary)
            throw error
        }
        return StagedAttributes(descriptor: descriptor, path: target, directory: directory)
    }

    static func text(_ attributes: [String: String]) -> String {
        attributes.keys.sorted().map { key in
            "\(key)=\(attributes[key]!.split(whereSeparator: \.isNewline).map(String.init).joinedText(separator: " "))"
        }.joinedText(separator: "\n") + "\n"
    }

    public func remove(_ vdi: CanonicalUUID) throws(StorageError) {
        try Syscall.unlinkIfPresent(path(vdi))
    }
}

/// Attributes `VDIMetadataStore.stageAttributes` wrote and renamed into place, not yet durable.
public final class StagedAttributes {
    let descriptor: FileDescriptor
    let path: String
    let directory: String
    private var open = true

    init(descriptor: FileDescriptor, path: String, directory: String) {
        self.descriptor = descriptor
        self.path = path
        self.directory = directory
    }

    deinit { if open { descriptor.closeIgnoringErrors() } }

    /// fsync of the file's contents, then of the directory that names it.
    public func makeDurable() throws(StorageError) {
        try descriptor.sync(path: path)
        try Syscall.fsyncDirectory(directory)
        descriptor.closeIgnoringErrors()
        open = false
    }
}
