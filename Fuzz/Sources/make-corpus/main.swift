import FuzzSupport
import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// make-corpus DIRECTORY: the VHD seeds of Fuzz/corpus, made by SMCore's own VHD writer (the
/// files the product creates) and encoded as `FuzzFiles` inputs. Run by hand when the formats
/// change; the result is committed.
let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    print("usage: make-corpus DIRECTORY")
    exit(2)
}
let output = arguments[1]
let scratch = FuzzFiles.directory

func contents(_ path: String) -> [UInt8] {
    let descriptor = open(path, O_RDONLY)
    precondition(descriptor >= 0, "cannot open \(path)")
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let got = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if got <= 0 { break }
        bytes += buffer[0..<got]
    }
    return bytes
}

func save(_ target: String, _ name: String, _ bytes: [UInt8]) {
    let directory = "\(output)/\(target)"
    mkdir(output, 0o755)
    mkdir(directory, 0o755)
    let descriptor = open("\(directory)/\(name)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(descriptor >= 0, "cannot write \(directory)/\(name)")
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    close(descriptor)
}

/// A fixed unique id per file, so that the corpus is the same each time it is made.
func uniqueID(_ seed: UInt8) -> [UInt8] { (0..<16).map { UInt8(truncatingIfNeeded: Int($0) * 7 + Int(seed)) } }

func pattern(_ count: Int, _ seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ Int(seed)) } }

func create(_ name: String, size: UInt64, seed: UInt8, parent: String? = nil) throws -> VHDImage {
    var setup: VHDImage.DifferencingSetup?
    if let parent {
        let image = try VHDImage.open("\(scratch)/\(parent)")
        let time = try image.modificationTime()
        setup = VHDImage.DifferencingSetup(
            parentUniqueID: image.footer.uniqueID,
            parentTimestamp: VHDTime.fromUnix(Int64(time.tv_sec)), parentFileName: parent)
    }
    return try VHDImage.create(at: "\(scratch)/\(name)", size: size, uniqueID: uniqueID(seed), differencing: setup)
}

let both = FuzzFiles.checksumFooter | FuzzFiles.checksumHeader
do {
    // Single files: an empty dynamic disk, one with sectors in two blocks, a differencing child.
    FuzzFiles.removeAll()
    _ = try create("empty.vhd", size: 4 << 20, seed: 1)
    let written = try create("written.vhd", size: 8 << 20, seed: 2)
    try written.write(at: 0, bytes: pattern(1024, 3))
    try written.write(at: (2 << 20) + 4096 + 100, bytes: pattern(700, 4))
    let child = try create("child.vhd", size: 8 << 20, seed: 5, parent: "written.vhd")
    try child.write(at: 512, bytes: pattern(512, 6))
    for name in ["empty", "written", "child"] {
        let file = contents("\(scratch)/\(name).vhd")
        save("fuzz-vhd-file", "\(name)", FuzzFiles.input(flags: 0, files: [file]))
        save("fuzz-vhd-file", "\(name)-checksummed", FuzzFiles.input(flags: both, files: [file]))
    }
    // Structures: the child's footer and header, then its first locator's data.
    let childFile = contents("\(scratch)/child.vhd")
    let header = try VHDDynamicHeader(bytes: Array(childFile[512..<1536]))
    let locator = header.parentLocators[0]
    let locatorData = Array(childFile[Int(locator.dataOffset)..<Int(locator.dataOffset) + Int(locator.dataLength)])
    save("fuzz-vhd-structures", "child", [0] + Array(childFile[0..<1536]) + locatorData)
    save("fuzz-vhd-structures", "child-checksummed", [both] + Array(childFile[0..<1536]) + locatorData)
    save("fuzz-vhd-structures", "empty", [0] + Array(contents("\(scratch)/empty.vhd")[0..<1536]))

    // Chains: leaf -> parent -> base, with data at each level (files named as the target names them).
    FuzzFiles.removeAll()
    let base = try create("base.vhd", size: 4 << 20, seed: 10)
    try base.write(at: 0, bytes: pattern(4096, 11))
    let parent = try create("parent.vhd", size: 4 << 20, seed: 12, parent: "base.vhd")
    try parent.write(at: 512, bytes: pattern(512, 13))
    let leaf = try create("leaf.vhd", size: 6 << 20, seed: 14, parent: "parent.vhd")
    try leaf.write(at: 1024, bytes: pattern(512, 15))
    let files = ["leaf", "parent", "base"].map { contents("\(scratch)/\($0).vhd") }
    save("fuzz-vhd-chain", "three", FuzzFiles.input(flags: 0, files: files))
    save("fuzz-vhd-chain", "three-checksummed", FuzzFiles.input(flags: both, files: files))
    FuzzFiles.removeAll(andDirectory: true)
} catch {
    print("make-corpus: \(error)")
    exit(1)
}
