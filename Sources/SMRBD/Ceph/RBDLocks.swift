import CRBD
import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// The persistent VDI lock (vdi_lock/vdi_unlock): a Ceph object-class exclusive lock
/// (`cls_lock`, what `rbd lock add` uses) on the header object of the image that holds the VDI,
/// named `sm.vdi-lock.<VDI-UUID>`, with the caller's user string as the cookie.
///
/// Not `rbd_lock_exclusive`: that takes the lock named `rbd_lock`, the same one the
/// exclusive-lock feature (and krbd on its first write) acquires, so a VDI locked that way could
/// not be written through its own attach. A lock of another name never meets it. The lock lives
/// in the header object's xattrs on the OSDs: it survives the process, the host and a cluster
/// restart until it is released or broken, and every host sees it.
struct RBDLocks {
    let session: CephSession
    let object: String
    let name: String

    init(session: CephSession, headerObject: String, vdi: CanonicalUUID) {
        self.session = session
        object = headerObject
        name = "sm.vdi-lock.\(vdi)"
    }

    struct Holder: Equatable {
        var client: String
        var cookie: String
    }

    /// Who holds the lock (at most one: it is exclusive).
    func holders() throws(StorageError) -> [Holder] {
        var exclusive: Int32 = 0
        var tag = [CChar](repeating: 0, count: 256)
        var clients = [CChar](repeating: 0, count: 4096)
        var cookies = [CChar](repeating: 0, count: 4096)
        var addresses = [CChar](repeating: 0, count: 4096)
        var tagLength = tag.count
        var clientsLength = clients.count
        var cookiesLength = cookies.count
        var addressesLength = addresses.count
        let count = ceph.rados_list_lockers(
            session.ioContext, object, name, &exclusive, &tag, &tagLength, &clients,
            &clientsLength, &cookies, &cookiesLength, &addresses, &addressesLength)
        if count == -ENOENT { return [] }
        guard count >= 0 else { throw .ceph(Int32(count), "listing the holders of \(name)") }
        let clientNames = Self.strings(clients, length: clientsLength)
        let cookieNames = Self.strings(cookies, length: cookiesLength)
        return zip(clientNames, cookieNames).prefix(Int(count)).map { Holder(client: $0, cookie: $1) }
    }

    /// Takes the lock for `user`. Held by `user` already: success (a reassert). Held by another:
    /// ENOLCK, unless `force`, which breaks that holder's lock first.
    func lock(user: String, force: Bool) throws(StorageError) {
        // The common case first: nobody holds it (one round trip).
        let first = ceph.rados_lock_exclusive(session.ioContext, object, name, user, "SM vdi_lock", nil, 0)
        if first == 0 { return }
        guard first == -EBUSY || first == -EEXIST else { throw .ceph(first, "taking \(name)") }
        for holder in try holders() where holder.cookie != user {
            guard force else {
                throw StorageError(code: .noLocks, message: "VDI lock \(name) is held by user '\(holder.cookie)'; Force breaks it")
            }
            let code = ceph.rados_break_lock(session.ioContext, object, name, holder.client, holder.cookie)
            guard code == 0 || code == -ENOENT else { throw .ceph(code, "breaking \(name) of '\(holder.cookie)'") }
        }
        if try holders().contains(where: { $0.cookie == user }) { return }
        let code = ceph.rados_lock_exclusive(session.ioContext, object, name, user, "SM vdi_lock", nil, 0)
        switch -code {
        case 0, EEXIST: return
        case EBUSY: throw StorageError(code: .noLocks, message: "VDI lock \(name) was taken by another user meanwhile")
        default: throw .ceph(code, "taking \(name)")
        }
    }

    /// Releases `user`'s lock; success when nobody holds it; ENOLCK when another user does.
    func unlock(user: String) throws(StorageError) {
        for holder in try holders() {
            guard holder.cookie == user else {
                throw StorageError(code: .noLocks, message: "VDI lock \(name) is held by user '\(holder.cookie)', not '\(user)'")
            }
            let code = ceph.rados_break_lock(session.ioContext, object, name, holder.client, holder.cookie)
            guard code == 0 || code == -ENOENT else { throw .ceph(code, "releasing \(name)") }
        }
    }

    private static func strings(_ buffer: [CChar], length: Int) -> [String] {
        buffer.prefix(length).split(separator: 0, omittingEmptySubsequences: true).map { slice in
            String(decoding: slice.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}
