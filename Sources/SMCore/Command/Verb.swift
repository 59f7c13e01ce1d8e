/// Every verb a driver answers; the raw values are the wire names. Adding a case breaks the
/// build until `Request.parse` and `Dispatcher` handle it.
public enum Verb: String, CaseIterable, Sendable {
    case srCreate = "sr_create"
    case srDelete = "sr_delete"
    case srAttach = "sr_attach"
    case srDetach = "sr_detach"
    case srScan = "sr_scan"
    case srContentType = "sr_content_type"
    case srCheck = "sr_check"
    case srGC = "sr_gc"
    case vdiCreate = "vdi_create"
    case vdiDelete = "vdi_delete"
    case vdiAttach = "vdi_attach"
    case vdiDetach = "vdi_detach"
    case vdiClone = "vdi_clone"
    case vdiSnapshot = "vdi_snapshot"
    case vdiResize = "vdi_resize"
    case vdiLock = "vdi_lock"
    case vdiUnlock = "vdi_unlock"
    /// Beyond the spec (Docs/probe.md): what the dconf points at; the one verb that names no SR.
    case srProbe = "sr_probe"
    case vdiExport = "vdi_export"
    case vdiImport = "vdi_import"

    /// The positional arguments, as `help` prints them.
    public var argumentNames: [String] {
        switch self {
        case .srCreate: return ["SR-UUID", "Size"]
        case .srDelete, .srAttach, .srDetach, .srScan, .srContentType, .srCheck, .srGC: return ["SR-UUID"]
        case .vdiCreate: return ["SR-UUID", "VDI-UUID", "Size"]
        case .vdiDelete, .vdiAttach, .vdiDetach: return ["SR-UUID", "VDI-UUID"]
        case .vdiClone, .vdiSnapshot: return ["SR-UUID", "source-VDI-UUID", "dest-VDI-UUID"]
        case .vdiResize: return ["SR-UUID", "VDI-UUID", "new-size"]
        case .vdiLock: return ["SR-UUID", "VDI-UUID", "Force", "UserString"]
        case .vdiUnlock: return ["SR-UUID", "VDI-UUID", "UserString"]
        case .srProbe: return []
        case .vdiExport: return ["SR-UUID", "VDI-UUID", "Format"]
        case .vdiImport: return ["SR-UUID", "VDI-UUID", "Format", "Size"]
        }
    }

    /// True for verbs that operate on one SR as a whole (they serialise against every other verb
    /// on that SR); VDI verbs only serialise against verbs on the same VDIs.
    public var isSRWide: Bool {
        switch self {
        case .srCreate, .srDelete, .srAttach, .srDetach, .srScan, .srContentType, .srCheck, .srGC: return true
        case .srProbe: return false
        case .vdiCreate, .vdiDelete, .vdiAttach, .vdiDetach, .vdiClone, .vdiSnapshot, .vdiResize, .vdiLock, .vdiUnlock:
            return false
        case .vdiExport, .vdiImport: return false
        }
    }

    /// One paragraph for `help <verb>`.
    public var summary: String {
        switch self {
        case .srCreate: return "Create the SR on the substrate. Size 0 means what the substrate has. Not idempotent."
        case .srDelete: return "Delete the SR and release its substrate. Idempotent: an SR that does not exist succeeds."
        case .srAttach: return "Make the SR available on this host. Idempotent."
        case .srDetach: return "Remove this host's access to the SR. Idempotent; refused while a VDI is attached."
        case .srScan: return "Print the SR and every visible VDI as XML (sizes in bytes)."
        case .srContentType: return "Print the SR's content type as XML (deprecated by the spec; vdi_attach also says it)."
        case .srCheck: return "Verify every VDI and chain; print problems as XML. Exit 0 when clean, EIO when damage is found."
        case .srGC: return "Coalesce hidden VDIs that have a single child, one at a time. Safe to run any time."
        case .vdiCreate: return "Create a VDI of at least Size bytes. Not idempotent."
        case .vdiDelete: return "Delete a VDI. Idempotent: a VDI that does not exist succeeds."
        case .vdiAttach: return "Make the VDI available on this host and print its path and type as XML. Idempotent."
        case .vdiDetach: return "Remove this host's access to the VDI. Idempotent."
        case .vdiClone: return "Make dest a writable copy-on-write clone of source. Not idempotent."
        case .vdiSnapshot: return "Make dest a read-only snapshot of source; source continues as its child. Not idempotent."
        case .vdiResize: return "Grow the VDI to new-size bytes (the same size succeeds; smaller is EINVAL)."
        case .vdiLock: return "Take the persistent lock on the VDI for UserString (Force TRUE breaks another holder's lock)."
        case .vdiUnlock: return "Release the persistent lock held by UserString. Idempotent."
        case .srProbe:
            return "Print what the dconf points at as XML (exports, targets, LUNs, volume groups, and the SRs on them), "
                + "touching nothing; names no SR. Beyond the spec: Docs/probe.md."
        case .vdiExport:
            return "Write the VDI's data to stdout as Format raw or vhd (one dynamic VHD, chain flattened); Docs/export.md."
        case .vdiImport:
            return
                "Make a new VDI from stdin, Format raw (Size bytes exactly) or vhd (Size 0, or the VHD's size); Docs/export.md. Not idempotent."
        }
    }

