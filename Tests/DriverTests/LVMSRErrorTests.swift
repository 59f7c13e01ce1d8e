import Foundation
import Testing

/// Each error LVMSR lists, from a real situation on loop devices; nothing changes on failure.
@Suite(.serialized) struct LVMSRErrorTests {
    /// EEXIST: a device already in another volume group is refused, naming the device and the
    /// group; the other group is untouched.
    @Test(.timeLimit(.minutes(2))) func deviceInAnotherVolumeGroup() throws {
        let f = try LVMSRFixture(devices: 2)
        defer { f.tearDown() }
        let other = "VG_SMTest-\(newUUID().prefix(8))"
        f.otherVolumeGroups.append(other)
        try Product.shell("LVM_SUPPRESS_FD_WARNINGS=1 lvm vgcreate --config '\(LVMSRFixture.lvmConfiguration)' \(other) \(f.devices[1])")
        let result = try f.fails(17, "EEXIST", "sr_create", f.sr, "0")
        #expect(result.reason.contains(f.devices[1]) && result.reason.contains(other), "\(result.reason)")
        #expect(try LVMOracle.physicalVolumes(of: other) == [f.devices[1]])
        #expect(try LVMOracle.signatures(f.devices[0]).isEmpty, "the clean device was not labelled")
        #expect(try LVMOracle.volumeGroup(f.volumeGroup) == nil)
    }

    /// EEXIST: a device with an ext4 filesystem is refused, naming the device and ext4; the
    /// filesystem is still there.
    @Test(.timeLimit(.minutes(2))) func deviceWithExt4() throws {
        let f = try LVMSRFixture(devices: 3)
        defer { f.tearDown() }
        try Product.shell("mkfs.ext4 -q -F \(f.devices[2])")
        let result = try f.fails(17, "EEXIST", "sr_create", f.sr, "0")
        #expect(result.reason.contains(f.devices[2]) && result.reason.contains("ext4"), "\(result.reason)")
        #expect(try LVMOracle.signatures(f.devices[2]).contains("TYPE=ext4"))
        #expect(try LVMOracle.signatures(f.devices[0]).isEmpty && (try LVMOracle.signatures(f.devices[1]).isEmpty))
    }

