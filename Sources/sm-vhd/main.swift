import SMCore
#if canImport(Glibc)
import Glibc
#endif

/// sm-vhd: the VHD engine from the command line, for administrators and benchmarks.
///   sm-vhd check FILE...               every VHD-NOTES.md rule; exit 5 when a file breaks one
///   sm-vhd chain FILE                  the chain, leaf first
///   sm-vhd read FILE [OFFSET COUNT]    guest bytes through the chain to stdout
///   sm-vhd write FILE OFFSET           stdin written at OFFSET into the leaf
let arguments = Array(CommandLine.arguments.dropFirst())
func fail(_ message: String, _ status: Int32 = 22) -> Never {
    Diagnostics.writeStandardError("\(status == 22 ? "EINVAL" : "EIO"): \(message)\n")
    exit(status)
}
let usage = """
    Usage: sm-vhd check FILE... | chain FILE | read FILE [OFFSET COUNT] | write FILE OFFSET

    sm-vhd reads and writes VHD files with the storage manager's own VHD engine: for administrators
    and benchmarks.

    Commands:
      check FILE...               every VHD-NOTES.md rule; exit 5 when a file breaks one
      chain FILE                  the chain, leaf first
      read FILE [OFFSET COUNT]    guest bytes through the chain to stdout
      write FILE OFFSET           stdin written at OFFSET into the leaf

    Exit status is 0 on success, 22 (EINVAL) for bad usage, 5 (EIO) when a file cannot be read or
    breaks a rule.
    """
if let first = arguments.first, ["--help", "-h", "help"].contains(first), arguments.count == 1 {
    print(usage)
    exit(0)
}
guard let command = arguments.first, arguments.count >= 2 else {
    fail("usage: sm-vhd check FILE... | chain FILE | read FILE [OFFSET COUNT] | write FILE OFFSET")
}
let file = arguments[1]
do {
    switch command {
    case "check":
        var damaged = false
        for path in arguments.dropFirst() {
            let problems = VHDChecker.problems(ofFile: path)
            damaged = damaged || !problems.isEmpty
            print("\(path): \(problems.isEmpty ? "clean" : problems.joined(separator: "; "))")
        }
        exit(damaged ? 5 : 0)
    case "chain":
        for image in try VHDChain.open(file).images {
            print("\(image.path) \(image.uniqueID) size=\(image.size) hidden=\(image.footer.hidden)")
        }
    case "read":
        let chain = try VHDChain.open(file)
        let offset = arguments.count > 2 ? UInt64(arguments[2]) : 0
        let count = arguments.count > 3 ? UInt64(arguments[3]) : chain.size - (offset ?? 0)
        guard var position = offset, let count, position + count <= chain.size else { fail("bad OFFSET or COUNT") }
        let end = position + count
        let chunk = 2 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        while position < end {
            let length = Int(min(UInt64(chunk), end - position))
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
            try chain.read(at: position, into: slice)
            var written = 0
            while written < length {
                let result = write(1, slice.baseAddress! + written, length - written)
                guard result > 0 else { fail("write to stdout failed", 5) }
                written += result
            }
            position += UInt64(length)
        }
    case "write":
        guard arguments.count == 3, var position = UInt64(arguments[2]) else { fail("usage: sm-vhd write FILE OFFSET") }
        let chain = try VHDChain.open(file, writable: true)
        while true {
            let bytes = try Syscall.readStandardInput(limit: 2 << 20)
            if bytes.isEmpty { break }
            try chain.write(at: position, bytes: bytes)
            position += UInt64(bytes.count)
        }
    default:
        fail("unknown command '\(command)'")
    }
} catch {
    fail(error.message, 5)
}
