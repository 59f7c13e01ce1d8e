extension ProbedDevice {
    /// What a block device holds, read and nothing else: its size and libblkid's signatures
    /// (read-only opens, no mount). An ext4 filesystem labelled as EXTSR labels its SRs
    /// (`SR-` and the first eight digits of the filesystem UUID) is that SR, and one labelled
    /// `sm-deleting` is an SR sr_delete has not finished. ENODEV when `path` is no block device.
    public static func reading(_ path: String) throws(StorageError) -> ProbedDevice {
        let device = try BlockDevice(path: path)
        let signatures = try device.probeSignatures()
        var probed = ProbedDevice(path: path, size: try device.size, contents: signatures.map(\.description))
        probed.sr = signatures.lazy.compactMap(Self.extSR).first
        return probed
    }

    /// The EXT SR a signature is, if it is one.
    static func extSR(_ signature: Signature) -> ProbedSR? {
        guard signature.type == Ext4.type, let text = signature.uuid, let uuid = CanonicalUUID(text) else { return nil }
        switch signature.label {
        case EXTSR.label(for: uuid):
            return ProbedSR(uuid: uuid, driver: "EXTSR")
        case EXTSR.deletingLabel:
            var sr = ProbedSR(uuid: uuid, driver: "EXTSR")
            sr.beingDeleted = true
            return sr
        default:
            return nil
        }
    }
}

extension ProbedSR {
    /// The file-based SRs in `directory`: each entry named by a canonical SR UUID that is a
    /// directory holding `.sm/` (what `FileSR.makeSRDirectory` makes), with its VDI file count.
    /// `shownAs` is the directory as the report names it (NFSSR: the path on the server).
    /// Reads only.
    static func fileSRs(in directory: String, shownAs shown: String, host: HostEnvironment) throws(StorageError) -> [ProbedSR] {
        var found: [ProbedSR] = []
        for name in try Syscall.directoryEntries(directory).sorted() {
            guard let uuid = CanonicalUUID(canonical: name) else { continue }
            let root = directory == "/" ? "/\(name)" : "\(directory)/\(name)"
            guard Syscall.isDirectory("\(root)/.sm") else { continue }
            let vdis = try VHDRepository(sr: uuid, root: root, host: host).allVDIFiles().count
            found.append(ProbedSR(uuid: uuid, path: shown == "/" ? "/\(name)" : "\(shown)/\(name)", vdis: vdis))
        }
        return found
    }
}

extension FileSR {
    /// The SRs in `location`: `<sr>` for each SR directory there, with its VDI count. ENODEV
    /// when `location` is no directory.
    public static func probe(configuration: DeviceConfiguration, host: HostEnvironment) throws -> ProbeReport {
        let location = try FileSR(configuration: configuration, host: host).location
        guard Syscall.isDirectory(location) else { throw StorageError.locationMissing(location) }
        var report = ProbeReport(driver: name)
        report.srs = try ProbedSR.fileSRs(in: location, shownAs: location, host: host)
        return report
    }
}

extension EXTSR {
    /// The device, its size and what libblkid finds on it; `<sr>` inside `<device>` when that is
    /// an EXT SR. Nothing is mounted (a read-only ext4 mount can still replay the journal), so
    /// the SR's VDIs are not counted. ENODEV when the device is no block device.
    public static func probe(configuration: DeviceConfiguration, host: HostEnvironment) throws -> ProbeReport {
        let path = try EXTSR(configuration: configuration, host: host).devicePath
        var report = ProbeReport(driver: name)
        report.devices = [try ProbedDevice.reading(path)]
        return report
    }
}
