import Foundation
import Testing

/// One EXTSR test's world: scratch host paths, a loop device, an SR UUID and the dconfs naming
/// the device. `tearDown()` (in a `defer`) unmounts and detaches whatever the test left.
final class EXTSRFixture {
    /// Big enough for mkfs.xfs (which refuses less than 300 MB) and the 100 MiB wipe.
    static let defaultSize: UInt64 = 320 << 20
    static let wipeLength = 100 << 20

    let scratch: Scratch
    let loop: LoopDevice
    let sr = newUUID()

    init(size: UInt64 = defaultSize) throws {
        scratch = try Scratch("extsr")
        loop = try LoopDevice(size: size, in: scratch.path("data"))
    }

    func tearDown() {
        loop.release()
    }

    var dconf: String { Self.dconf(device: loop.path) }
    var forcedDconf: String { "<dconf><device>\(loop.path)</device><force>true</force></dconf>" }

    static func dconf(device: String) -> String { "<dconf><device>\(device)</device></dconf>" }

    /// The SR's mount point while attached.
    var mountPoint: String { scratch.path("mount/\(sr)") }

    /// Runs EXTSR with this fixture's device: `run("sr_attach", sr)`.
    @discardableResult
    func run(_ verb: String, _ arguments: String..., dconf: String? = nil) throws -> ProductResult {
        try scratch.run("EXTSR", [dconf ?? self.dconf, verb] + arguments)
    }

    /// Runs a verb that must succeed, recording the output if it does not.
    @discardableResult
    func succeed(
        _ verb: String, _ arguments: String..., dconf: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> ProductResult {
        let result = try scratch.run("EXTSR", [dconf ?? self.dconf, verb] + arguments)
        #expect(result.status == 0, "\(verb): \(result)", sourceLocation: sourceLocation)
        return result
    }

    /// `blkid -p -o export` of the device: TYPE, UUID, LABEL, PTTYPE ...; empty when blkid finds nothing.
    func probe() throws -> [String: String] {
        let result = try Product.runProgram("blkid", ["-p", "-o", "export", loop.path])
        var values: [String: String] = [:]
        for line in result.standardOutput.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        values["DEVNAME"] = nil
        return values
    }

    /// True when the first `count` bytes of the device read as zero.
    func headIsZero(_ count: Int) throws -> Bool {
        try Product.runProgram("cmp", ["-n", String(count), loop.path, "/dev/zero"]).status == 0
    }

    static func isMounted(_ mountPoint: String) throws -> Bool {
        try Product.runProgram("findmnt", ["--mountpoint", mountPoint]).status == 0
    }
}

/// Checks a failed run: its exit status is the errno and its last stderr line names it and the words.
func expectFailure(
    _ result: ProductResult, _ name: String, _ status: Int32, mentioning words: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(result.status == status, "expected \(name): \(result)", sourceLocation: sourceLocation)
    #expect(result.reason.hasPrefix("\(name): "), "\(result.reason)", sourceLocation: sourceLocation)
    for word in words {
        #expect(result.reason.contains(word), "'\(word)' missing from \(result.reason)", sourceLocation: sourceLocation)
    }
}
