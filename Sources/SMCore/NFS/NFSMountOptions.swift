/// The mount options of an NFS SR: what the dconf may choose (`nfsversion`, `proto`, `timeo`,
/// `retrans`, `soft`/`hard`) and what it may not (attribute caching, retry, nosuid ...), rendered
/// for `mount -o`. Every value is checked here, strictly; nothing from the dconf reaches the
/// command line except through the fixed spellings below. Docs/NFSSR.md explains each choice.
public struct NFSMountOptions: Sendable, Equatable {
    /// The dconf keys this type reads.
    public static let keys = ["nfsversion", "proto", "timeo", "retrans", "soft", "hard"]

    public enum Version: String, Sendable, CaseIterable {
        case v3 = "3"
        /// NFSv4 at the highest minor version both ends support.
        case v4 = "4"
        // The minor versions as nfs(5) spells them (vers=4.0).
        // swift-format-ignore: AlwaysUseLowerCamelCase
        case v4_0 = "4.0"
        // swift-format-ignore: AlwaysUseLowerCamelCase
        case v4_1 = "4.1"
        // swift-format-ignore: AlwaysUseLowerCamelCase
        case v4_2 = "4.2"
    }

    public enum Transport: String, Sendable, CaseIterable {
        /// TCP over the server address's family (IPv6 for an IPv6 literal).
        case tcp
        /// TCP over IPv6, for a server named by a host name that has IPv6 addresses only.
        case tcp6
    }

    public static let timeoutRange = 1...6000
    public static let retransmissionRange = 0...100

    public var version: Version = .v3
    public var transport: Transport = .tcp
    /// RPC timeout in tenths of a second (`timeo`).
    public var timeout = 100
    /// Retransmissions before a soft mount gives up, or a hard one logs "not responding" (`retrans`).
    public var retransmissions = 3
    /// `soft` (a call fails with EIO once the retries are spent) or `hard` (it waits for the server).
    public var soft = true

    /// Options that the dconf cannot change:
    /// - `actimeo=0`: no attribute caching for files or directories, so a host sees at once the
    ///   lock files, VHD files and size changes that another host made (the persistent lock
    ///   protocol reads other hosts' files and their times); writes stay asynchronous (unlike
    ///   `noac`), and the lock protocol fsyncs what it writes;
    /// - `retry=0`: mount(8) tries once instead of retrying for two minutes, so that an attach
    ///   against a server that is down answers promptly and the caller decides when to retry;
    /// - `nosuid,nodev,noexec`: an SR holds disk images, never programs or device nodes.
    public static let fixedOptions = ["actimeo=0", "retry=0", "nosuid", "nodev", "noexec"]

    public init() {}

    /// Reads the keys from the dconf; EINVAL naming the key for any value outside its shape.
    public init(configuration: DeviceConfiguration, server: NFSExport.Server) throws(StorageError) {
        if let text = configuration["nfsversion"] {
            guard let version = Version(rawValue: text) else {
                throw .invalid(
                    "dconf nfsversion '\(ArgumentParsing.printable(text))' must be one of "
                        + Version.allCases.map(\.rawValue).joinedText(separator: ", "))
            }
            self.version = version
        }
        if let text = configuration["proto"] {
            guard let transport = Transport(rawValue: text) else {
                throw .invalid(
                    "dconf proto '\(ArgumentParsing.printable(text))' must be tcp or tcp6 "
                        + "(NFS over UDP is not offered: NFSv4 needs TCP and Debian kernels are built without it)")
            }
            if transport == .tcp6, case .ipv4 = server {
                throw .invalid("dconf proto tcp6 cannot reach the IPv4 address \(server.sourceForm); use tcp")
            }
            self.transport = transport
        }
        if let text = configuration["timeo"] {
            timeout = try Self.number(text, key: "timeo", range: Self.timeoutRange, unit: "tenths of a second")
        }
        if let text = configuration["retrans"] {
            retransmissions = try Self.number(text, key: "retrans", range: Self.retransmissionRange, unit: "retransmissions")
        }
        let soft = try Self.boolean(configuration, key: "soft")
        let hard = try Self.boolean(configuration, key: "hard")
        switch (soft, hard) {
        case (nil, nil): break
        case (let value?, nil): self.soft = value
        case (nil, let value?): self.soft = !value
        case (let softValue?, let hardValue?):
            guard softValue != hardValue else {
                throw .invalid("dconf soft and hard contradict each other (soft=\(softValue), hard=\(hardValue)); give one of them")
            }
            self.soft = softValue
        }
        if case .ipv6 = server { transport = .tcp6 }
    }

    /// How long one call on a soft mount waits for a server that does not answer before it fails
    /// with EIO, in seconds: TCP retries back off linearly, timeo, 2 × timeo ... (retrans + 1) ×
    /// timeo, so timeo × (retrans + 1)(retrans + 2) / 2 (100 s by default; 3 s for timeo=10,
    /// retrans=1). Nil for a hard mount, which waits for the server.
    public var softTimeoutSeconds: Double? {
        guard soft else { return nil }
        return Double(timeout) / 10 * Double((retransmissions + 1) * (retransmissions + 2)) / 2
    }

    /// The argument of `mount -o`, one option an element.
    public var arguments: [String] {
        [
            "vers=\(version.rawValue)", "proto=\(transport.rawValue)", "timeo=\(timeout)",
            "retrans=\(retransmissions)", soft ? "soft" : "hard"
        ] + Self.fixedOptions
    }

    /// Decimal digits only (no sign, no hex, no exponent), within `range`.
    static func number(_ text: String, key: String, range: ClosedRange<Int>, unit: String) throws(StorageError) -> Int {
        guard let value = ArgumentParsing.boundedDecimal(text, in: range) else {
            throw .invalid(
                "dconf \(key) '\(ArgumentParsing.printable(text))' must be a whole number of \(unit) "
                    + "from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// `true`/`false` (any case, or 1/0, yes/no); an empty element is EINVAL rather than false.
    static func boolean(_ configuration: DeviceConfiguration, key: String) throws(StorageError) -> Bool? {
        guard let text = configuration[key] else { return nil }
        guard !text.isEmpty else { throw .invalid("dconf \(key) must be true or false, got an empty value") }
        return try configuration.flag(key)
    }
}
