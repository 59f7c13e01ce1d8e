// swift-tools-version: 6.1
import PackageDescription

/// Driver executables: each is a one-line `main.swift` over SMCore.
let drivers = ["FileSR", "EXTSR", "NFSSR", "LVMSR", "ISCSISR", "LVMoISCSISR", "EXToISCSISR", "RBDSR"]

/// Drivers built on the LVM substrate.
let lvmDrivers: Set<String> = ["LVMSR", "LVMoISCSISR"]

/// Drivers that load a substrate's libraries with dlopen at their first call to it.
let dlopenDrivers = lvmDrivers.union(["RBDSR"])

/// The module each driver executable links beyond SMCore: only LVM drivers load liblvm2cmd,
/// only RBDSR loads librbd and librados (each with dlopen, when first needed).
func driverDependencies(_ driver: String) -> [Target.Dependency] {
    if lvmDrivers.contains(driver) { return ["SMLVM"] }
    if driver == "RBDSR" { return ["SMRBD"] }
    return ["SMCore"]
}

/// The drivers that link only SMCore's libraries (libxml2, libblkid), and `sm-drivers` that holds
/// them all, are fully static in release builds: no dynamic loader, no symbol lookups, no
/// relocations of a dozen shared libraries at every start (Docs/performance.md measures it); lld
/// links them, their code in the order of `orderFlags`.
/// Debian ships the static archives of libxml2 and its dependencies (ICU, liblzma, zlib) and of
/// libblkid. The LVM drivers load liblvm2cmd (which has no archive), and RBDSR librbd and
/// librados (neither has one), with dlopen, which needs the dynamic loader: they are dynamic
/// executables with those same archives, libstdc++ and libgcc's unwinder linked in
/// (Scripts/ld-static-dependencies: lld, their code in the order of `orderFlags` too; it
/// also drops the standard library's export of every symbol and its `$ORIGIN` search path) and
/// not position-independent, so that only libc and libm are loaded before `main`;
/// `sm-dynamic-drivers` holds all three for the package.
/// lock-util and sm-vhd stay dynamic in their own builds: each static copy would carry ICU's 30 MB
/// of data (the package installs both as links to sm-drivers, which answers as either by that name).
func linkage(_ product: String) -> [LinkerSetting] {
    if dlopenDrivers.contains(product) || product == "sm-dynamic-drivers" {
        let linker = Context.packageDirectory + "/Scripts/ld-static-dependencies"
        return [.unsafeFlags(["-use-ld=\(linker)", "-Xclang-linker", "-no-pie"] + orderFlags, .when(configuration: .release))]
    }
    let archives = ["icuuc", "icudata", "lzma", "z", "stdc++", "m"]
    return [.unsafeFlags(["-static-executable", "-use-ld=lld"] + archives.map { "-l\($0)" } + orderFlags, .when(configuration: .release))]
}

/// lld's flags that put the code in the order of Scripts/link-order.txt first (the static
/// executables, and the dynamic ones through Scripts/ld-static-dependencies): the functions that
/// a driver's start-up and its common verbs run (collected with valgrind by Scripts/link-order.sh)
/// sit next to each other, so that a call faults in a few dozen pages of code instead of one here
/// and one there across 9 MB (FileSR --help 142 → 114 page faults, vdi_delete 212 → 157;
/// Docs/performance.md). lld orders by symbol; the standard library's archive has a section per
/// function, and so do our modules in release builds (`-function-sections`, `swiftFlags`). A
/// function missing from the list (new or renamed) is placed as usual: a stale list costs speed,
/// never correctness.
let orderFlags = [
    "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Scripts/link-order.txt",
    "-Xlinker", "--no-warn-symbol-ordering"
]

