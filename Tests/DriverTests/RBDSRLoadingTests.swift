import Foundation
import Testing

/// RBDSR loads librados and librbd with dlopen when a verb first reaches for the cluster, not at
/// start (Sources/CRBD): `--help` and a refused argument load neither; a verb that connects loads
/// both. Read from the dynamic loader's own account (`LD_DEBUG=files`, written to files). No
/// cluster is needed: the monitor is a port where nothing listens.
@Suite struct RBDSRLoadingTests {
    /// The libraries the loader reported loading for one RBDSR run, and its result.
    private func loaded(_ scratch: Scratch, _ name: String, _ arguments: [String]) throws -> (ProductResult, String) {
        let prefix = scratch.path("ld-\(name)")
        let environment = scratch.environment.merging(["LD_DEBUG": "files", "LD_DEBUG_OUTPUT": prefix]) { $1 }
        let result = try Product.run("RBDSR", arguments, environment: environment)
        let files = try FileManager.default.contentsOfDirectory(atPath: scratch.root.path).filter { $0.hasPrefix("ld-\(name).") }
        #expect(!files.isEmpty, "the loader wrote no account for \(name)")
        let account = try files.map { try String(contentsOfFile: scratch.path($0), encoding: .utf8) }.joined()
        return (result, account)
    }

    @Test(.timeLimit(.minutes(1))) func cephLibrariesLoadOnlyForTheCluster() throws {
        let scratch = try Scratch("sm-rbd-loading")
        let (help, helpAccount) = try loaded(scratch, "help", ["--help"])
        #expect(help.status == 0)
        #expect(helpAccount.contains("libc.so.6"), "the account lists what is loaded: \(helpAccount)")
        #expect(!helpAccount.contains("librbd") && !helpAccount.contains("librados"), "\(helpAccount)")

        let (refused, refusedAccount) = try loaded(scratch, "refused", ["<dconf/>", "sr_attach", "not-a-uuid"])
        #expect(refused.status == 22, "\(refused)")
        #expect(!refusedAccount.contains("librbd") && !refusedAccount.contains("librados"))

        // A well-formed dconf whose monitor does not answer: the verb loads the libraries, then
        // fails to connect within its one-second timeout.
        let keyring = scratch.path("keyring")
        let made = try Product.runProgram("ceph-authtool", ["--create-keyring", keyring, "--gen-key", "-n", "client.smtest"])
        #expect(made.status == 0, "\(made)")
        let dconf =
            "<dconf><monitors>127.0.0.1:1</monitors><pool>sm</pool><user>smtest</user><keyring>\(keyring)</keyring>"
            + "<timeout>1</timeout></dconf>"
        let (connect, connectAccount) = try loaded(scratch, "connect", [dconf, "sr_attach", newUUID()])
        #expect(connect.status == 19, "\(connect)")
        #expect(connectAccount.contains("librados.so.2") && connectAccount.contains("librbd.so.1"), "\(connectAccount)")
    }
}
