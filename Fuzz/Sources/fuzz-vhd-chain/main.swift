import FuzzSupport

@testable import SMCore

/// Up to three VHD files (leaf.vhd, parent.vhd, base.vhd; layout: `FuzzFiles`) in one
/// directory, then the chain code: parent resolution through the locators, opening and reading
/// the chain, the checker's file and parent rules, and a small unaligned write through the chain.
///
/// Properties: nothing traps; after a write through the chain succeeds, the leaf reads back
/// the bytes around it as they were, with the written ones in place.
runFuzzer { input in
    let paths = FuzzFiles.write(input, names: ["leaf.vhd", "parent.vhd", "base.vhd"])
    guard let leafPath = paths.first else { return }
    for path in paths { _ = VHDChecker.problems(ofFile: path) }
    if let chain = try? VHDChain.open(leafPath) {
        for (child, parent) in zip(chain.images, chain.images.dropFirst()) {
            _ = VHDChecker.parentProblems(child: child, parentPath: parent.path)
        }
        _ = try? chain.read(at: 0, count: Int(min(chain.size, 64 << 10)))
        if chain.size >= 8192 { _ = try? chain.read(at: chain.size / 2 - 4096, count: 8192) }
    }
    guard let chain = try? VHDChain.open(leafPath, writable: true), chain.size >= 8192 else { return }
    chain.leaf.durable = false
    chain.images.forEach { $0.durable = false }
    guard var expected = try? chain.read(at: 0, count: 8192) else { return }
    let change: [UInt8] = [1, 2, 3, 4, 5]
    // Straddles a sector boundary: both partial sectors are completed through the parent.
    let offset = 510
    guard (try? chain.write(at: UInt64(offset), bytes: change)) != nil else { return }
    expected.replaceSubrange(offset..<offset + change.count, with: change)
    let after = try? chain.read(at: 0, count: 8192)
    fuzzCheck(after == expected, "bytes around a write through the chain changed")
}
