import CBlkid
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// One thing libblkid recognised on a device: a filesystem, a partition table, a RAID or LVM
/// member, an encrypted volume.
public struct Signature: Sendable, Equatable, CustomStringConvertible {
    /// What the signature makes the device, from libblkid's `USAGE` (or the partitions chain).
    public enum Kind: String, Sendable {
        case filesystem
        case partitionTable = "partition table"
        /// libblkid's "raid": md members, LVM physical volumes, other volume-manager labels.
        case raid = "RAID or volume-manager member"
        case crypto = "encrypted volume"
        case other = "signature"
    }

    /// libblkid's `TYPE` or `PTTYPE`: `ext4`, `xfs`, `LVM2_member`, `gpt`, `dos` ...
    public var type: String
    public var kind: Kind
    public var uuid: String?
    public var label: String?
    /// Where the magic bytes are, in bytes from the start of the device.
    public var offset: UInt64?

    public init(type: String, kind: Kind, uuid: String? = nil, label: String? = nil, offset: UInt64? = nil) {
        self.type = type
        self.kind = kind
        self.uuid = uuid
        self.label = label
        self.offset = offset
    }

    /// `ext4 filesystem (UUID 3f2a..., label "data")`.
    public var description: String {
        var details: [String] = []
        if let uuid, !uuid.isEmpty { details.append("UUID \(uuid)") }
        if let label, !label.isEmpty { details.append("label \"\(ArgumentParsing.printable(label))\"") }
        let name = "\(ArgumentParsing.printable(type)) \(kind.rawValue)"
        return details.isEmpty ? name : "\(name) (\(details.joinedText(separator: ", ")))"
    }
}

extension BlockDevice {
    /// The most signatures one probe reports (a safety stop against a looping prober).
    static let maximumSignatures = 32

    /// Every signature libblkid finds, in the order it finds them (superblocks, then partition
    /// tables); empty when the device looks blank. Damaged-checksum superblocks count too and a
    /// GPT counts without its protective MBR, so that nothing recognisable is ever taken for blank.
    public func probeSignatures() throws(StorageError) -> [Signature] {
        let descriptor = try open(.readOnly)
        defer { descriptor.closeIgnoringErrors() }
        let probe = try SignatureProbe(descriptor: descriptor, path: path)
        var found: [Signature] = []
        while found.count < Self.maximumSignatures, let signature = try probe.next() {
            found.append(signature)
        }
        return found
    }
}

/// One libblkid probe over an open descriptor, freed in `deinit`; callers never see the handle.
final class SignatureProbe {
    private let probe: blkid_probe
    let path: String

    init(descriptor: FileDescriptor, path: String) throws(StorageError) {
        guard let probe = blkid_new_probe() else { throw .io("libblkid: cannot allocate a probe for \(path)") }
        self.probe = probe
        self.path = path
        guard blkid_probe_set_device(probe, descriptor.rawValue, 0, 0) == 0 else {
            throw .io("libblkid: cannot probe \(path)")
        }
        let superblockFlags =
            BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL
            | BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM
        guard blkid_probe_enable_superblocks(probe, 1) == 0,
            blkid_probe_set_superblocks_flags(probe, Int32(superblockFlags)) == 0,
            blkid_probe_enable_partitions(probe, 1) == 0,
            blkid_probe_set_partitions_flags(probe, Int32(BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT)) == 0
        else { throw .io("libblkid: cannot configure the probe of \(path)") }
    }

    deinit { blkid_free_probe(probe) }

    /// The next signature, or nil when libblkid has nothing more.
    func next() throws(StorageError) -> Signature? {
        switch blkid_do_probe(probe) {
        case 0: break
        case 1: return nil
        default: throw .io("libblkid: probing \(path) failed")
        }
        if let tableType = value("PTTYPE") {
            return Signature(
                type: tableType, kind: .partitionTable, uuid: value("PTUUID"),
                offset: value("PTMAGIC_OFFSET").flatMap { UInt64($0) })
        }
        let kind: Signature.Kind
        switch value("USAGE") {
        case "filesystem": kind = .filesystem
        case "raid": kind = .raid
        case "crypto": kind = .crypto
        default: kind = .other
        }
        return Signature(
            type: value("TYPE") ?? "unknown", kind: kind, uuid: value("UUID"), label: value("LABEL"),
            offset: value("SBMAGIC_OFFSET").flatMap { UInt64($0) })
    }

    /// Erases the magic of the signature `next()` just returned (the descriptor must be writable);
    /// libblkid steps back so that the next `next()` looks at the same area again.
    func eraseCurrent() throws(StorageError) {
        guard blkid_do_wipe(probe, 0) == 0 else { throw .io("libblkid: cannot erase a signature on \(path)") }
    }

    private func value(_ name: String) -> String? {
        var data: UnsafePointer<CChar>?
        var length = 0
        guard blkid_probe_lookup_value(probe, name, &data, &length) == 0, let data else { return nil }
        return String(cString: data)
    }
}
