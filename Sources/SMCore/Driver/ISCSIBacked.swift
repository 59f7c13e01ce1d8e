/// A driver that is an iSCSI session plus an inner driver on the target's LUNs: EXToISCSISR is
/// the session plus EXTSR on one LUN, LVMoISCSISR the session plus LVMSR over several. The SR
/// lifecycle, "log in, run the inner driver, log out on failure", is written here once:
///
/// - sr_attach: the checks that need no login (`checkBeforeLogin`), login (`ISCSISession.open`,
///   shared with ISCSISR), the inner sr_attach; a failed one logs out again.
/// - sr_detach: the inner sr_detach (on the LUNs' links, never opened: it runs when the session
///   is gone too), then logout unless another SR on this host uses the session.
/// - sr_create, sr_delete: the inner verb with the session borrowed for the call
///   (`ISCSISession.withSession`), `releaseBeforeLogout` after it.
///
/// sr_scan, sr_content_type and the VDI verbs are the driver's own (its inner driver's, through
/// `attachedInner`).
public protocol ISCSIBacked: Driver {
    associatedtype Inner: Driver

    var session: ISCSISession { get }

    /// The inner driver over the LUNs at `portal`: after a login `waitingForDevices` waits for
    /// udev to make their devices (ENODEV naming the missing LUNs); otherwise it only names
    /// their links (for verbs that never open them).
    func inner(at portal: ISCSIPortal, waitingForDevices: Bool) throws(StorageError) -> Inner

    /// The inner driver for verbs on the attached SR. Default: at the portal this host logged in
    /// to for `sr`, or at the target itself, without waiting.
    func attachedInner(_ sr: CanonicalUUID) throws(StorageError) -> Inner

    /// What must be checked before anything is logged in (EINVAL with nothing touched). Default: nothing.
    func checkBeforeLogin() throws(StorageError)

    /// After the inner verb of a borrowed session (sr_create, sr_delete), before its logout:
    /// release what would hold the LUNs open. Default: nothing.
    func releaseBeforeLogout(_ inner: Inner, sr: CanonicalUUID)
}

extension ISCSIBacked {
    public func attachedInner(_ sr: CanonicalUUID) throws(StorageError) -> Inner {
        try inner(at: session.attachedPortalOrTarget(for: sr), waitingForDevices: false)
    }

    public func checkBeforeLogin() throws(StorageError) {}

    public func releaseBeforeLogout(_ inner: Inner, sr: CanonicalUUID) {}

    /// Idempotent: login, then the inner sr_attach; a failed attach logs out again.
    public func attachLoggingIn(_ sr: CanonicalUUID) throws {
        try checkBeforeLogin()
        try session.open(for: sr) { portal in try inner(at: portal, waitingForDevices: true).srAttach(sr: sr) }
    }

    /// Idempotent: the inner sr_detach (EBUSY with a VDI attached), then logout.
    public func detachLoggingOut(_ sr: CanonicalUUID) throws {
        try inner(at: session.attachedPortalOrTarget(for: sr), waitingForDevices: false).srDetach(sr: sr)
        try session.close(for: sr)
    }

    /// Runs an inner verb with the target logged in for the call.
    public func borrowingSession(_ sr: CanonicalUUID, _ body: (Inner) throws -> Void) throws {
        try checkBeforeLogin()
        try session.withSession(for: sr) { portal in
            let inner = try inner(at: portal, waitingForDevices: true)
            let result = Result { try body(inner) }
            releaseBeforeLogout(inner, sr: sr)
            try result.get()
        }
    }

    public func srCreate(sr: CanonicalUUID, size: UInt64) throws { try borrowingSession(sr) { try $0.srCreate(sr: sr, size: size) } }
    public func srDelete(sr: CanonicalUUID) throws { try borrowingSession(sr) { try $0.srDelete(sr: sr) } }
    public func srAttach(sr: CanonicalUUID) throws { try attachLoggingIn(sr) }
    public func srDetach(sr: CanonicalUUID) throws { try detachLoggingOut(sr) }
}

/// An iSCSI-backed driver whose other verbs are a repository's (LVMoISCSISR): the SR lifecycle
/// is the session's, as above, not the repository's alone.
extension ISCSIBacked where Self: RepositoryDriver {
    public func srCreate(sr: CanonicalUUID, size: UInt64) throws { try borrowingSession(sr) { try $0.srCreate(sr: sr, size: size) } }
    public func srDelete(sr: CanonicalUUID) throws { try borrowingSession(sr) { try $0.srDelete(sr: sr) } }
    public func srAttach(sr: CanonicalUUID) throws { try attachLoggingIn(sr) }
    public func srDetach(sr: CanonicalUUID) throws { try detachLoggingOut(sr) }
}
