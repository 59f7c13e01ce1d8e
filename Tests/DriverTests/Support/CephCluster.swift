import Foundation
import Testing

/// The real single-node Ceph cluster the RBDSR tests share (Tests/ceph/cluster.sh: one mon, one
/// bluestore OSD on a sparse file, cephx, no mgr, pool `sm`, client `client.smtest` with
/// `profile rbd`), brought up in a temporary directory on first use and stopped when the test
/// process exits (only the two daemons it started, by pid).
final class CephCluster: @unchecked Sendable {
    static let shared: Result<CephCluster, any Error> = Result { try CephCluster() }
    /// The running cluster's directory, for the exit handler (which must not start one).
    nonisolated(unsafe) private static var started: String?

    static var script: String { Product.packageRoot.appendingPathComponent("Tests/ceph/cluster.sh").path }
    static var dataHelper: String { Product.packageRoot.appendingPathComponent("Tests/ceph/rbd-data.py").path }

    let directory: String
    let port: String
    /// client.smtest's secret (the tests check that it never leaks).
    let key: String
    /// Seconds the bring-up took.
    let startSeconds: Double

    var configuration: String { "\(directory)/ceph.conf" }
    var keyring: String { "\(directory)/smtest.keyring" }
    var monitor: String { "127.0.0.1:\(port)" }

