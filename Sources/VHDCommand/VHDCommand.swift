import ArgumentParser
import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// sm-vhd: the VHD engine from the command line, for administrators and benchmarks. Each command
/// is a subcommand; its operands are typed, so a bad number is a usage error before any file is
/// opened. A module, so that `sm-drivers` answers as sm-vhd too (the package's /usr/sbin/sm-vhd
/// is a link to that fully static executable: Docs/performance.md).
struct VHDTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sm-vhd",
        abstract: "Read and write VHD files with the storage manager's own VHD engine.",
        usage: """
            sm-vhd check <files> ...
            sm-vhd chain <file>
            sm-vhd read <file> [<offset>] [<count>]
            sm-vhd write <file> <offset>
            """,
        discussion: """
            For administrators and benchmarks. Exit status is 0 on success, 22 (EINVAL) for bad usage, \
            5 (EIO) when a file cannot be read or breaks a rule.
            """,
        subcommands: [Check.self, Chain.self, Read.self, Write.self]
    )

    /// Bad usage: `EINVAL: <reason>` on stderr, exit 22; any other failure: `EIO: <reason>`, exit 5.
    static func fail(_ message: String, _ status: Int32 = EINVAL) -> Never {
        Diagnostics.writeStandardError("\(status == EINVAL ? "EINVAL" : "EIO"): \(message)\n")
        Glibc.exit(status)
    }

    /// No command: bad usage.
    func run() {
        VHDTool.fail("missing command (check, chain, read or write); see 'sm-vhd --help'")
    }

    /// Parses, runs, and turns every failure into the statuses above (help exits 0).
    static func run(_ arguments: [String]) -> Never {
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            switch exitCode(for: error) {
            case .success: exit(withError: error)
            case .validationFailure: fail(message(for: error))
            default: fail((error as? StorageError)?.message ?? "\(error)", EIO)
            }
        }
        Glibc.exit(0)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check every VHD-NOTES.md rule; exit 5 when a file breaks one.")

    @Argument(help: "The VHD files to check.")
    var files: [String]

    func run() {
        var damaged = false
        for path in files {
            let problems = VHDChecker.problems(ofFile: path)
            damaged = damaged || !problems.isEmpty
            print("\(path): \(problems.isEmpty ? "clean" : problems.joined(separator: "; "))")
        }
        Glibc.exit(damaged ? EIO : 0)
    }
}

struct Chain: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the chain, leaf first.")

    @Argument(help: "The leaf VHD.")
    var file: String

    func run() throws {
        for image in try openChain(file).images {
            print("\(image.path) \(image.uniqueID) size=\(image.size) hidden=\(image.footer.hidden)")
        }
    }
}

struct Read: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print guest bytes, read through the chain, on stdout.")

    @Argument(help: "The leaf VHD.")
    var file: String
    @Argument(help: "The first guest byte (default 0).")
    var offset: UInt64 = 0
    @Argument(help: "How many bytes (default: to the end of the disk).")
    var count: UInt64?

    func run() throws {
        let chain = try openChain(file)
        let count = count ?? chain.size - min(offset, chain.size)
        guard offset <= chain.size, count <= chain.size - offset else { VHDTool.fail("bad OFFSET or COUNT") }
        var position = offset
        let end = offset + count
        // 512 KiB: a buffer that stays in the CPU's cache while the kernel copies into it and
        // out to stdout (2 MiB cost 10-15% more CPU per byte than cat's 128 KiB; 128 KiB pieces
        // read each block's bitmaps 16 times: Docs/performance.md).
        let chunk = 512 << 10
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        while position < end {
            let length = Int(min(UInt64(chunk), end - position))
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
            try chain.read(at: position, into: slice)
            var written = 0
            while written < length {
                let result = Glibc.write(1, slice.baseAddress! + written, length - written)
                guard result > 0 else { VHDTool.fail("write to stdout failed", EIO) }
                written += result
            }
            position += UInt64(length)
        }
    }
}

struct Write: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write stdin at a guest offset into the leaf.")

    @Argument(help: "The leaf VHD.")
    var file: String
    @Argument(help: "The guest byte to write at.")
    var offset: UInt64

    func run() throws {
        let chain = try openChain(file, writable: true)
        var position = offset
        while true {
            let bytes = try Syscall.readStandardInput(limit: 2 << 20)
            if bytes.isEmpty { break }
            try chain.write(at: position, bytes: bytes)
            position += UInt64(bytes.count)
        }
    }
}

/// A chain of files, or of block devices (VHDs on an LVM SR's logical volumes) when `file` is one.
func openChain(_ file: String, writable: Bool = false) throws -> VHDChain {
    let onDevice = Syscall.fileStatus(file).map { ($0.st_mode & S_IFMT) == S_IFBLK } ?? false
    return try VHDChain.open(file, writable: writable, blockDevices: onDevice)
}

/// The entry point of `sm-vhd` and of `sm-drivers` run by that name.
public enum VHDCommandMain {
    public static func run() -> Never {
        VHDTool.run(Array(CommandLine.arguments.dropFirst()))
    }
}
