import Foundation
import SMCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A FileSR whose directory holds what anyone with write access to it could put there: parent
/// loops, parents outside the SR, BATs past the end of the file, a 10,000-deep chain, symbolic
/// links and FIFOs under VDI names. Every verb ends in bounded time (each run is killed after
/// `HostileSR.bound` seconds, which shows as status 137) with 0 or one of the spec's errnos and
/// a `NAME: reason` line, never reads or writes outside the SR, and never changes a byte of a
/// healthy VDI next to the hostile files; sr_scan keeps listing the healthy VDI and exits 0.
@Suite(.serialized) struct HostileSRTests {
    /// An SR with one healthy VDI holding known data, and a file outside the SR that must not change.
    final class HostileSR {
        static let bound = 30
        static let errnoNames: [Int32: String] = [
            1: "EPERM", 5: "EIO", 16: "EBUSY", 17: "EEXIST", 19: "ENODEV",
            22: "EINVAL", 28: "ENOSPC", 37: "ENOLCK", 38: "ENOSYS"
        ]
        let sr: CopyOnWriteSR
        let healthy: String
        let healthyData = pattern(6 << 20, seed: 808)
        /// A valid VHD with data, outside the SR: what a link or locator leading out would reach.
        let outside: String
        let outsideBytes: Data
        let outsideUniqueID: [UInt8]

        init(_ name: String) throws {
            sr = try CopyOnWriteSR(name)
            healthy = try sr.create(size: 6 << 20)
            try sr.write(healthy, at: 0, healthyData)
            try FileManager.default.createDirectory(atPath: sr.scratch.path("outside"), withIntermediateDirectories: true)
            outside = sr.scratch.path("outside/x.vhd")
            let image = try VHDImage.create(at: outside, size: 4 << 20, uniqueID: CanonicalUUID.random().bytes)
            try image.write(at: 0, bytes: pattern(1 << 20, seed: 909))
            outsideUniqueID = image.footer.uniqueID
            outsideBytes = try Data(contentsOf: URL(fileURLWithPath: outside))
        }

        var root: String { sr.root }

