import Foundation
import Testing

/// A FileSR on a scratch directory: `location` is `<scratch>/data`.
final class FileSRFixture {
    let scratch: Scratch
    let sr = newUUID()
    var location: String
    var dconf: String { "<dconf><location>\(location)</location></dconf>" }

    init(location: String? = nil) throws {
        scratch = try Scratch("filesr")
        self.location = location ?? scratch.path("data")
    }

    var root: String { "\(location)/\(sr)" }
    func vhd(_ vdi: String) -> String { "\(root)/\(vdi).vhd" }

    @discardableResult
    func call(_ verb: String, _ arguments: String...) throws -> ProductResult {
        try scratch.run("FileSR", [dconf, verb] + arguments)
    }

    /// Runs the verb and expects success.
    @discardableResult
    func ok(_ verb: String, _ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> ProductResult {
        let result = try scratch.run("FileSR", [dconf, verb] + arguments)
        #expect(result.status == 0, "\(verb) \(arguments): \(result)", sourceLocation: sourceLocation)
        return result
    }

    /// Runs the verb and expects the errno `status` with its name on the last stderr line.
    @discardableResult
    func fails(
        _ status: Int32, _ name: String, _ verb: String, _ arguments: String...,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> ProductResult {
        let result = try scratch.run("FileSR", [dconf, verb] + arguments)
        #expect(result.status == status, "\(verb) \(arguments): \(result)", sourceLocation: sourceLocation)
        #expect(result.reason.hasPrefix("\(name): "), "\(verb): \(result.reason)", sourceLocation: sourceLocation)
        return result
    }

    /// sr_create + sr_attach.
    func createAndAttach() throws {
        try ok("sr_create", sr, "0")
        try ok("sr_attach", sr)
    }
}

/// VHD facts from the tools that must read our files.
enum VHDOracle {
    /// qemu-img's virtual size of a VHD.
    static func qemuVirtualSize(_ path: String) throws -> UInt64? {
        let result = try Product.runProgram("qemu-img", ["info", "--output=json", "-f", "vpc", path])
        guard result.status == 0,
            let object = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any]
        else { return nil }
        return (object["virtual-size"] as? NSNumber)?.uint64Value
    }

    /// vhdiinfo's media size in bytes.
    static func libvhdiMediaSize(_ path: String) throws -> UInt64? {
        let result = try Product.runProgram("vhdiinfo", [path])
        guard result.status == 0 else { return nil }
        for line in result.standardOutput.split(separator: "\n") where line.contains("Media size") {
            if let open = line.lastIndex(of: "("), let space = line[open...].firstIndex(of: " ") {
                return UInt64(line[line.index(after: open)..<space])
            }
        }
        return nil
    }

    /// True when qemu reads the VHD as equal to an all-zero raw image of `size` bytes.
    static func readsAsZeros(_ path: String, size: UInt64, scratch: Scratch) throws -> Bool {
        let raw = scratch.path("zero-\(UUID().uuidString).raw")
        defer { try? FileManager.default.removeItem(atPath: raw) }
        #expect(FileManager.default.createFile(atPath: raw, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: raw))
        try handle.truncate(atOffset: size)
        try handle.close()
        return try Product.runProgram("qemu-img", ["compare", "-f", "vpc", "-F", "raw", path, raw]).status == 0
    }

    /// The current size fields of the footer at the end and of the copy at offset 0.
    static func footerSizes(_ path: String) throws -> (end: UInt64, copy: UInt64) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        func size(at offset: Int) -> UInt64 {
            data[(offset + 48)..<(offset + 56)].reduce(0) { $0 << 8 | UInt64($1) }
        }
        return (size(at: data.count - 512), size(at: 0))
    }
}
