import Foundation
import SMCore
import Testing

/// A FileSR with copy-on-write helpers for tests: verbs through the built binary, guest data
/// through the VHD engine in-process (`VHDChain`), and what `sr_scan` lists, parsed.
final class CopyOnWriteSR {
    struct Listed: Equatable {
        var uuid: String
        var size: UInt64
        var parent: String?
        var readOnly: Bool
        var label: String
        var locked = false
    }

    let scratch: Scratch
    let sr = newUUID()
    let location: String
    let dconf: String

    /// An attached SR; background coalescing is off unless `backgroundGC`.
    convenience init(_ name: String = "sm-cow", backgroundGC: Bool = false) throws {
        let scratch = try Scratch(name)
        try self.init(scratch: scratch, location: scratch.path("data"), backgroundGC: backgroundGC)
    }

    /// An attached SR in `location` (a directory the caller prepared inside `scratch`).
    init(scratch: Scratch, location: String, backgroundGC: Bool = false) throws {
        self.scratch = scratch
        self.location = location
        if !backgroundGC { scratch.environment["SM_GC_AFTER_DELETE"] = "0" }
        dconf = "<dconf><location>\(location)</location></dconf>"
        try expectOK("sr_create", sr, "0")
        try expectOK("sr_attach", sr)
    }

    var root: String { "\(location)/\(sr)" }
    func path(_ vdi: String) -> String { "\(root)/\(vdi).vhd" }

    @discardableResult
    func run(_ verb: String, _ arguments: String..., environment: [String: String] = [:]) throws -> ProductResult {
        try run(verb, arguments, environment: environment)
    }

    @discardableResult
    func run(_ verb: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ProductResult {
        try Product.run("FileSR", [dconf, verb] + arguments, environment: scratch.environment.merging(environment) { $1 })
    }

    func expectOK(_ verb: String, _ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try run(verb, arguments)
        #expect(result.status == 0, "\(verb) \(arguments): \(result)", sourceLocation: sourceLocation)
    }

    /// Creates a VDI of `size` bytes and returns its UUID.
    func create(size: UInt64 = 4 << 20) throws -> String {
        let vdi = newUUID()
        try expectOK("vdi_create", sr, vdi, String(size))
        return vdi
    }

    /// Guest bytes of a VDI, read through its chain by the engine.
    func read(_ vdi: String) throws -> [UInt8] {
        let chain = try VHDChain.open(path(vdi))
        return try chain.read(at: 0, count: Int(chain.size))
    }

    func write(_ vdi: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        try VHDChain.open(path(vdi), writable: true).write(at: offset, bytes: bytes)
    }

    /// The VDIs sr_scan lists (it must succeed).
    func listed(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Listed] {
        let result = try run("sr_scan", sr)
        #expect(result.status == 0, "sr_scan: \(result)", sourceLocation: sourceLocation)
        return Self.parseScan(result.standardOutput)
    }

    /// The `<vdi>` elements of an sr_scan document.
    static func parseScan(_ document: String) -> [String: Listed] {
        var listed: [String: Listed] = [:]
        for chunk in document.components(separatedBy: "<vdi>").dropFirst() {
            func field(_ name: String) -> String? {
                guard let start = chunk.range(of: "<\(name)>"), let end = chunk.range(of: "</\(name)>") else { return nil }
                return String(chunk[start.upperBound..<end.lowerBound])
            }
            guard let uuid = field("uuid") else { continue }
            listed[uuid] = Listed(
                uuid: uuid, size: UInt64(field("size") ?? "") ?? 0, parent: field("parent"),
                readOnly: field("read_only") == "True", label: field("label") ?? "",
                locked: field("locked") == "True")
        }
        return listed
    }

    /// sr_check must be clean (exit 0, no problem elements).
    func expectClean(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try run("sr_check", sr)
        #expect(
            result.status == 0 && !result.standardOutput.contains("<problem>"), "sr_check: \(result)",
            sourceLocation: sourceLocation)
    }

    /// Every VHD file in the SR, hidden ones included.
    func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasSuffix(".vhd") && !$0.hasPrefix(".") }
            .map { String($0.dropLast(4)) }.sorted()
    }

    /// The hidden flag of a VHD file.
    func isHidden(_ vdi: String) throws -> Bool { try VHDImage.open(path(vdi)).footer.hidden }
}

/// Deterministic test data.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SeededGenerator(seed: seed)
    var bytes = [UInt8](repeating: 0, count: count)
    var index = 0
    while index < count {
        let word = generator.next()
        for shift in stride(from: 0, to: 64, by: 8) where index < count {
            bytes[index] = UInt8(truncatingIfNeeded: word >> UInt64(shift))
            index += 1
        }
    }
    return bytes
}
