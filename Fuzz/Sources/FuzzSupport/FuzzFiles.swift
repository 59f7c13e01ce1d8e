#if canImport(Glibc)
    import Glibc
#endif

/// Turns one fuzz input into files on disk, so that the VHD code under test reads real files
/// through its own system calls.
///
/// Input layout (Docs/fuzzing.md):
/// - byte 0: fix-up flags. Bit 0: give the footers at offset 0 and at the end a correct
///   checksum; bit 1: give the dynamic header (at the footer's data offset) a correct checksum.
///   Without them almost every mutation dies at a checksum check and the fuzzer never reaches
///   the code behind it.
/// - the rest: up to `maximumFiles` files separated by `fileSeparator`. Inside a file,
///   `holeMarker` followed by a 4-byte big-endian sector count leaves that many zero sectors
///   unwritten (a sparse hole), so that a file with 2 MiB blocks fits in a few KiB of input.
public enum FuzzFiles {
    public static let fileSeparator: [UInt8] = Array("\u{0}SMFILE\u{0}".utf8)
    public static let holeMarker: [UInt8] = Array("\u{0}SMHOLE".utf8)
    /// The largest hole (64 MiB): files stay small on tmpfs whatever the count says.
    public static let maximumHoleSectors: UInt32 = 1 << 17
    public static let sectorSize = 512
    public static let checksumFooter: UInt8 = 1
    public static let checksumHeader: UInt8 = 2

    /// One scratch directory per process, under /dev/shm when it exists.
    public static let directory: String = {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        var template = Array("\(base)/sm-fuzz-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        let path = String(cString: template)
        atexit { FuzzFiles.removeAll(andDirectory: true) }
        return path
    }()

    public static func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// Splits `input` (without the flag byte) at every file separator, at most `maximumFiles` parts.
    public static func split(_ input: ArraySlice<UInt8>, maximumFiles: Int) -> [ArraySlice<UInt8>] {
        var parts: [ArraySlice<UInt8>] = []
        var rest = input
        while parts.count < maximumFiles - 1, let at = firstIndex(of: fileSeparator, in: rest) {
            parts.append(rest[rest.startIndex..<at])
            rest = rest[(at + fileSeparator.count)...]
        }
        parts.append(rest)
        return parts
    }

    /// Writes the files named `names` from `input` (flag byte first) and returns their paths;
    /// files the input has no part for are not created. Every earlier file is removed first.
    public static func write(_ input: [UInt8], names: [String]) -> [String] {
        removeAll()
        guard let flags = input.first else { return [] }
        let parts = split(input[1...], maximumFiles: names.count)
        var paths: [String] = []
        for (name, part) in zip(names, parts) {
            var content = expand(part)
            fixChecksums(&content, flags: flags)
            let path = self.path(name)
            writeSparse(path, content)
            paths.append(path)
        }
        return paths
    }

    /// The file's segments: (offset, bytes); its total size.
    static func expand(_ part: ArraySlice<UInt8>) -> (segments: [(UInt64, ArraySlice<UInt8>)], size: UInt64) {
        var segments: [(UInt64, ArraySlice<UInt8>)] = []
        var offset: UInt64 = 0
        var rest = part
        while let at = firstIndex(of: holeMarker, in: rest) {
            segments.append((offset, rest[rest.startIndex..<at]))
            offset += UInt64(at - rest.startIndex)
            var sectors: UInt32 = 0
            let countStart = at + holeMarker.count
            for index in countStart..<min(countStart + 4, rest.endIndex) { sectors = sectors << 8 | UInt32(rest[index]) }
            offset += UInt64(min(sectors, maximumHoleSectors)) * UInt64(sectorSize)
            rest = rest[min(countStart + 4, rest.endIndex)...]
        }
        segments.append((offset, rest))
        return (segments, offset + UInt64(rest.count))
    }

    /// Recomputes the checksums the flags ask for, in the segments that hold them whole.
    static func fixChecksums(_ content: inout (segments: [(UInt64, ArraySlice<UInt8>)], size: UInt64), flags: UInt8) {
        func patch(at offset: UInt64, length: Int, checksumAt field: Int) {
            for index in content.segments.indices {
                let (start, bytes) = content.segments[index]
                guard offset >= start, offset + UInt64(length) <= start + UInt64(bytes.count) else { continue }
                var copy = Array(bytes)
                let base = Int(offset - start)
                var sum: UInt32 = 0
                for position in base..<base + length where position < base + field || position >= base + field + 4 {
                    sum &+= UInt32(copy[position])
                }
                let checksum = ~sum
                for byte in 0..<4 { copy[base + field + byte] = UInt8(truncatingIfNeeded: checksum >> (24 - 8 * UInt32(byte))) }
                content.segments[index].1 = copy[...]
                return
            }
        }
        func byte(at offset: UInt64) -> UInt8? {
            for (start, bytes) in content.segments where offset >= start && offset < start + UInt64(bytes.count) {
                return bytes[bytes.startIndex + Int(offset - start)]
            }
            return nil
        }
        if flags & checksumFooter != 0 {
            patch(at: 0, length: 512, checksumAt: 64)
            if content.size >= 512 { patch(at: content.size - 512, length: 512, checksumAt: 64) }
        }
        if flags & checksumHeader != 0 {
            // The header offset is the footer's data offset (bytes 16..<24 of the copy at 0).
            var dataOffset: UInt64 = 0
            for index in 16..<24 { dataOffset = dataOffset << 8 | UInt64(byte(at: UInt64(index)) ?? 0) }
            if dataOffset < content.size { patch(at: dataOffset, length: 1024, checksumAt: 36) }
        }
    }

    static func writeSparse(_ path: String, _ content: (segments: [(UInt64, ArraySlice<UInt8>)], size: UInt64)) {
        let descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        precondition(descriptor >= 0, "cannot create \(path)")
        defer { close(descriptor) }
        for (offset, bytes) in content.segments where !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
            precondition(written == bytes.count, "short write to \(path)")
        }
        precondition(ftruncate(descriptor, off_t(content.size)) == 0, "ftruncate \(path)")
    }

