import Foundation
import Testing

/// The VHD SR helpers the LVM VHD suites share (LVMSRVHDTests, LVMSRVHDGCTests, LVMExportTests):
/// a dconf with `vdi_type`, LVMSR run with it, and a VHD SR made and attached.
extension LVMSRFixture {
    func vhdDconf(type: String = "vhd") -> String {
        "<dconf><device>\(dconfDevices)</device><vdi_type>\(type)</vdi_type></dconf>"
    }

    func vhdCall(_ verb: String, _ arguments: [String]) throws -> ProductResult {
        try scratch.run("LVMSR", [vhdDconf(), verb] + arguments)
    }

    func vhdOK(_ verb: String, _ arguments: [String], sourceLocation: SourceLocation) throws -> ProductResult {
        let result = try vhdCall(verb, arguments)
        #expect(result.status == 0, "\(verb) \(arguments): \(result)", sourceLocation: sourceLocation)
        return result
    }

    /// A VHD SR of one loop device, made and attached.
    static func vhdSR(megabytes: UInt64 = 64, sourceLocation: SourceLocation = #_sourceLocation) throws -> LVMSRFixture {
        let f = try LVMSRFixture(devices: 1, megabytes: megabytes)
        _ = try f.vhdOK("sr_create", [f.sr, "0"], sourceLocation: sourceLocation)
        _ = try f.vhdOK("sr_attach", [f.sr], sourceLocation: sourceLocation)
        return f
    }
}