    /// The errno values the verb can return, for `help <verb>`.
    public var errorCodes: [(String, String)] {
        var codes: [(String, String)] = [("EINVAL", "bad arguments or dconf; nothing was touched")]
        switch self {
        case .srCreate:
            codes += [
                ("EEXIST", "the SR already exists"), ("ENODEV", "the substrate does not exist"),
                ("ENOSPC", "Size is larger than the substrate")
            ]
        case .srDelete:
            codes += [("EBUSY", "VDIs exist, or one is attached or locked")]
        case .srAttach:
            codes += [("ENODEV", "no such SR")]
        case .srDetach:
            codes += [("EBUSY", "a VDI is attached on this host")]
        case .srScan, .srContentType, .srGC:
            codes += [("ENODEV", "no such SR, or not attached on this host")]
        case .srCheck:
            codes += [("ENODEV", "no such SR, or not attached on this host"), ("EIO", "damage was found (listed on stdout)")]
        case .vdiCreate:
            codes += [
                ("ENODEV", "no such SR, or not attached on this host"), ("EEXIST", "the VDI already exists"),
                ("ENOSPC", "not enough space")
            ]
        case .vdiDelete:
            codes += [("ENODEV", "no such SR, or not attached on this host"), ("EBUSY", "the VDI is attached or locked")]
        case .vdiAttach, .vdiDetach:
            codes += [("ENODEV", "no such SR or VDI, or SR not attached on this host")]
        case .vdiClone, .vdiSnapshot:
            codes += [
                ("ENODEV", "no such SR or source VDI"), ("EEXIST", "dest already exists"),
                ("EBUSY", "source is attached or locked"), ("EPERM", "the chain would exceed 30 links"),
                ("ENOSPC", "not enough space")
            ]
        case .vdiResize:
            codes += [("ENODEV", "no such SR or VDI"), ("EBUSY", "the VDI is attached"), ("ENOSPC", "not enough space")]
        case .vdiLock:
            codes += [("ENODEV", "no such SR or VDI"), ("ENOLCK", "another user holds the lock (use Force TRUE)")]
        case .vdiUnlock:
            codes += [("ENODEV", "no such SR or VDI"), ("ENOLCK", "the lock is held by another user")]
        case .srProbe:
            codes += [
                ("ENODEV", "the device, directory, server or target does not exist or does not answer"),
                ("EPERM", "the target refused the CHAP credentials")
            ]
        case .vdiExport:
            codes += [("ENODEV", "no such SR or VDI"), ("EBUSY", "the VDI is attached or locked (export a snapshot of it)")]
        case .vdiImport:
            codes += [
                ("ENODEV", "no such SR, or not attached on this host"), ("EEXIST", "the VDI already exists"),
                ("ENOSPC", "not enough space"),
                ("EINVAL", "the stream is too long, not the Size given, or not a valid VHD; nothing was left"),
                ("EIO", "the stream ended early; nothing was left")
            ]
        }
        codes += [("ENOSYS", "the driver does not support this verb"), ("EIO", "unexpected I/O failure")]
        return codes
    }
}

/// A verb with its validated arguments: what a driver receives.
public enum Request: Sendable {
    case srCreate(sr: CanonicalUUID, size: UInt64)
    case srDelete(sr: CanonicalUUID)
    case srAttach(sr: CanonicalUUID)
    case srDetach(sr: CanonicalUUID)
    case srScan(sr: CanonicalUUID)
    case srContentType(sr: CanonicalUUID)
    case srCheck(sr: CanonicalUUID)
    case srGC(sr: CanonicalUUID)
    case vdiCreate(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64)
    case vdiDelete(sr: CanonicalUUID, vdi: CanonicalUUID)
    case vdiAttach(sr: CanonicalUUID, vdi: CanonicalUUID)
    case vdiDetach(sr: CanonicalUUID, vdi: CanonicalUUID)
    case vdiClone(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID)
    case vdiSnapshot(sr: CanonicalUUID, source: CanonicalUUID, destination: CanonicalUUID)
    case vdiResize(sr: CanonicalUUID, vdi: CanonicalUUID, size: UInt64)
    case vdiLock(sr: CanonicalUUID, vdi: CanonicalUUID, force: Bool, user: String)
    case vdiUnlock(sr: CanonicalUUID, vdi: CanonicalUUID, user: String)
    /// sr_probe: no arguments, no SR (`sr` is nil).
    case srProbe
    case vdiExport(sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat)
    case vdiImport(sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, size: UInt64)