    /// Removes every file in the scratch directory (the directory too when `andDirectory`).
    public static func removeAll(andDirectory: Bool = false) {
        guard let stream = opendir(directory) else { return }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(stream)
        for name in names { unlink(path(name)) }
        if andDirectory { rmdir(directory) }
    }

    static func firstIndex(of needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Int? {
        haystack.withUnsafeBytes { hay in
            needle.withUnsafeBytes { pattern in
                guard let base = hay.baseAddress, let first = needle.first, hay.count >= pattern.count else { return nil }
                var offset = 0
                while offset <= hay.count - pattern.count {
                    // memchr finds the candidates, memcmp checks them (Glibc does not import memmem).
                    guard let hit = memchr(base + offset, Int32(first), hay.count - pattern.count + 1 - offset) else { return nil }
                    let at = UnsafeRawPointer(hit) - base
                    if memcmp(base + at, pattern.baseAddress!, pattern.count) == 0 { return haystack.startIndex + at }
                    offset = at + 1
                }
                return nil
            }
        }
    }
}

/// Stops the fuzzer with a message when a property the code promises does not hold.
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        let line = Array("property violated: \(message())\n".utf8)
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
        abort()
    }
}

/// The fuzz input as an array.
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// libFuzzer's driver (in the runtime `-sanitize=fuzzer` links): parses the libFuzzer flags in
/// argv and calls `callback` for each input. Used instead of libFuzzer's own `main`, which
/// SwiftPM's executable entry point replaces.
// swift-format-ignore: AlwaysUseLowerCamelCase
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

nonisolated(unsafe) private var fuzzBody: ([UInt8]) -> Void = { _ in
    fuzzCheck(false, "libFuzzer's own main ran instead of the target's runFuzzer")
}

/// What libFuzzer's own `main` (linked in but not the entry point) refers to.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzBody(fuzzInput(data, size))
    return 0
}

/// Runs libFuzzer with this process's arguments over `body`, then exits with its status.
public func runFuzzer(_ body: @escaping ([UInt8]) -> Void) -> Never {
    fuzzBody = body
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
    exit(status)
}

extension FuzzFiles {
    /// The input part for a file's bytes (the inverse of `expand`): every run of at least
    /// `minimumHoleSectors` all-zero sectors becomes a hole.
    public static func encode(_ file: [UInt8], minimumHoleSectors: Int = 4) -> [UInt8] {
        var output: [UInt8] = []
        var sector = 0
        let sectors = (file.count + sectorSize - 1) / sectorSize
        func isZero(_ index: Int) -> Bool {
            file[index * sectorSize..<min(file.count, (index + 1) * sectorSize)].allSatisfy { $0 == 0 }
        }
        while sector < sectors {
            var run = 0
            while sector + run < sectors - 1, isZero(sector + run), run < Int(maximumHoleSectors) { run += 1 }
            if run >= minimumHoleSectors {
                output += holeMarker
                output += (0..<4).map { UInt8(truncatingIfNeeded: UInt32(run) >> (24 - 8 * UInt32($0))) }
                sector += run
            } else {
                output += file[sector * sectorSize..<min(file.count, (sector + 1) * sectorSize)]
                sector += 1
            }
        }
        return output
    }

    /// One fuzz input for `files`: the flag byte, then each file encoded, separated.
    public static func input(flags: UInt8, files: [[UInt8]]) -> [UInt8] {
        var output: [UInt8] = [flags]
        for (index, file) in files.enumerated() {
            if index > 0 { output += fileSeparator }
            output += encode(file)
        }
        return output
    }
}
