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

    /// sm-dynamic-drivers holds the LVM drivers and RBDSR the same way (dynamic: they load
    /// liblvm2cmd, librados and librbd with dlopen).
    @Test(.timeLimit(.minutes(1))) func dynamicDriversAnswerByName() throws {
        let scratch = try Scratch("sm-multicall-dynamic")
        for driver in ["LVMSR", "LVMoISCSISR", "RBDSR"] {
            let link = scratch.path(driver)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: Product.path("sm-dynamic-drivers"))
            let help = try Product.runProgram(link, ["--help"], environment: scratch.environment)
            #expect(help.status == 0)
            #expect(help.standardOutput == (try Product.run(driver, ["--help"])).standardOutput, "\(driver)")
        }
        let anonymous = try Product.run("sm-dynamic-drivers", ["<dconf/>", "sr_scan", newUUID()], environment: scratch.environment)
        #expect(anonymous.status == 22)
        #expect(
            anonymous.reason.hasPrefix("EINVAL: run as 'sm-dynamic-drivers': this executable holds the drivers LVMSR, LVMoISCSISR, RBDSR"))
    }

    /// Run as lock-util (the package's /usr/sbin/lock-util is a link to it), sm-drivers is
    /// lock-util: the same help, and a lock taken through it is a lock lock-util sees.
    @Test(.timeLimit(.minutes(1))) func answersAsLockUtil() throws {
        let scratch = try Scratch("sm-multicall-lock")
        let link = scratch.path("lock-util")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: Product.path("sm-drivers"))
        let help = try Product.runProgram(link, ["--help"], environment: scratch.environment)
        #expect(help.status == 0)
        #expect(help.standardOutput == (try Product.run("lock-util", ["--help"])).standardOutput)
        let file = scratch.path("disk")
        let taken = try Product.runProgram(link, ["lock", file, "w", "0", "-id", "30"], environment: scratch.environment)
        #expect(taken.status == 0 && taken.standardOutput == "0 30\n", "\(taken)")
        let seen = try Product.run("lock-util", ["lock", file, "w", "0", "other", "30"], environment: scratch.environment)
        #expect(seen.standardOutput == "-4 -1\n", "\(seen)")
        let usage = try Product.runProgram(link, ["frobnicate"], environment: scratch.environment)
        #expect(usage.status == 0 && usage.standardOutput == "-14\n", "\(usage)")
    }
}