    /// EEXIST: sr_create of an SR that exists; vdi_create of a VDI that exists.
    @Test(.timeLimit(.minutes(2))) func alreadyExists() throws {
        let f = try LVMSRFixture(devices: 1)
        defer { f.tearDown() }
        try f.ok("sr_create", f.sr, "0")
        let again = try f.fails(17, "EEXIST", "sr_create", f.sr, "0")
        #expect(again.reason.contains(f.sr))
        try f.ok("sr_attach", f.sr)
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "4194304")
        try f.fails(17, "EEXIST", "vdi_create", f.sr, vdi, "8388608")
        #expect(try f.expectScanAgreesWithLVM(vdis: 1)[vdi] == 4 << 20)
    }

    /// ENODEV: a missing device, a path that is not a block device, no such SR, no such VDI,
    /// and VDI verbs or sr_scan on an SR not attached on this host.
    @Test(.timeLimit(.minutes(2))) func noSuchDevice() throws {
        let f = try LVMSRFixture(devices: 1)
        defer { f.tearDown() }
        let present = f.dconfDevices
        let missing = "/dev/sm-test-missing-\(newUUID())"
        f.dconfDevices = "\(present),\(missing)"
        let result = try f.fails(19, "ENODEV", "sr_create", f.sr, "0")
        #expect(result.reason.contains(missing))
        #expect(try LVMOracle.signatures(f.devices[0]).isEmpty)
        let file = f.scratch.path("data/not-a-device")
        _ = FileManager.default.createFile(atPath: file, contents: Data(count: 4096))
        f.dconfDevices = file
        #expect(try f.fails(19, "ENODEV", "sr_create", f.sr, "0").reason.contains("not a block device"))

        f.dconfDevices = present
        try f.fails(19, "ENODEV", "sr_attach", f.sr)
        try f.ok("sr_create", f.sr, "0")
        let vdi = newUUID()
        #expect(try f.fails(19, "ENODEV", "vdi_create", f.sr, vdi, "4194304").reason.contains("not attached"))
        try f.fails(19, "ENODEV", "sr_scan", f.sr)
        try f.ok("sr_attach", f.sr)
        try f.fails(19, "ENODEV", "vdi_attach", f.sr, vdi)
        try f.fails(19, "ENODEV", "vdi_detach", f.sr, vdi)
        try f.fails(19, "ENODEV", "vdi_resize", f.sr, vdi, "8388608")
        try f.ok("vdi_delete", f.sr, vdi)
        try f.ok("sr_detach", f.sr)
        try f.fails(19, "ENODEV", "vdi_create", f.sr, vdi, "4194304")
        f.dconfDevices = missing
        try f.fails(19, "ENODEV", "sr_attach", f.sr)
        #expect(try LVMOracle.logicalVolumes(of: f.volumeGroup).isEmpty)
    }

    /// ENODEV "SR does not exist" for every verb when the group vanished behind the driver's back
    /// while the SR was attached; sr_detach still succeeds and drops the record.
    @Test(.timeLimit(.minutes(2))) func volumeGroupRemovedWhileAttached() throws {
        let f = try LVMSRFixture(devices: 1)
        defer { f.tearDown() }
        let vdi = try f.createAndAttach(vdiSize: 4 << 20)
        #expect(try LVMOracle.lvm("vgremove", ["--force", "--yes", f.volumeGroup]).status == 0)
        for (verb, arguments) in [
            ("sr_scan", [f.sr]), ("vdi_create", [f.sr, newUUID(), "4194304"]),
            ("vdi_delete", [f.sr, vdi]), ("vdi_attach", [f.sr, vdi]),
            ("vdi_detach", [f.sr, vdi]), ("vdi_resize", [f.sr, vdi, "8388608"]),
            ("sr_attach", [f.sr])
        ] {
            let result = try f.call(verb, arguments)
            #expect(result.status == 19, "\(verb): \(result)")
            #expect(result.reason == "ENODEV: SR \(f.sr) does not exist", "\(verb): \(result.reason)")
        }
        try f.ok("sr_detach", f.sr)
        try f.fails(19, "ENODEV", "sr_scan", f.sr)
    }

    /// ENOSPC: a VDI larger than the group's free extents, a resize beyond them, and an sr_create
    /// Size beyond the devices (raw size) or beyond what the group over them holds; each leaves
    /// LVM as it was (no partial volume, no label left on the devices).
    @Test(.timeLimit(.minutes(2))) func noSpace() throws {
        let f = try LVMSRFixture(devices: 1)
        defer { f.tearDown() }
        try f.fails(28, "ENOSPC", "sr_create", f.sr, String(65 << 20))
        #expect(try LVMOracle.signatures(f.devices[0]).isEmpty)
        let rolledBack = try f.fails(28, "ENOSPC", "sr_create", f.sr, String(63 << 20))
        #expect(rolledBack.reason.contains("volume group"), "\(rolledBack.reason)")
        #expect(try LVMOracle.signatures(f.devices[0]).isEmpty, "the group that came out too small was removed")
        #expect(try LVMOracle.volumeGroup(f.volumeGroup) == nil)

        try f.ok("sr_create", f.sr, String(32 << 20))
        try f.ok("sr_attach", f.sr)
        let group = try #require(try LVMOracle.volumeGroup(f.volumeGroup))
        let free = try #require(UInt64(group["vg_free"] ?? ""))
        let tooBig = try f.fails(28, "ENOSPC", "vdi_create", f.sr, newUUID(), String(free + 1))
        #expect(tooBig.reason.contains("free"), "\(tooBig.reason)")
        try f.expectScanAgreesWithLVM(vdis: 0)
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, String(free - LVMSRFixture.extent))
        try f.fails(28, "ENOSPC", "vdi_resize", f.sr, vdi, String(free + LVMSRFixture.extent))
        try f.ok("vdi_resize", f.sr, vdi, String(free))
        try f.fails(28, "ENOSPC", "vdi_create", f.sr, newUUID(), "1")
        #expect(try f.expectScanAgreesWithLVM(vdis: 1)[vdi] == free)
    }

    /// EBUSY: sr_delete while VDIs exist, sr_detach with an attached VDI, vdi_delete and
    /// vdi_resize of an attached VDI; nothing changes, and everything works once detached.
    @Test(.timeLimit(.minutes(2))) func busy() throws {
        let f = try LVMSRFixture(devices: 1)
        defer { f.tearDown() }
        let vdi = try f.createAndAttach(vdiSize: 4 << 20)
        #expect(try f.fails(16, "EBUSY", "sr_delete", f.sr).reason.contains("1 VDI"))
        try f.ok("vdi_attach", f.sr, vdi)
        try f.fails(16, "EBUSY", "sr_detach", f.sr)
        try f.fails(16, "EBUSY", "vdi_delete", f.sr, vdi)
        try f.fails(16, "EBUSY", "vdi_resize", f.sr, vdi, "8388608")
        #expect(try f.expectScanAgreesWithLVM(vdis: 1)[vdi] == 4 << 20)
        try f.ok("vdi_detach", f.sr, vdi)
        try f.ok("vdi_resize", f.sr, vdi, "8388608")
        try f.ok("vdi_delete", f.sr, vdi)
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_delete", f.sr)
    }

    /// An sr_delete interrupted after removing the group leaves PV labels in no volume group:
    /// sr_create then refuses the device (EEXIST, saying so), and sr_delete finishes the job.
    @Test(.timeLimit(.minutes(2))) func interruptedDeleteIsFinishedBySRDelete() throws {
        let f = try LVMSRFixture(devices: 2)
        defer { f.tearDown() }
        try f.ok("sr_create", f.sr, "0")
        _ = try LVMOracle.lvm("vgremove", ["--yes", f.volumeGroup])
        #expect(try LVMOracle.signatures(f.devices[0]) == ["TYPE=LVM2_member"])
        let refused = try f.fails(17, "EEXIST", "sr_create", f.sr, "0")
        #expect(refused.reason.contains("in no volume group"), "\(refused.reason)")
        try f.ok("sr_delete", f.sr)
        for device in f.devices { #expect(try LVMOracle.signatures(device).isEmpty) }
        try f.ok("sr_create", f.sr, "0")
    }
}
