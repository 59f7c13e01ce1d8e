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

    /// Replaces the attributes of `vdi` (values must not contain line breaks).
    public func setAttributes(_ attributes: [String: String], of vdi: CanonicalUUID) throws(StorageError) {
        try Syscall.makeDirectories(directory)
        let text =
            attributes.keys.sorted().map { key in
                "\(key)=\(attributes[key]!.split(whereSeparator: \.isNewline).joined(separator: " "))"
            }.joined(separator: "\n") + "\n"
        try Syscall.writeFileAtomically(path(vdi), Array(text.utf8))
    }

    public func remove(_ vdi: CanonicalUUID) throws(StorageError) {
        try Syscall.unlinkIfPresent(path(vdi))
    }
}
