/// One record of a sendtargets discovery: where a target listens (`address:port`) and its
/// portal group tag. iscsiadm names node records, sessions and /dev/disk/by-path links with it.
public struct ISCSIPortal: Sendable, Equatable {
    public let address: String
    public let port: UInt16
    public let groupTag: String

    public init(address: String, port: UInt16, groupTag: String) {
        self.address = address
        self.port = port
        self.groupTag = groupTag
    }

    /// `address:port` as iscsiadm's `-p` and the by-path links write it (IPv6 in brackets).
    public var text: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }

    /// Parses one line of `iscsiadm -m discovery` output, `127.0.0.1:3260,1 iqn.2007-10.x:y`;
    /// nil for anything else.
    static func parseDiscovery(_ line: String) -> (portal: ISCSIPortal, iqn: String)? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 2, let comma = fields[0].lastIndex(of: ",") else { return nil }
        let endpoint = fields[0][..<comma]
        let groupTag = String(fields[0][fields[0].index(after: comma)...])
        guard let colon = endpoint.lastIndex(of: ":"), let port = UInt16(endpoint[endpoint.index(after: colon)...]),
            !groupTag.isEmpty, groupTag.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        var address = String(endpoint[..<colon])
        if address.hasPrefix("[") && address.hasSuffix("]") { address = String(address.dropFirst().dropLast()) }
        guard !address.isEmpty, !address.contains("/") else { return nil }
        return (ISCSIPortal(address: address, port: port, groupTag: groupTag), String(fields[1]))
    }
}
