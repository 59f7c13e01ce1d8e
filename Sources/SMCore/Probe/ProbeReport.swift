/// What `sr_probe` prints (Docs/probe.md): the substrate the dconf points at and any SR on it,
/// as `<probe>` with the driver's name first and then, in this order, the exports, targets,
/// LUNs, devices, volume groups and SRs the driver found. Each list is empty for a driver whose
/// substrate has no such thing; an empty `<probe>` says the substrate is there and holds nothing.
public struct ProbeReport: Sendable, Equatable {
    public var driver: String
    public var exports: [ProbedExport] = []
    public var targets: [ProbedTarget] = []
    public var luns: [ProbedLUN] = []
    public var devices: [ProbedDevice] = []
    public var volumeGroups: [ProbedVolumeGroup] = []
    public var srs: [ProbedSR] = []

    public init(driver: String) { self.driver = driver }

    public var element: ResultElement {
        var children = [ResultElement("driver", driver)]
        children += exports.map(\.element)
        children += targets.map(\.element)
        children += luns.map(\.element)
        children += devices.map(\.element)
        children += volumeGroups.map(\.element)
        children += srs.map(\.element)
        return ResultElement("probe", children: children)
    }
}

/// An SR found by a probe: its UUID, and where it is as far as the place it was found in says.
public struct ProbedSR: Sendable, Equatable {
    public var uuid: CanonicalUUID
    /// The driver that keeps SRs of this shape (`EXTSR` for an ext4 SR on a LUN, `LVMSR` for a
    /// volume group), when that is not the probing driver itself.
    public var driver: String?
    /// The SR's directory (FileSR, NFSSR: the path on the server).
    public var path: String?
    /// How many VDI files the SR directory holds (file-based SRs).
    public var vdis: Int?
    /// The SR is half deleted (an EXT SR relabelled `sm-deleting`): sr_delete finishes it.
    public var beingDeleted = false

    public init(uuid: CanonicalUUID, driver: String? = nil, path: String? = nil, vdis: Int? = nil) {
        self.uuid = uuid
        self.driver = driver
        self.path = path
        self.vdis = vdis
    }

    public var element: ResultElement {
        var children = [ResultElement("uuid", uuid.string)]
        if let driver { children.append(ResultElement("driver", driver)) }
        if let path { children.append(ResultElement("path", path)) }
        if let vdis { children.append(ResultElement("vdis", UInt64(vdis))) }
        if beingDeleted { children.append(ResultElement("being_deleted", true)) }
        return ResultElement("sr", children: children)
    }
}

/// A block device (EXTSR, LVMSR) and what libblkid finds on it.
public struct ProbedDevice: Sendable, Equatable {
    public var path: String
    public var size: UInt64
    /// libblkid's signatures, described (`ext4 filesystem (UUID ..., label "SR-1234abcd")`), one
    /// element each; none for a blank device.
    public var contents: [String]
    /// The volume group the device is a physical volume of ("" for none), when it is one.
    public var volumeGroup: String?
    public var sr: ProbedSR?

    public init(path: String, size: UInt64, contents: [String], volumeGroup: String? = nil, sr: ProbedSR? = nil) {
        self.path = path
        self.size = size
        self.contents = contents
        self.volumeGroup = volumeGroup
        self.sr = sr
    }

    var fields: [ResultElement] {
        var children = [ResultElement("path", path), ResultElement("size", size)]
        children += contents.map { ResultElement("contents", $0) }
        if let volumeGroup { children.append(ResultElement("volume_group", volumeGroup)) }
        if let sr { children.append(sr.element) }
        return children
    }

    public var element: ResultElement { ResultElement("device", children: fields) }
}

/// One LUN of an iSCSI target: the device it has on this host while logged in (the path is the
/// by-path link, gone again after the probe), its identity and what is on it.
public struct ProbedLUN: Sendable, Equatable {
    public var number: Int
    public var device: ProbedDevice
    public var scsiIdentifier: String
    public var vendor: String
    public var model: String
    /// The VDI UUID ISCSISR gives the LUN (derived from the SCSI identifier).
    public var vdi: CanonicalUUID

    public init(number: Int, device: ProbedDevice, scsiIdentifier: String, vendor: String, model: String, vdi: CanonicalUUID) {
        self.number = number
        self.device = device
        self.scsiIdentifier = scsiIdentifier
        self.vendor = vendor
        self.model = model
        self.vdi = vdi
    }

    public var element: ResultElement {
        var children = [
            ResultElement("number", UInt64(number)), ResultElement("scsi_id", scsiIdentifier),
            ResultElement("vendor", vendor), ResultElement("model", model), ResultElement("vdi_uuid", vdi.string)
        ]
        children += device.fields
        return ResultElement("lun", children: children)
    }
}

/// A target a portal advertises (sendtargets), at one of its portals.
public struct ProbedTarget: Sendable, Equatable {
    public var iqn: String
    public var portal: String
    public var groupTag: String

    public init(iqn: String, portal: String, groupTag: String) {
        self.iqn = iqn
        self.portal = portal
        self.groupTag = groupTag
    }

    public var element: ResultElement {
        ResultElement(
            "target",
            children: [ResultElement("iqn", iqn), ResultElement("portal", portal), ResultElement("group_tag", groupTag)])
    }
}

/// One export of an NFS server (the MOUNT protocol's export list) and who may mount it.
public struct ProbedExport: Sendable, Equatable {
    public var path: String
    public var clients: String

    public init(path: String, clients: String) {
        self.path = path
        self.clients = clients
    }

    public var element: ResultElement {
        ResultElement("export", children: [ResultElement("path", path), ResultElement("clients", clients)])
    }
}

/// A volume group over the probed devices (LVMSR, LVMoISCSISR).
public struct ProbedVolumeGroup: Sendable, Equatable {
    public var name: String
    public var size: UInt64
    public var free: UInt64
    public var physicalVolumes: [String]
    /// The SR the group is, when its name is `VG_XenStorage-<SR-UUID>`.
    public var sr: ProbedSR?

    public init(name: String, size: UInt64, free: UInt64, physicalVolumes: [String], sr: ProbedSR? = nil) {
        self.name = name
        self.size = size
        self.free = free
        self.physicalVolumes = physicalVolumes
        self.sr = sr
    }

    public var element: ResultElement {
        var children = [ResultElement("name", name), ResultElement("size", size), ResultElement("free", free)]
        children += physicalVolumes.map { ResultElement("physical_volume", $0) }
        if let sr { children.append(sr.element) }
        return ResultElement("volume_group", children: children)
    }
}
