import CLibUUID
import CNettle

/// SHA-1 (FIPS 180-4) through nettle, only for short names derived from identifiers (iSCSI
/// interface, session and lock names): a stable, one-way mapping, not a security property.
public enum SHA1 {
    /// The 20-byte digest of `message`.
    public static func digest(_ message: [UInt8]) -> [UInt8] {
        var context = sha1_ctx()
        var digest = [UInt8](repeating: 0, count: Int(SHA1_DIGEST_SIZE))
        nettle_sha1_init(&context)
        message.withUnsafeBufferPointer { nettle_sha1_update(&context, $0.count, $0.baseAddress) }
        nettle_sha1_digest(&context, digest.count, &digest)
        return digest
    }
}

extension CanonicalUUID {
    /// The name-based UUID (version 5, SHA-1) of `name` in `namespace` (RFC 9562 section 5.5),
    /// by libuuid's `uuid_generate_sha1`.
    public static func nameBased(namespace: CanonicalUUID, name: String) -> CanonicalUUID {
        var bytes = [UInt8](repeating: 0, count: 16)
        let namespaceBytes = namespace.bytes
        let nameBytes = Array(name.utf8)
        nameBytes.withUnsafeBufferPointer { text in
            text.withMemoryRebound(to: CChar.self) { uuid_generate_sha1(&bytes, namespaceBytes, $0.baseAddress, $0.count) }
        }
        return CanonicalUUID(bytes: bytes)
    }
}
