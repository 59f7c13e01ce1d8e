/// The iSCSI part of a dconf (the spec's Iscsi, Lvmoiscsi and Extoiscsi keys), validated before
/// anything is touched: every problem is EINVAL naming the key. The CHAP password is never
/// echoed, not even when it is the thing that is wrong.
public struct ISCSITarget: Sendable, Equatable {
    /// The dconf keys every iSCSI driver needs.
    public static let requiredKeys = ["target", "targetIQN"]
    /// The optional ones (the spec lists `localIQN` without "[Optional]"; without it the host's
    /// own initiator name, /etc/iscsi/initiatorname.iscsi, is used).
    public static let optionalKeys = ["localIQN", "chapuser", "chappassword", "port", "usediscoverynumber"]
    /// The iSCSI port (RFC 7143).
    public static let defaultPort: UInt16 = 3260
    /// The longest iSCSI name (RFC 7143 section 4.2.7.1).
    public static let maximumNameLength = 223
    /// The longest CHAP name or secret accepted (open-iscsi's limit is 256 bytes with the NUL).
    public static let maximumCredentialLength = 255
    /// The most LUNs one SR may name.
    public static let maximumLUNs = 32
    /// The highest LUN number accepted (SAM's flat addressing).
    public static let maximumLUN = 16383

    public struct Credentials: Sendable, Equatable {
        public let user: String
        public let password: String
    }

    /// `target`: a host name or an IPv4/IPv6 address.
    public let address: String
    public let port: UInt16
    /// `targetIQN`.
    public let iqn: String
    /// `localIQN`, when given.
    public let initiatorIQN: String?
    /// `chapuser` and `chappassword`, both or neither.
    public let chap: Credentials?
    /// `usediscoverynumber`: which of the target's records for `iqn` to log in to (0 = the first).
    public let discoveryNumber: Int?

    public init(configuration: DeviceConfiguration) throws(StorageError) {
        address = try Self.hostAddress(configuration.required("target"))
        iqn = try Self.iscsiName(configuration.required("targetIQN"), key: "targetIQN")
        initiatorIQN = try configuration["localIQN"].map { value throws(StorageError) in try Self.iscsiName(value, key: "localIQN") }
        port =
            try configuration["port"].map { value throws(StorageError) in try Self.number(value, key: "port", in: 1...65535) }
            .map { UInt16($0) } ?? Self.defaultPort
        discoveryNumber = try configuration["usediscoverynumber"].map { value throws(StorageError) in
            try Self.number(value, key: "usediscoverynumber", in: 0...999)
        }
        switch (configuration["chapuser"], configuration["chappassword"]) {
        case (nil, nil):
            chap = nil
        case (let user?, let password?):
            guard Self.isCredential(user) else {
                throw .invalid("dconf key 'chapuser' must be 1 to \(Self.maximumCredentialLength) printable characters without spaces")
            }
            guard Self.isCredential(password) else {
                throw .invalid(
                    "dconf key 'chappassword' must be 1 to \(Self.maximumCredentialLength) printable characters "
                        + "without spaces (the value is not shown)")
            }
            chap = Credentials(user: user, password: password)
        case (nil, _):
            throw .invalid("dconf key 'chappassword' is given without 'chapuser'; CHAP needs both")
        case (_, nil):
            throw .invalid("dconf key 'chapuser' is given without 'chappassword'; CHAP needs both")
        }
    }

    /// The dconf `LUNid` value: LUN numbers separated by commas (whitespace around each ignored),
    /// each named once; `single` for drivers that take exactly one.
    public static func lunNumbers(_ value: String, single: Bool) throws(StorageError) -> [Int] {
        let entries = value.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
        if single && entries.count != 1 {
            throw .invalid("dconf key 'LUNid' must name exactly one LUN, got '\(ArgumentParsing.printable(value))'")
        }
        guard entries.count <= maximumLUNs else { throw .invalid("dconf key 'LUNid' names more than \(maximumLUNs) LUNs") }
        var numbers: [Int] = []
        for entry in entries {
            let lun = try number(entry, key: "LUNid", in: 0...maximumLUN)
            guard !numbers.contains(lun) else { throw .invalid("dconf key 'LUNid' names LUN \(lun) twice") }
            numbers.append(lun)
        }
        return numbers
    }

    // MARK: Validation

    static func number(_ value: String, key: String, in range: ClosedRange<Int>) throws(StorageError) -> Int {
        guard let number = ArgumentParsing.boundedDecimal(value, in: range) else {
            throw .invalid(
                "dconf key '\(key)' must be a decimal number from \(range.lowerBound) to \(range.upperBound), "
                    + "got '\(ArgumentParsing.printable(value))'")
        }
        return number
    }

    /// A host name, IPv4 address or IPv6 address (optionally in brackets); never starts with '-'
    /// (it becomes a command-line argument). Brackets only enclose a whole IPv6 address, and a
    /// ':' only appears in one (the port is the `port` key).
    static func hostAddress(_ value: String) throws(StorageError) -> String {
        let allowed = value.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || ".-:[]".unicodeScalars.contains(scalar))
        }
        let bracketed = value.hasPrefix("[") && value.hasSuffix("]")
        let address = bracketed ? String(value.dropFirst().dropLast()) : value
        let shaped =
            !address.contains("[") && !address.contains("]")
            && (bracketed || address.contains(":") ? NFSExport.isIPv6(address) : true)
        guard allowed, shaped, value.utf8.count <= 253, let first = value.first, first != "-", first != "." else {
            throw .invalid(
                "dconf key 'target' must be a host name or IP address (IPv6 optionally in brackets; "
                    + "the port goes in 'port'), got '\(ArgumentParsing.printable(value))'")
        }
        return address
    }

    /// An iSCSI name: `iqn.`, `eui.` or `naa.` followed by letters, digits, '.', '-' and ':'.
    static func iscsiName(_ value: String, key: String) throws(StorageError) -> String {
        let lowered = value.lowercased()
        let allowed = lowered.unicodeScalars.allSatisfy { scalar in
            ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || ".-:".unicodeScalars.contains(scalar)
        }
        let prefixed = ["iqn.", "eui.", "naa."].contains { lowered.hasPrefix($0) && lowered.count > $0.count }
        guard allowed, prefixed, value.utf8.count <= maximumNameLength else {
            throw .invalid(
                "dconf key '\(key)' must be an iSCSI name such as iqn.2007-10.com.example:storage "
                    + "(letters, digits, '.', '-', ':'; at most \(maximumNameLength)), got '\(ArgumentParsing.printable(value))'")
        }
        return value
    }

    /// CHAP names and secrets go into iscsiadm's node record as `key = value` lines: printable
    /// ASCII without whitespace, so a value can never start another line.
    static func isCredential(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= maximumCredentialLength
            && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
