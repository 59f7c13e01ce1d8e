#if canImport(Glibc)
    import Glibc
#endif

/// An NFS export as a dconf names it: `server` and `serverpath`.
///
/// Both values end up in mount(8)'s argument list as `server:path`, so they are held to shapes
/// that cannot carry anything else: the server is a DNS name, an IPv4 literal or an IPv6 literal;
/// the path is absolute and made of a conservative set of characters (no comma, space, colon or
/// control character that could smuggle in a mount option or a second source). Anything else is
/// EINVAL before a file is touched.
public struct NFSExport: Sendable, Equatable {
    /// The longest `serverpath` accepted (the NFSv3 MOUNT protocol's MNTPATHLEN).
    public static let maximumPathLength = 1024

    public enum Server: Sendable, Equatable {
        /// A DNS name (lower-cased).
        case name(String)
        /// A dotted-quad IPv4 address.
        case ipv4(String)
        /// An IPv6 address, without brackets.
        case ipv6(String)

        /// As it appears in a mount source: IPv6 literals in brackets.
        public var sourceForm: String {
            switch self {
            case .name(let text), .ipv4(let text): return text
            case .ipv6(let text): return "[\(text)]"
            }
        }
    }

    public let server: Server
    /// Absolute, without repeated or trailing slashes (`/` alone for the server's root).
    public let path: String

    public init(server: String, path: String) throws(StorageError) {
        self.server = try Self.parseServer(server)
        self.path = try Self.parsePath(path)
    }

    /// `server:/path`, what mount(8) is given for the export itself.
    public var source: String { "\(server.sourceForm):\(path)" }

    /// `server:/path/<component>`, for a directory inside the export (an SR).
    public func source(appending component: String) -> String {
        "\(server.sourceForm):\(path == "/" ? "" : path)/\(component)"
    }

    // MARK: Validation

    /// A DNS name (RFC 1123 labels; the last label not all digits, so that it cannot be read as
    /// a shortened IPv4 address), an IPv4 literal, or an IPv6 literal with or without brackets
    /// (no zone index).
    static func parseServer(_ text: String) throws(StorageError) -> Server {
        let shown = ArgumentParsing.printable(text)
        var candidate = text
        if candidate.hasPrefix("[") {
            guard candidate.hasSuffix("]"), candidate.count > 2 else {
                throw .invalid("dconf server '\(shown)' has an unclosed '[': write an IPv6 address as [2001:db8::1] or 2001:db8::1")
            }
            candidate = String(candidate.dropFirst().dropLast())
            guard isIPv6(candidate) else {
                throw .invalid("dconf server '\(shown)' is not an IPv6 address in brackets")
            }
            return .ipv6(candidate.lowercased())
        }
        if candidate.contains(":") {
            guard isIPv6(candidate) else {
                throw .invalid(
                    "dconf server '\(shown)' is not a host name or IP address (a ':' is only allowed in an IPv6 address; "
                        + "the export's path goes in serverpath)")
            }
            return .ipv6(candidate.lowercased())
        }
        if isIPv4(candidate) { return .ipv4(candidate) }
        if let problem = hostNameProblem(candidate) {
            throw .invalid("dconf server '\(shown)' is not a host name or IP address: \(problem)")
        }
        return .name(candidate.lowercased())
    }

    static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }

    static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return !text.contains("%") && inet_pton(AF_INET6, text, &address) == 1
    }

    /// Why `text` is not an acceptable DNS name, or nil when it is one.
    static func hostNameProblem(_ text: String) -> String? {
        guard !text.isEmpty else { return "it is empty" }
        guard text.utf8.count <= 253 else { return "longer than 253 characters" }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty else { return "it has an empty label (two dots, or a dot at an end)" }
            guard label.utf8.count <= 63 else { return "a label is longer than 63 characters" }
            guard label.utf8.allSatisfy({ isLetterOrDigit($0) || $0 == UInt8(ascii: "-") }) else {
                return "only letters, digits, '-' and '.' are allowed"
            }
            guard label.first != "-", label.last != "-" else { return "a label starts or ends with '-'" }
        }
        if let last = labels.last, last.utf8.allSatisfy(isDigit) {
            return "it looks like an incomplete IPv4 address"
        }
        return nil
    }

    /// An absolute path of letters, digits and `/ . _ - + ~ @ =`; repeated and trailing slashes
    /// are dropped; `.` and `..` components are refused.
    static func parsePath(_ text: String) throws(StorageError) -> String {
        let shown = ArgumentParsing.printable(text)
        guard text.hasPrefix("/") else {
            throw .invalid("dconf serverpath '\(shown)' must be an absolute path on the server, such as /export/sm")
        }
        guard text.utf8.count <= maximumPathLength else {
            throw .invalid("dconf serverpath is longer than \(maximumPathLength) bytes")
        }
        let allowedPunctuation = Set("/._-+~@=".utf8)
        guard text.utf8.allSatisfy({ isLetterOrDigit($0) || allowedPunctuation.contains($0) }) else {
            throw .invalid(
                "dconf serverpath '\(shown)' may only hold letters, digits and / . _ - + ~ @ = "
                    + "(no spaces, commas or colons)")
        }
        let components = text.split(separator: "/")
        guard !components.contains(where: { $0 == "." || $0 == ".." }) else {
            throw .invalid("dconf serverpath '\(shown)' must not contain '.' or '..' components")
        }
        return "/" + components.joined(separator: "/")
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }
}