    private init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sm-ceph-\(UUID().uuidString.prefix(8))").path
        let start = Date()
        // system(3), not Foundation's Process: the script leaves two daemons running in its
        // process group, and Process then never noticed the script's own exit (a hang seen here).
        let status = Self.shell("\(Self.script) up \(directory) >\(directory).log 2>&1")
        guard status == 0 else {
            let log = (try? String(contentsOfFile: "\(directory).log", encoding: .utf8)) ?? ""
            _ = Self.shell("\(Self.script) down \(directory) >/dev/null 2>&1")
            throw CephClusterError.bringUp("cluster.sh up: status \(status): \(log)")
        }
        try? FileManager.default.removeItem(atPath: "\(directory).log")
        startSeconds = Date().timeIntervalSince(start)
        Self.started = directory
        atexit {
            if let directory = CephCluster.started { _ = CephCluster.shell("\(CephCluster.script) down \(directory) >/dev/null 2>&1") }
        }
        let environment = try String(contentsOfFile: "\(directory)/env", encoding: .utf8)
        var values: [String: String] = [:]
        for line in environment.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        port = values["PORT"] ?? ""
        key = values["KEY"] ?? ""
    }

    static func get() throws -> CephCluster { try shared.get() }

    /// Runs a shell command line with system(3) and returns its exit status.
    static func shell(_ command: String) -> Int32 {
        let status = system(command)
        return status == -1 ? -1 : (status >> 8) & 0xFF
    }

    /// `ceph` as client.admin.
    @discardableResult
    func ceph(_ arguments: [String]) throws -> ProductResult {
        try Product.runProgram("ceph", ["-c", configuration] + arguments)
    }

    /// `rbd` as client.admin (the oracle: the driver itself never runs it).
    @discardableResult
    func rbd(_ arguments: [String]) throws -> ProductResult {
        try Product.runProgram("rbd", ["-c", configuration] + arguments)
    }

    /// `rbd --format json ...`, decoded.
    func rbdJSON(_ arguments: [String]) throws -> Any {
        let result = try rbd(arguments + ["--format", "json"])
        guard result.status == 0 else { throw CephClusterError.command("rbd \(arguments): \(result)") }
        return try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8))
    }

    /// Fills `length` bytes at `offset` of `image` with `value`, through librbd (python3-rbd).
    func write(namespace: String, image: String, offset: Int, value: UInt8, length: Int) throws {
        let result = try Product.runProgram(
            "/usr/bin/python3",
            [
                Self.dataHelper, configuration, "sm", namespace, image,
                "write", String(offset), String(value), String(length)
            ])
        guard result.status == 0 else { throw CephClusterError.command("write \(image): \(result)") }
    }

    /// The SHA-256 of `length` bytes at `offset` of `image` (`image@snapshot` for a snapshot), through librbd.
    func digest(namespace: String, image: String, offset: Int, length: Int) throws -> String {
        let result = try Product.runProgram(
            "/usr/bin/python3",
            [
                Self.dataHelper, configuration, "sm", namespace, image,
                "read", String(offset), String(length)
            ])
        guard result.status == 0 else { throw CephClusterError.command("read \(image): \(result)") }
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// What `digest` answers for `length` bytes of `value`.
    static func digest(of value: UInt8, length: Int) throws -> String {
        let result = try Product.runProgram(
            "/usr/bin/python3",
            [
                "-c",
                "import hashlib; print(hashlib.sha256(bytes([\(value)]) * \(length)).hexdigest())"
            ])
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

enum CephClusterError: Error {
    case bringUp(String)
    case command(String)
}

/// One RBDSR test's SR on the shared cluster, with its own host paths.
final class RBDSRFixture {
    let cluster: CephCluster
    let scratch: Scratch
    let sr = newUUID()
    /// dconf as XML; `key` passes the secret in the dconf (then it goes through stdin: `@-`).
    var dconf: String
    var viaStandardInput = false

    init(secretInDconf: Bool = false) throws {
        cluster = try CephCluster.get()
        scratch = try Scratch("rbdsr")
        let credential = secretInDconf ? "<key>\(cluster.key)</key>" : "<keyring>\(cluster.keyring)</keyring>"
        dconf = "<dconf><monitors>\(cluster.monitor)</monitors><pool>sm</pool><user>smtest</user>\(credential)</dconf>"
        viaStandardInput = secretInDconf
    }

    func call(_ verb: String, _ arguments: [String], options: [String] = []) throws -> ProductResult {
        if viaStandardInput {
            return try scratch.run("RBDSR", options + ["@-", verb] + arguments, input: Data(dconf.utf8))
        }
        return try scratch.run("RBDSR", options + [dconf, verb] + arguments)
    }

    @discardableResult
    func ok(_ verb: String, _ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> ProductResult {
        let result = try call(verb, arguments)
        #expect(result.status == 0, "\(verb) \(arguments): \(result)", sourceLocation: sourceLocation)
        #expect(result.standardError.isEmpty, "\(verb) wrote to stderr: \(result.standardError)", sourceLocation: sourceLocation)
        return result
    }

    /// Expects errno `status`, its name on the only stderr line, nothing on stdout.
    @discardableResult
    func fails(
        _ status: Int32, _ name: String, _ verb: String, _ arguments: String...,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> ProductResult {
        let result = try call(verb, arguments)
        #expect(result.status == status, "\(verb) \(arguments): \(result)", sourceLocation: sourceLocation)
        #expect(result.reason.hasPrefix("\(name): "), "\(verb): \(result.reason)", sourceLocation: sourceLocation)
        #expect(
            result.standardError.split(separator: "\n").count == 1, "\(verb): \(result.standardError)",
            sourceLocation: sourceLocation)
        #expect(result.standardOutput.isEmpty, sourceLocation: sourceLocation)
        return result
    }

    func createAndAttach() throws {
        try ok("sr_create", sr, "0")
        try ok("sr_attach", sr)
    }

    /// A new 64 MiB VDI whose first `length` bytes are `value`, written through librbd.
    func createVDI(filledWith value: UInt8, length: Int) throws -> String {
        let vdi = newUUID()
        try ok("vdi_create", sr, vdi, "67108864")
        try cluster.write(namespace: sr, image: vdi, offset: 0, value: value, length: length)
        return vdi
    }

    /// sr_scan's VDIs by UUID.
    func scan(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: [String: String]] {
        let scan = try ResultXML(try ok("sr_scan", sr, sourceLocation: sourceLocation).standardOutput)
        var result: [String: [String: String]] = [:]
        for vdi in scan.vdis { result[vdi.fields["uuid"] ?? ""] = vdi.fields }
        return result
    }

    /// `rbd ls -l` of the SR's namespace: image or image@snapshot names.
    func rbdNames() throws -> Set<String> {
        let entries = try cluster.rbdJSON(["ls", "-l", "--namespace", sr, "sm"]) as? [[String: Any]] ?? []
        return Set(
            entries.map { entry in
                let image = entry["image"] as? String ?? ""
                return (entry["snapshot"] as? String).map { "\(image)@\($0)" } ?? image
            })
    }

    /// Removes what a failed test left in the SR's namespace (as client.admin), then the namespace.
    func tearDown() {
        let names = (try? rbdNames()) ?? []
        for name in names.sorted(by: { $0.count > $1.count }) where name.contains("@") {
            _ = try? cluster.rbd(["snap", "unprotect", "--namespace", sr, "sm/\(name)"])
        }
        for _ in 0..<3 {
            for name in names where !name.contains("@") {
                _ = try? cluster.rbd(["snap", "purge", "--namespace", sr, "sm/\(name)"])
                _ = try? cluster.rbd(["rm", "--no-progress", "--namespace", sr, "sm/\(name)"])
            }
        }
        _ = try? Product.runProgram("rados", ["-c", cluster.configuration, "-p", "sm", "-N", sr, "rm", "sm-sr"])
        _ = try? cluster.rbd(["namespace", "remove", "sm/\(sr)"])
    }
}
