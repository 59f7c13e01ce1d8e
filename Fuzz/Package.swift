// swift-tools-version: 6.1
import Foundation
import PackageDescription

/// libFuzzer targets for SMCore's parsers, kept out of the main package so that its normal
/// build never compiles them. Build and run through Scripts/fuzz.sh (see Docs/fuzzing.md):
/// every target needs `-sanitize=fuzzer,address` on the whole build, which the script passes.

/// SwiftPM names a path dependency after its directory, which is whatever the checkout is
/// called (and clashes with this package when that is `fuzz`): the main package is reached
/// through a link of a fixed name, `Fuzz/.build/StorageManager -> ../..`, so that its identity
/// is always `StorageManager`. Scripts/fuzz.sh makes the link before every build (not this
/// manifest: SwiftPM caches a manifest's evaluation, so a side effect here runs only once).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let checkout = root.appendingPathComponent("Fuzz/.build/StorageManager")
let core = Target.Dependency.product(name: "SMCore", package: "StorageManager")

let targets = ["fuzz-dconf", "fuzz-vhd-structures", "fuzz-vhd-file", "fuzz-vhd-chain", "fuzz-intent"]

let package = Package(
    name: "StorageManagerFuzz",
    dependencies: [.package(path: checkout.path)],
    targets: [
        .target(name: "FuzzSupport", dependencies: [core]),
        // Writes the seed corpus of the VHD targets (Fuzz/corpus) with SMCore's own writer.
        .executableTarget(name: "make-corpus", dependencies: ["FuzzSupport", core])
    ]
        + targets.map {
            .executableTarget(
                name: $0,
                dependencies: ["FuzzSupport", core]
            )
        }
)
