import Foundation
import Testing

/// sm-drivers, the multi-call executable the package installs for the static drivers: run by a
/// driver's name (a link) it is that driver; by any other name it is EINVAL, touching nothing.
@Suite struct MultiCallTests {
    @Test(.timeLimit(.minutes(1))) func answersAsTheNameItIsRunBy() throws {
        let scratch = try Scratch("sm-multicall")
        for driver in ["FileSR", "EXTSR", "NFSSR", "ISCSISR", "EXToISCSISR"] {
            let link = scratch.path(driver)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: Product.path("sm-drivers"))
            let help = try Product.runProgram(link, ["--help"], environment: scratch.environment)
            #expect(help.status == 0)
            #expect(help.standardOutput == (try Product.run(driver, ["--help"])).standardOutput, "\(driver)")
        }
        // A verb through the link does the work of that driver.
        let sr = newUUID()
        let dconf = "<dconf><location>\(scratch.path("data"))</location></dconf>"
        let created = try Product.runProgram(scratch.path("FileSR"), [dconf, "sr_create", sr, "0"], environment: scratch.environment)
        #expect(created.status == 0, "\(created)")
        #expect(FileManager.default.fileExists(atPath: scratch.path("data/\(sr)")))

        let anonymous = try Product.run("sm-drivers", [dconf, "sr_create", newUUID(), "0"], environment: scratch.environment)
        #expect(anonymous.status == 22)
        #expect(anonymous.reason.hasPrefix("EINVAL: run as 'sm-drivers': this executable holds the drivers FileSR, EXTSR"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path("data")) == [sr])
    }
}
