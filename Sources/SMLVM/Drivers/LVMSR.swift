import SMCore

/// LVMSR: the SR is the volume group `VG_XenStorage-<SR-UUID>` over the dconf's `device`s, each
/// VDI a logical volume `LV-<VDI-UUID>` (raw and thick, content type `aio`). All LVM work is
/// in-process through liblvm2cmd; see `LVMRepository` and Docs/LVMSR.md. Every verb is the
/// repository's (`LVMRepositoryDriver`).
public struct LVMSR: LVMRepositoryDriver {
    public static let name = "LVMSR"
    public static let requiredKeys = ["device"]
    public static let overview = """
        LVMSR keeps the SR as the LVM volume group VG_XenStorage-<SR-UUID> over the devices in dconf \
        'device' (comma-separated) and each VDI as the logical volume LV-<VDI-UUID>, attached as \
        /dev/VG_XenStorage-<SR-UUID>/LV-<VDI-UUID> with type aio. With dconf vdi_type=vhd at sr_create, \
        VDIs are VHD images on thin logical volumes (type vhd) with snapshot and clone. No locks (ENOSYS).
        """

    /// The most devices one volume group may be given here.
    public static let maximumDevices = 32

    let repository: LVMRepository

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        repository = LVMRepository(
            devices: try Self.devices(try configuration.required("device")), host: host,
            vdiType: try LVMVDIType(configuration: configuration[LVMVDIType.configurationKey]))
    }

    /// LVMSR over devices another driver found (LVMoISCSISR's LUNs).
    init(repository: LVMRepository) {
        self.repository = repository
    }

    /// The dconf `device` value: absolute paths separated by commas (whitespace around each is
    /// ignored). EINVAL for an empty entry, a relative path, a repeated path, whitespace, quotes
    /// or control characters inside a path, or more than `maximumDevices`.
    public static func devices(_ value: String) throws(StorageError) -> [String] {
        let entries = value.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
        guard entries.count <= maximumDevices else {
            throw .invalid("dconf device lists \(entries.count) devices; at most \(maximumDevices) are supported")
        }
        var devices: [String] = []
        for entry in entries {
            let shown = ArgumentParsing.printable(entry)
            guard !entry.isEmpty else { throw .invalid("dconf device has an empty entry: '\(ArgumentParsing.printable(value))'") }
            guard entry.hasPrefix("/") else { throw .invalid("dconf device '\(shown)' is not an absolute path") }
            guard entry.utf8.count <= 4096 else { throw .invalid("dconf device '\(shown)' is too long") }
            let unsafe = entry.unicodeScalars.contains { scalar in
                scalar.properties.isWhitespace || scalar.properties.generalCategory == .control
                    || scalar == "'" || scalar == "\"" || scalar == "#"
            }
            guard !unsafe else {
                throw .invalid("dconf device '\(shown)' contains whitespace, quotes, '#' or control characters")
            }
            guard !devices.contains(entry) else { throw .invalid("dconf device lists '\(shown)' twice") }
            devices.append(entry)
        }
        return devices
    }

    public func repository(for sr: CanonicalUUID) -> LVMRepository { repository }
}
