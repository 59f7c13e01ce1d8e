import Foundation
import Testing

@testable import SMCore

/// Bad input is EINVAL with no side effect (the LVM plumbing's own refusals, JSON reports and
/// command lines, are unit-tested in SMLVMTests).
@Suite(.serialized) struct LVMSRBadInputTests {
    /// Malformed dconf device lists, an unusable lvm_config, bad UUIDs and sizes, a shrink: all
    /// EINVAL, the devices stay blank and no volume group appears.
    @Test(.timeLimit(.minutes(2))) func invalidArgumentsTouchNothing() throws {
        let f = try LVMSRFixture(devices: 2)
        defer { f.tearDown() }
        let (first, second) = (f.devices[0], f.devices[1])
        let link = f.scratch.path("data/same-device")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: first)
        for devices in [
            "", ",", "\(first),", "\(first),,\(second)", "dev/loop0", "\(first),\(first)",
            "\(first) \(second)", "'\(first)'", "\(first),#x", "\(first),\(link)",
            Array(repeating: first, count: 40).joined(separator: ",")
        ] {
            f.dconfDevices = devices
            let result = try f.fails(22, "EINVAL", "sr_create", f.sr, "0")
            #expect(!result.reason.isEmpty, "\(devices)")
        }
        f.dconfDevices = "\(first),\(second)"
        f.scratch.environment["SM_LVM_CONFIG"] = "global{activation=0} devices{ filter = [ \"a|'|\" ] }"
        try f.fails(22, "EINVAL", "sr_create", f.sr, "0")
        f.scratch.environment["SM_LVM_CONFIG"] = LVMSRFixture.lvmConfiguration
        try f.fails(22, "EINVAL", "sr_create", "not-a-uuid", "0")
        try f.fails(22, "EINVAL", "sr_create", f.sr, "-1")
        try f.fails(22, "EINVAL", "sr_create", f.sr, "1e9")
        for device in f.devices { #expect(try LVMOracle.signatures(device).isEmpty, "\(device)") }
        #expect(try LVMOracle.volumeGroup(f.volumeGroup) == nil)

        try f.ok("sr_create", f.sr, "0")
        try f.ok("sr_attach", f.sr)
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, String(2 * LVMSRFixture.extent))
        try f.fails(22, "EINVAL", "vdi_create", f.sr, newUUID(), "0")
        try f.fails(22, "EINVAL", "vdi_create", f.sr, newUUID(), "0x100")
        try f.fails(22, "EINVAL", "vdi_create", f.sr, "\(vdi)x", "4194304")
        try f.fails(22, "EINVAL", "vdi_resize", f.sr, vdi, String(LVMSRFixture.extent))
        try f.fails(22, "EINVAL", "vdi_attach", f.sr)
        #expect(try f.expectScanAgreesWithLVM(vdis: 1)[vdi] == 2 * LVMSRFixture.extent)
    }
}
