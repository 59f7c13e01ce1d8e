import Foundation
import Testing

/// The result of running one built executable.
struct ProductResult: CustomStringConvertible {
    var status: Int32
    var standardOutput: String
    var standardError: String

    /// The last stderr line, `NAME: reason` on failure.
    var reason: String { standardError.split(separator: "\n").last.map(String.init) ?? "" }

    var description: String { "status \(status), stdout \(standardOutput.debugDescription), stderr \(standardError.debugDescription)" }
}

/// Locates and runs the products `swift build` made. `SM_BIN_DIR` overrides the directory
/// (default `<package>/.build/debug`).
enum Product {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binaryDirectory: URL {
        if let override = ProcessInfo.processInfo.environment["SM_BIN_DIR"] { return URL(fileURLWithPath: override) }
        return packageRoot.appendingPathComponent(".build/debug")
    }

    static func path(_ name: String) -> String { binaryDirectory.appendingPathComponent(name).path }

    /// Runs `name` with `arguments` and the extra environment; waits and collects output.
    @discardableResult
    static func run(
        _ name: String, _ arguments: [String], environment: [String: String] = [:],
        input: Data? = nil
    ) throws -> ProductResult {
        try runProgram(path(name), arguments, environment: environment, input: input)
    }

    /// Runs any program (a path, or a name looked up in PATH).
    @discardableResult
    static func runProgram(
        _ program: String, _ arguments: [String], environment: [String: String] = [:],
        input: Data? = nil
    ) throws -> ProductResult {
        let process = Process()
        if program.hasPrefix("/") {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [program] + arguments
        }
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        let output = Pipe()
        let error = Pipe()
        let standardInput = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = standardInput
        // A child that exits without reading its stdin must not kill the test run with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        try process.run()
        if let input { try? standardInput.fileHandleForWriting.write(contentsOf: input) }
        try? standardInput.fileHandleForWriting.close()
        // Read both pipes concurrently so that neither fills up.
        final class Collected: @unchecked Sendable { var data = Data() }
        let collected = Collected()
        let done = DispatchSemaphore(value: 0)
        let errorHandle = error.fileHandleForReading
        DispatchQueue.global().async {
            collected.data = errorHandle.readDataToEndOfFile()
            done.signal()
        }
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        let errorData = collected.data
        process.waitUntilExit()
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return ProductResult(
            status: status, standardOutput: String(decoding: outputData, as: UTF8.self),
            standardError: String(decoding: errorData, as: UTF8.self))
    }

    /// Runs a shell command line (for setup such as losetup and mkfs); fails the test when it fails.
    @discardableResult
    static func shell(_ command: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try runProgram("/bin/sh", ["-c", command])
        #expect(result.status == 0, "\(command): \(result)", sourceLocation: sourceLocation)
        return result.standardOutput
    }
}

/// A scratch area for one test: a temporary directory and host paths (run, lock, log, mount)
/// inside it, removed at the end.
final class Scratch {
    let root: URL
    var environment: [String: String]

    init(_ name: String = "sm-test") throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for directory in ["run", "lock", "mount", "data"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        environment = [
            "SM_RUN_DIR": root.appendingPathComponent("run").path,
            "SM_LOCK_DIR": root.appendingPathComponent("lock").path,
            "SM_LOG_FILE": root.appendingPathComponent("SMlog").path,
            "SM_MOUNT_DIR": root.appendingPathComponent("mount").path,
            "SM_CONFIG": root.appendingPathComponent("sm.conf").path
        ]
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// Runs a driver with this scratch area's host paths.
    @discardableResult
    func run(_ driver: String, _ arguments: [String], input: Data? = nil) throws -> ProductResult {
        try Product.run(driver, arguments, environment: environment, input: input)
    }

    /// Every file below `relative`, with size and modification time, to prove "nothing changed".
    func snapshot(_ relative: String = "data") -> [String: String] {
        var result: [String: String] = [:]
        let base = root.appendingPathComponent(relative)
        guard let enumerator = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil) else { return result }
        for case let url as URL in enumerator {
            let attributes = (try? FileManager.default.attributesOfItem(atPath: url.path)) ?? [:]
            result[url.path] = "\(attributes[.size] ?? 0) \(attributes[.modificationDate] ?? "")"
        }
        return result
    }
}

/// A fresh random UUID string, lower-case.
func newUUID() -> String { UUID().uuidString.lowercased() }