    /// Validates the positional arguments of `verb`; EINVAL (nothing touched) on any mismatch.
    public static func parse(_ verb: Verb, _ arguments: [String]) throws(StorageError) -> Request {
        let names = verb.argumentNames
        guard arguments.count == names.count else {
            if names.isEmpty { throw .invalid("\(verb.rawValue) takes no arguments (it names no SR), got \(arguments.count)") }
            throw .invalid(
                "\(verb.rawValue) takes \(names.count) argument\(names.count == 1 ? "" : "s") (\(names.joinedText(separator: " "))), got \(arguments.count)"
            )
        }
        if verb == .srProbe { return .srProbe }
        let sr = try ArgumentParsing.uuid(arguments[0], role: "SR-UUID")
        func vdi(_ index: Int) throws(StorageError) -> CanonicalUUID {
            try ArgumentParsing.uuid(arguments[index], role: names[index])
        }
        switch verb {
        case .srCreate: return .srCreate(sr: sr, size: try ArgumentParsing.size(arguments[1], role: "Size"))
        case .srDelete: return .srDelete(sr: sr)
        case .srAttach: return .srAttach(sr: sr)
        case .srDetach: return .srDetach(sr: sr)
        case .srScan: return .srScan(sr: sr)
        case .srContentType: return .srContentType(sr: sr)
        case .srCheck: return .srCheck(sr: sr)
        case .srGC: return .srGC(sr: sr)
        case .vdiCreate:
            return .vdiCreate(sr: sr, vdi: try vdi(1), size: try ArgumentParsing.vdiSize(arguments[2], role: "Size"))
        case .vdiDelete: return .vdiDelete(sr: sr, vdi: try vdi(1))
        case .vdiAttach: return .vdiAttach(sr: sr, vdi: try vdi(1))
        case .vdiDetach: return .vdiDetach(sr: sr, vdi: try vdi(1))
        case .vdiClone, .vdiSnapshot:
            let source = try vdi(1)
            let destination = try vdi(2)
            guard source != destination else { throw .invalid("source and dest VDI must differ") }
            return verb == .vdiClone
                ? .vdiClone(sr: sr, source: source, destination: destination)
                : .vdiSnapshot(sr: sr, source: source, destination: destination)
        case .vdiResize:
            return .vdiResize(sr: sr, vdi: try vdi(1), size: try ArgumentParsing.vdiSize(arguments[2], role: "new-size"))
        case .vdiLock:
            return .vdiLock(
                sr: sr, vdi: try vdi(1), force: try ArgumentParsing.force(arguments[2]),
                user: try ArgumentParsing.userString(arguments[3]))
        case .vdiUnlock:
            return .vdiUnlock(sr: sr, vdi: try vdi(1), user: try ArgumentParsing.userString(arguments[2]))
        case .srProbe: return .srProbe
        case .vdiExport: return .vdiExport(sr: sr, vdi: try vdi(1), format: try TransferFormat(argument: arguments[2]))
        case .vdiImport:
            let format = try TransferFormat(argument: arguments[2])
            return .vdiImport(sr: sr, vdi: try vdi(1), format: format, size: try format.importSize(arguments[3]))
        }
    }

    /// The SR the request names; nil for sr_probe, the one verb that names none.
    public var sr: CanonicalUUID? {
        switch self {
        case .srCreate(let sr, _), .srDelete(let sr), .srAttach(let sr), .srDetach(let sr), .srScan(let sr),
            .srContentType(let sr), .srCheck(let sr), .srGC(let sr), .vdiCreate(let sr, _, _),
            .vdiDelete(let sr, _), .vdiAttach(let sr, _), .vdiDetach(let sr, _), .vdiClone(let sr, _, _),
            .vdiSnapshot(let sr, _, _), .vdiResize(let sr, _, _), .vdiLock(let sr, _, _, _), .vdiUnlock(let sr, _, _),
            .vdiExport(let sr, _, _), .vdiImport(let sr, _, _, _):
            return sr
        case .srProbe:
            return nil
        }
    }

    /// The VDIs the request names, in argument order (for locks and the log).
    public var vdis: [CanonicalUUID] {
        switch self {
        case .srCreate, .srDelete, .srAttach, .srDetach, .srScan, .srContentType, .srCheck, .srGC, .srProbe: return []
        case .vdiCreate(_, let vdi, _), .vdiDelete(_, let vdi), .vdiAttach(_, let vdi), .vdiDetach(_, let vdi),
            .vdiResize(_, let vdi, _), .vdiLock(_, let vdi, _, _), .vdiUnlock(_, let vdi, _),
            .vdiExport(_, let vdi, _), .vdiImport(_, let vdi, _, _):
            return [vdi]
        case .vdiClone(_, let source, let destination), .vdiSnapshot(_, let source, let destination):
            return [source, destination]
        }
    }
}
