#if canImport(Glibc)
    import Glibc
#endif

/// What vdi_export writes and vdi_import reads (Docs/export.md): the VDI's guest bytes as they
/// are (`raw`), or one self-contained dynamic VHD with the chain flattened (`vhd`).
public enum TransferFormat: String, CaseIterable, Sendable {
    case raw
    case vhd

    /// The Format argument: `raw` or `vhd`, in any case; EINVAL otherwise.
    public init(argument text: String) throws(StorageError) {
        guard let format = TransferFormat(rawValue: text.lowercased()) else {
            throw .invalid("Format '\(ArgumentParsing.printable(text))' must be raw or vhd")
        }
        self = format
    }

    /// vdi_import's Size argument: for `raw` the exact length of the stream (1 byte to 2040
    /// GiB); for `vhd` 0 (take the VHD's own size) or that size, as a check.
    public func importSize(_ text: String) throws(StorageError) -> UInt64 {
        switch self {
        case .raw: return try ArgumentParsing.vdiSize(text, role: "Size")
        case .vhd:
            let size = try ArgumentParsing.size(text, role: "Size")
            guard size <= ArgumentParsing.maximumVDISize else {
                throw .invalid("Size \(size) exceeds the maximum VDI size of 2040 GiB (\(ArgumentParsing.maximumVDISize) bytes)")
            }
            return size
        }
    }

    /// Refusals that depend on the process's streams, before anything is touched (EINVAL):
    /// vdi_import reads its data from stdin, so its dconf cannot come from there too (`@-`);
    /// vdi_export does not pour a disk onto a terminal.
    public static func checkStreams(for request: Request, dconfArgument: String) throws(StorageError) {
        switch request {
        case .vdiImport:
            guard dconfArgument != "@-" else {
                throw .invalid("vdi_import reads the VDI's data from stdin; give the dconf inline or as @FILE, not @-")
            }
        case .vdiExport:
            guard isatty(STDOUT_FILENO) == 0 else {
                throw .invalid("vdi_export writes the VDI's data to stdout, which is a terminal; redirect it to a file or a pipe")
            }
        default:
            return
        }
    }
}