/// Our modules reach the metadata of a generic type (`[String: String]`, `Set<CanonicalUUID>`, a
/// `Result`) through its accessor, with the conformances it needs passed in, instead of through
/// its mangled name: a name is demangled at run time on first use and every conformance in it
/// looked up by a scan of all the executable's conformance records (a vdi_delete made 8 such
/// scans and 62 demanglings; Docs/performance.md). The code is a little larger.
let directMetadata: [SwiftSetting] = [.unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"])]

/// Our modules' settings: `directMetadata`, and in release builds a section per function, so that
/// the linker can order them (`orderFlags`).
let swiftFlags = directMetadata + [.unsafeFlags(["-Xfrontend", "-function-sections"], .when(configuration: .release))]

let package = Package(
    name: "StorageManager",
    products: [
        .library(name: "SMCore", targets: ["SMCore"]),
        .executable(name: "lock-util", targets: ["lock-util"]),
        .executable(name: "sm-vhd", targets: ["sm-vhd"]),
        .executable(name: "sm-drivers", targets: ["sm-drivers"]),
        .executable(name: "sm-dynamic-drivers", targets: ["sm-dynamic-drivers"])
    ] + drivers.map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2", traits: [])
    ],
    targets: [
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(name: "CBlkid", pkgConfig: "blkid", providers: [.apt(["libblkid-dev"])]),
        .systemLibrary(name: "CLibUUID", pkgConfig: "uuid", providers: [.apt(["uuid-dev"])]),
        .systemLibrary(name: "CNettle", pkgConfig: "nettle", providers: [.apt(["nettle-dev"])]),
        .systemLibrary(name: "CLVM2Cmd", providers: [.apt(["liblvm2-dev"])]),
        // librbd's and librados' declarations and a table of their functions filled with dlopen
        // (Sources/CRBD/include/CRBD.h); needs librbd-dev and librados-dev, links neither.
        .target(name: "CRBD"),
        .target(
            name: "SMCore",
            dependencies: [
                "CLibXML2", "CBlkid", "CLibUUID", "CNettle",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Subprocess", package: "swift-subprocess")
            ],
            swiftSettings: swiftFlags
        ),
        // LVM lives in its own module so that only LVM drivers link liblvm2cmd (and its ~20
        // shared libraries): a FileSR call must not pay for loading them at start-up.
        .target(
            name: "SMLVM",
            dependencies: ["SMCore", "CLVM2Cmd"],
            swiftSettings: swiftFlags
        ),
        // Ceph's client libraries (librbd, librados and their dependencies) likewise get a module
        // of their own, loaded only by RBDSR.
        .target(
            name: "SMRBD",
            dependencies: ["SMCore", "CRBD"],
            swiftSettings: swiftFlags
        ),
        // lock-util's command line, a module so that sm-drivers can answer as lock-util too.
        .target(
            name: "LockUtility",
            dependencies: [
                "SMCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ],
            swiftSettings: swiftFlags
        ),
        .executableTarget(name: "lock-util", dependencies: ["LockUtility"], swiftSettings: swiftFlags),
        // sm-vhd's command line, a module for the same reason.
        .target(
            name: "VHDCommand",
            dependencies: [
                "SMCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ],
            swiftSettings: swiftFlags
        ),
        .executableTarget(name: "sm-vhd", dependencies: ["VHDCommand"], swiftSettings: swiftFlags),
        .executableTarget(
            name: "sm-drivers", dependencies: ["SMCore", "LockUtility", "VHDCommand"], swiftSettings: swiftFlags,
            linkerSettings: linkage("sm-drivers")),
        .executableTarget(
            name: "sm-dynamic-drivers", dependencies: ["SMCore", "SMLVM", "SMRBD"], swiftSettings: swiftFlags,
            linkerSettings: linkage("sm-dynamic-drivers")),
        .testTarget(
            name: "SMCoreTests",
            dependencies: ["SMCore"]
        ),
        .testTarget(
            name: "SMLVMTests",
            dependencies: ["SMCore", "SMLVM"]
        ),
        .testTarget(
            name: "DriverTests",
            dependencies: ["SMCore", "SMLVM"]
        )
    ]
        + drivers.map {
            .executableTarget(name: $0, dependencies: driverDependencies($0), swiftSettings: swiftFlags, linkerSettings: linkage($0))
        }
)