        /// Runs a FileSR verb, killed after `bound` seconds; checks the spec's exit contract.
        @discardableResult
        func run(
            _ verb: String, _ arguments: String..., bound: Int = HostileSR.bound,
            sourceLocation: SourceLocation = #_sourceLocation
        ) throws -> ProductResult {
            let result = try Product.runProgram(
                "timeout",
                ["-s", "KILL", String(bound), Product.path("FileSR"), sr.dconf, verb]
                    + arguments, environment: sr.scratch.environment)
            #expect(result.status != 137, "\(verb) \(arguments) did not finish in \(bound) s", sourceLocation: sourceLocation)
            #expect(
                result.status == 0 || Self.errnoNames[result.status] != nil, "\(verb) \(arguments): \(result)",
                sourceLocation: sourceLocation)
            if let name = Self.errnoNames[result.status] {
                #expect(
                    result.reason.hasPrefix("\(name): ") && result.reason.count > name.count + 2,
                    "\(verb) \(arguments): last stderr line \(result.reason.debugDescription)", sourceLocation: sourceLocation)
            }
            return result
        }

        /// A differencing VHD written straight into the SR as `<vdi>.vhd`.
        @discardableResult
        func plantChild(
            _ vdi: String, uniqueID: [UInt8] = CanonicalUUID.random().bytes, parentUniqueID: [UInt8],
            parentName: String, locators: [(platformCode: UInt32, data: [UInt8])]? = nil
        ) throws -> [UInt8] {
            var setup = VHDImage.DifferencingSetup(parentUniqueID: parentUniqueID, parentTimestamp: 0, parentFileName: parentName)
            if let locators { setup.locators = locators }
            _ = try VHDImage.create(at: sr.path(vdi), size: 4 << 20, uniqueID: uniqueID, differencing: setup)
            return uniqueID
        }

        /// Every verb of the brief on `target`, in an order where each meets the hostile file as
        /// planted (resize before snapshot and clone replace it); sr_check must name `reported`
        /// (the target unless said). Returns the results by verb.
        @discardableResult
        func exercise(
            _ target: String, reported: String? = nil,
            sourceLocation: SourceLocation = #_sourceLocation
        ) throws -> [String: ProductResult] {
            var results: [String: ProductResult] = [:]
            results["sr_scan"] = try run("sr_scan", sr.sr, sourceLocation: sourceLocation)
            let check = try run("sr_check", sr.sr, sourceLocation: sourceLocation)
            results["sr_check"] = check
            #expect(
                check.status == 5 && check.standardOutput.contains("<vdi>\(reported ?? target)</vdi>"), "sr_check: \(check)",
                sourceLocation: sourceLocation)
            results["vdi_attach"] = try run("vdi_attach", sr.sr, target, sourceLocation: sourceLocation)
            if results["vdi_attach"]?.status == 0 { try run("vdi_detach", sr.sr, target, sourceLocation: sourceLocation) }
            results["vdi_resize"] = try run("vdi_resize", sr.sr, target, String(8 << 20), sourceLocation: sourceLocation)
            results["vdi_snapshot"] = try run("vdi_snapshot", sr.sr, target, newUUID(), sourceLocation: sourceLocation)
            results["vdi_clone"] = try run("vdi_clone", sr.sr, target, newUUID(), sourceLocation: sourceLocation)
            results["sr_gc"] = try run("sr_gc", sr.sr, sourceLocation: sourceLocation)
            try run("sr_check", sr.sr, sourceLocation: sourceLocation)
            return results
        }

        /// The healthy VDI reads its data, is listed and attaches; sr_check does not name it; the
        /// file outside the SR is byte for byte what it was.
        func expectUndamaged(sourceLocation: SourceLocation = #_sourceLocation) throws {
            let scan = try run("sr_scan", sr.sr, sourceLocation: sourceLocation)
            #expect(
                scan.status == 0 && scan.standardOutput.contains("<uuid>\(healthy)</uuid>"), "sr_scan: \(scan)",
                sourceLocation: sourceLocation)
            #expect(try sr.read(healthy) == healthyData, "the healthy VDI's bytes changed", sourceLocation: sourceLocation)
            let check = try run("sr_check", sr.sr, sourceLocation: sourceLocation)
            #expect(
                !check.standardOutput.contains("<vdi>\(healthy)</vdi>"), "sr_check names the healthy VDI: \(check)",
                sourceLocation: sourceLocation)
            #expect(try run("vdi_attach", sr.sr, healthy, sourceLocation: sourceLocation).status == 0, sourceLocation: sourceLocation)
            try run("vdi_detach", sr.sr, healthy, sourceLocation: sourceLocation)
            #expect(
                try Data(contentsOf: URL(fileURLWithPath: outside)) == outsideBytes, "the file outside the SR changed",
                sourceLocation: sourceLocation)
        }
    }

    /// A's parent is B and B's is A; S is its own parent: sr_check names all three, attach,
    /// snapshot and clone refuse (EIO), sr_gc merges nothing even once A is hidden by its delete.
    @Test(.timeLimit(.minutes(2))) func parentLoops() throws {
        let hostile = try HostileSR("sm-hostile-loop")
        let a = newUUID()
        let b = newUUID()
        let s = newUUID()
        let idA = CanonicalUUID.random().bytes
        let idB = CanonicalUUID.random().bytes
        let idS = CanonicalUUID.random().bytes
        try hostile.plantChild(a, uniqueID: idA, parentUniqueID: idB, parentName: "\(b).vhd")
        try hostile.plantChild(b, uniqueID: idB, parentUniqueID: idA, parentName: "\(a).vhd")
        try hostile.plantChild(s, uniqueID: idS, parentUniqueID: idS, parentName: "\(s).vhd")
        for target in [a, s] {
            let results = try hostile.exercise(target)
            for verb in ["vdi_attach", "vdi_snapshot", "vdi_clone"] {
                #expect(results[verb]?.status == 5, "\(verb) \(target): \(results[verb].map(String.init(describing:)) ?? "")")
            }
            #expect(results["sr_check"]?.standardOutput.contains("parent loop") == true)
        }
        #expect(try hostile.sr.listed()[hostile.healthy] != nil)
        try hostile.run("vdi_delete", hostile.sr.sr, a)  // A has a child (B): hidden
        try hostile.run("sr_gc", hostile.sr.sr)
        #expect(try hostile.sr.files().contains(a) && hostile.sr.files().contains(b), "sr_gc merged a loop away")
        try hostile.run("vdi_delete", hostile.sr.sr, s)
        try hostile.expectUndamaged()
    }

    /// Parent names `../x.vhd` and an absolute path, and locators leading out of the SR under an
    /// in-SR parent name, all naming a valid VHD outside: none is opened or attached through.
    @Test(.timeLimit(.minutes(2))) func parentsOutsideTheSR() throws {
        let hostile = try HostileSR("sm-hostile-outside")
        // `<location>/x.vhd` is `../x.vhd` from the SR root.
        let sibling = "\(hostile.sr.scratch.path("data"))/x.vhd"
        try FileManager.default.copyItem(atPath: hostile.outside, toPath: sibling)
        let siblingBytes = try Data(contentsOf: URL(fileURLWithPath: sibling))
        let relative = newUUID()
        let absolute = newUUID()
        let located = newUUID()
        try hostile.plantChild(relative, parentUniqueID: hostile.outsideUniqueID, parentName: "../x.vhd")
        try hostile.plantChild(absolute, parentUniqueID: hostile.outsideUniqueID, parentName: hostile.outside)
        // The header names the healthy VDI (unique id included); the locators, which blktap follows first, lead out.
        let healthyID = try VHDImage.open(hostile.sr.path(hostile.healthy)).footer.uniqueID
        try hostile.plantChild(
            located, parentUniqueID: healthyID, parentName: "\(hostile.healthy).vhd",
            locators: [(VHDParentLocator.macX, Array("file://\(hostile.outside)".utf8))])
        for target in [relative, absolute, located] {
            let results = try hostile.exercise(target)
            #expect(results["vdi_attach"]?.status == 5, "vdi_attach \(target): \(String(describing: results["vdi_attach"]))")
        }
        let check = try hostile.run("sr_check", hostile.sr.sr)
        #expect(check.standardOutput.contains("does not name a VDI of this SR"), "\(check)")
        #expect(check.standardOutput.contains("parent locators lead to \(hostile.outside)"), "\(check)")
        for target in [relative, absolute, located] { try hostile.run("vdi_delete", hostile.sr.sr, target) }
        try hostile.expectUndamaged()
        #expect(try Data(contentsOf: URL(fileURLWithPath: sibling)) == siblingBytes)
    }

    /// A BAT entry far past the end of the file, a BAT that itself lies past the end, and such a
    /// VDI as the hidden parent sr_gc would merge: errnos, never a trap, and no other VDI touched.
    @Test(.timeLimit(.minutes(2))) func tablesPastTheEnd() throws {
        let hostile = try HostileSR("sm-hostile-bat")
        let entryPast = try hostile.sr.create()
        let tablePast = try hostile.sr.create()
        for vdi in [entryPast, tablePast] { try hostile.sr.write(vdi, at: 0, pattern(3 << 20, seed: 5)) }
        let image = try VHDImage.open(hostile.sr.path(entryPast))
        let file = try FileHandle(forUpdating: URL(fileURLWithPath: hostile.sr.path(entryPast)))
        try file.seek(toOffset: image.header.tableOffset)
        try file.write(contentsOf: [0x40, 0x00, 0x00, 0x00])  // sector 2^30: 512 GiB into a file of a few MiB
        try file.close()
        var header = try VHDImage.open(hostile.sr.path(tablePast)).header
        header.tableOffset = 1 << 40
        let headerFile = try FileHandle(forUpdating: URL(fileURLWithPath: hostile.sr.path(tablePast)))
        try headerFile.seek(toOffset: UInt64(VHDFooter.size))
        try headerFile.write(contentsOf: header.bytes)
        try headerFile.close()
        // A hidden parent with one child whose BAT points past its end: what sr_gc would merge.
        let child = try hostile.sr.create()
        let parent = newUUID()
        try hostile.sr.write(child, at: 0, pattern(2 << 20, seed: 6))
        try hostile.sr.expectOK("vdi_snapshot", hostile.sr.sr, child, parent)
        try hostile.sr.expectOK("vdi_delete", hostile.sr.sr, parent)
        let parentImage = try VHDImage.open(hostile.sr.path(parent))
        let parentFile = try FileHandle(forUpdating: URL(fileURLWithPath: hostile.sr.path(parent)))
        try parentFile.seek(toOffset: parentImage.header.tableOffset)
        try parentFile.write(contentsOf: [0x40, 0x00, 0x00, 0x00])
        try parentFile.close()
        for target in [entryPast, tablePast] { try hostile.exercise(target) }
        try hostile.exercise(child, reported: parent)
        for target in [entryPast, tablePast, child] { try hostile.run("vdi_delete", hostile.sr.sr, target) }
        try hostile.run("sr_gc", hostile.sr.sr)
        try hostile.expectUndamaged()
    }

    /// `<vdi>.vhd` a symbolic link to a valid VHD outside the SR, and a parent `<p>.vhd` that is
    /// such a link: nothing is read or written through them (resize included), sr_check names
    /// them, vdi_delete removes the link and leaves its target alone.
    @Test(.timeLimit(.minutes(2))) func symbolicLinksOutOfTheSR() throws {
        let hostile = try HostileSR("sm-hostile-link")
        let link = newUUID()
        let linkedParent = newUUID()
        let child = newUUID()
        #expect(symlink(hostile.outside, hostile.sr.path(link)) == 0)
        #expect(symlink(hostile.outside, hostile.sr.path(linkedParent)) == 0)
        try hostile.plantChild(child, parentUniqueID: hostile.outsideUniqueID, parentName: "\(linkedParent).vhd")
        let results = try hostile.exercise(link)
        for verb in ["vdi_attach", "vdi_snapshot", "vdi_clone", "vdi_resize"] {
            #expect(results[verb]?.status == 5, "\(verb) of a link: \(String(describing: results[verb]))")
        }
        #expect(results["sr_check"]?.standardOutput.contains("is a symbolic link") == true)
        #expect(results["sr_scan"]?.standardOutput.contains(link) == false)
        let childResults = try hostile.exercise(child)
        #expect(childResults["vdi_attach"]?.status == 5, "\(String(describing: childResults["vdi_attach"]))")
        // The child first: a VDI others depend on is hidden, which an unreadable file cannot be.
        for vdi in [child, linkedParent, link] { try hostile.run("vdi_delete", hostile.sr.sr, vdi) }
        #expect(Syscall.lstatus(hostile.sr.path(link)) == nil, "vdi_delete left the link")
        try hostile.expectUndamaged()
    }

    /// A FIFO as `<vdi>.vhd`, as the parent `<p>.vhd` of a readable child, as the parent name
    /// `pipe` of another, as a VDI's attribute file and as a lock mutex: every verb returns
    /// (none opens a FIFO), sr_check names each VDI, sr_scan lists the readable ones.
    @Test(.timeLimit(.minutes(2))) func fifos() throws {
        let hostile = try HostileSR("sm-hostile-fifo")
        let fifo = newUUID()
        let childOfFIFO = newUUID()
        let childOfPipe = newUUID()
        #expect(mkfifo(hostile.sr.path(fifo), 0o644) == 0)
        #expect(mkfifo("\(hostile.root)/pipe", 0o644) == 0)
        try hostile.plantChild(childOfFIFO, parentUniqueID: CanonicalUUID.random().bytes, parentName: "\(fifo).vhd")
        try hostile.plantChild(childOfPipe, parentUniqueID: CanonicalUUID.random().bytes, parentName: "pipe")
        try FileManager.default.createDirectory(atPath: "\(hostile.root)/.sm/vdi", withIntermediateDirectories: true)
        #expect(mkfifo("\(hostile.root)/.sm/vdi/\(childOfFIFO)", 0o644) == 0)
        let results = try hostile.exercise(fifo)
        #expect(results["vdi_attach"]?.status == 5, "\(String(describing: results["vdi_attach"]))")
        #expect(results["sr_check"]?.standardOutput.contains("is a FIFO") == true)
        for target in [childOfFIFO, childOfPipe] {
            let childResults = try hostile.exercise(target)
            #expect(childResults["vdi_attach"]?.status == 5, "\(String(describing: childResults["vdi_attach"]))")
            #expect(childResults["sr_scan"]?.standardOutput.contains("<uuid>\(target)</uuid>") == true)
        }
        // A FIFO as the lock mutex of the healthy VDI: vdi_lock gives up after its retries (ENOLCK)
        // and names the mutex without reading the FIFO.
        let mutex = "\(hostile.sr.path(hostile.healthy)).xenlk"
        #expect(mkfifo(mutex, 0o644) == 0)
        let lock = try hostile.run("vdi_lock", hostile.sr.sr, hostile.healthy, "FALSE", "vm-one")
        #expect(lock.status == 37 && lock.reason.contains(mutex), "vdi_lock beside a FIFO mutex: \(lock)")
        #expect(unlink(mutex) == 0)
        for vdi in [childOfFIFO, childOfPipe, fifo] { try hostile.run("vdi_delete", hostile.sr.sr, vdi) }
        #expect(Syscall.lstatus(hostile.sr.path(fifo)) == nil, "vdi_delete left the FIFO")
        try hostile.expectUndamaged()
    }

    /// vdi_delete of an unreadable VDI (here a FIFO) that another VDI names as its parent leaves
    /// no intent record that recovery can never complete: sr_scan goes on working.
    @Test(.timeLimit(.minutes(1))) func deleteOfAnUnreadableParent() throws {
        let hostile = try HostileSR("sm-hostile-delete")
        let fifo = newUUID()
        let child = newUUID()
        #expect(mkfifo(hostile.sr.path(fifo), 0o644) == 0)
        try hostile.plantChild(child, parentUniqueID: CanonicalUUID.random().bytes, parentName: "\(fifo).vhd")
        try hostile.run("vdi_delete", hostile.sr.sr, fifo)
        let scan = try hostile.run("sr_scan", hostile.sr.sr)
        #expect(scan.status == 0, "sr_scan after vdi_delete of an unreadable parent: \(scan)")
    }

    /// The links of a chain `depth` long (base first), written into the SR without an fsync per
    /// file: built on tmpfs by the VHD engine, then moved in.
    static func plantChain(_ sr: CopyOnWriteSR, depth: Int) throws -> [String] {
        let staging = "/dev/shm/sm-hostile-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        var links: [String] = []
        var parentID: [UInt8] = []
        for index in 0..<depth {
            let vdi = newUUID()
            let uniqueID = CanonicalUUID.random().bytes
            let setup =
                index == 0
                ? nil
                : VHDImage.DifferencingSetup(
                    parentUniqueID: parentID, parentTimestamp: 0,
                    parentFileName: "\(links[index - 1]).vhd")
            _ = try VHDImage.create(at: "\(staging)/\(vdi).vhd", size: 2 << 20, uniqueID: uniqueID, differencing: setup)
            links.append(vdi)
            parentID = uniqueID
        }
        #expect(try Product.runProgram("/bin/sh", ["-c", "mv '\(staging)'/*.vhd '\(sr.root)'/"]).status == 0)
        return links
    }

    /// sr_check of a 10,000-deep chain ends in seconds (linear, not cubic in the depth) and names
    /// the chain's length; every other verb on its leaf is bounded too.
    @Test(.timeLimit(.minutes(5))) func tenThousandDeepChain() throws {
        let hostile = try HostileSR("sm-hostile-deep")
        let links = try Self.plantChain(hostile.sr, depth: 10_000)
        let leaf = try #require(links.last)
        let started = Date()
        let check = try hostile.run("sr_check", hostile.sr.sr, bound: 120)
        let seconds = Date().timeIntervalSince(started)
        print("sr_check of a 10,000-deep chain: \(String(format: "%.2f", seconds)) s")
        #expect(seconds < 60, "sr_check took \(seconds) s")
        #expect(check.status == 5 && check.standardOutput.contains("chain has 10000 VHDs, more than 30"), "\(check.reason)")
        let results = try hostile.exercise(leaf)
        #expect(results["vdi_attach"]?.status == 5)
        #expect(results["vdi_snapshot"]?.status == 1 && results["vdi_clone"]?.status == 1)
        #expect(results["sr_scan"]?.standardOutput.contains("<uuid>\(leaf)</uuid>") == true)
        try hostile.run("vdi_delete", hostile.sr.sr, leaf)
        try hostile.expectUndamaged()
    }
}
