import Testing

@testable import SMCore

/// The accepted shapes of NFSSR's dconf values and the mount options they become.
@Suite struct NFSOptionsTests {
    func options(_ values: [String: String], server: String = "192.0.2.7") throws -> [String] {
        let export = try NFSExport(server: server, path: "/x")
        return try NFSMountOptions(configuration: DeviceConfiguration(values: values), server: export.server).arguments
    }

    /// With no options the mount is NFSv3 over TCP, soft, timeo=100, retrans=3, no attribute caching.
    @Test func defaults() throws {
        #expect(
            try options([:]) == [
                "vers=3", "proto=tcp", "timeo=100", "retrans=3", "soft",
                "actimeo=0", "retry=0", "nosuid", "nodev", "noexec"
            ])
    }

    /// Every accepted value renders as its fixed spelling; hard is the inverse of soft.
    @Test func acceptedValues() throws {
        for version in ["3", "4", "4.0", "4.1", "4.2"] {
            #expect(try options(["nfsversion": version]).first == "vers=\(version)")
        }
        #expect(try options(["timeo": "1", "retrans": "0"]).contains("timeo=1"))
        #expect(try options(["timeo": "6000", "retrans": "100"]).contains("retrans=100"))
        #expect(try options(["soft": "false"]).contains("hard"))
        #expect(try options(["hard": "true"]).contains("hard"))
        #expect(try options(["hard": "0"]).contains("soft"))
        #expect(try options(["soft": "TRUE", "hard": "false"]).contains("soft"))
        #expect(try options(["proto": "tcp6"], server: "nfs.example.com").contains("proto=tcp6"))
        #expect(try options(["proto": "tcp"], server: "[2001:db8::5]").contains("proto=tcp6"))
    }

    /// Servers and paths are normalised into one mount source.
    @Test func sources() throws {
        #expect(try NFSExport(server: "NFS-1.Example.com", path: "/export//sm/").source == "nfs-1.example.com:/export/sm")
        #expect(try NFSExport(server: "2001:DB8::5", path: "/").source(appending: "a") == "[2001:db8::5]:/a")
        #expect(try NFSExport(server: "[::1]", path: "/e").source(appending: "a") == "[::1]:/e/a")
        #expect(try NFSExport(server: "10.0.0.1", path: "/e-1/a_b.c+d~e@f=g").source == "10.0.0.1:/e-1/a_b.c+d~e@f=g")
        #expect(try NFSExport(server: "localhost", path: "/e").server == .name("localhost"))
    }
}
