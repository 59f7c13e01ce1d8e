import SystemPackage

/// The failures every driver shares, so that the same situation reads the same everywhere.
extension StorageError {
    /// EINVAL: a command-line or dconf problem found before anything was touched.
    public static func invalid(_ message: String) -> StorageError {
        StorageError(code: .invalidArgument, message: message)
    }

    /// ENOSYS: the driver does not implement this verb.
    public static func notImplemented(_ verb: String, driver: String, reason: String = "not implemented yet") -> StorageError {
        StorageError(code: .noFunction, message: "\(driver) \(verb): \(reason)")
    }

    /// ENODEV: the SR does not exist.
    public static func noSuchSR(_ sr: String) -> StorageError {
        StorageError(code: .noSuchDevice, message: "SR \(sr) does not exist")
    }

    /// ENODEV: the SR exists but `sr_attach` was not called on this host.
    public static func srNotAttached(_ sr: String) -> StorageError {
        StorageError(code: .noSuchDevice, message: "SR \(sr) is not attached on this host; run sr_attach first")
    }

    /// ENODEV: no VDI of that UUID in the SR.
    public static func noSuchVDI(_ vdi: String, sr: String) -> StorageError {
        StorageError(code: .noSuchDevice, message: "VDI \(vdi) does not exist in SR \(sr)")
    }

    /// EEXIST: the SR already exists.
    public static func srExists(_ sr: String) -> StorageError {
        StorageError(code: .fileExists, message: "SR \(sr) already exists")
    }

    /// EEXIST: a VDI of that UUID already exists.
    public static func vdiExists(_ vdi: String, sr: String) -> StorageError {
        StorageError(code: .fileExists, message: "VDI \(vdi) already exists in SR \(sr)")
    }

    /// EBUSY: the VDI is attached on this host.
    public static func vdiAttached(_ vdi: String) -> StorageError {
        StorageError(code: .resourceBusy, message: "VDI \(vdi) is attached on this host; run vdi_detach first")
    }

    /// EBUSY: the SR still holds VDIs.
    public static func srNotEmpty(_ sr: String, count: Int) -> StorageError {
        StorageError(code: .resourceBusy, message: "SR \(sr) still holds \(count) VDI\(count == 1 ? "" : "s"); delete them first")
    }

    /// EBUSY: a VDI of the SR is attached on this host.
    public static func srHasAttachedVDI(_ sr: String, vdi: String) -> StorageError {
        StorageError(code: .resourceBusy, message: "SR \(sr) has VDI \(vdi) attached on this host; run vdi_detach first")
    }

    /// EPERM: the iSCSI target refused the dconf's CHAP credentials, or this host's session to it
    /// was made with other ones (`what` names the login, `reason` which of the two; the
    /// credentials are never shown).
    public static func chapRefused(_ what: String, reason: String = "the target refused the CHAP login") -> StorageError {
        StorageError(code: .notPermitted, message: "\(what): \(reason); check chapuser and chappassword")
    }

    /// ENOSPC: not enough room on the substrate.
    public static func noSpace(_ message: String) -> StorageError {
        StorageError(code: .noSpace, message: message)
    }

    /// EIO: anything unexpected; the message says what failed.
    public static func io(_ message: String) -> StorageError {
        StorageError(code: .ioError, message: message)
    }

    /// EIO: a file breaks a rule of its on-disk format (a damaged or hostile VHD); the message
    /// names the rule. The cause says so, for callers that tell damage from a failed system call.
    public static func malformed(_ message: String) -> StorageError {
        StorageError(code: .ioError, message: message, cause: .malformed)
    }

    /// EIO: a write was asked of a VHD opened read-only (a caller's mistake, not the file's).
    public static func openReadOnly(_ path: String) -> StorageError {
        .io("\(path) is open read-only")
    }

    /// EPERM: the VDI has children (snapshots or base copies) and so cannot change; `advice`
    /// says what to do instead, if anything.
    public static func vdiHasDependents(_ vdi: String, _ what: String = "a snapshot or base copy", advice: String? = nil) -> StorageError {
        StorageError(code: .notPermitted,
                     message: "VDI \(vdi) has dependent VDIs (\(what)) and cannot change" + (advice.map { "; \($0)" } ?? ""))
    }

    /// EPERM: a snapshot or clone would make a chain longer than `VHDChain.maximumLength`;
    /// `advice` says how to shorten it.
    public static func chainTooLong(_ verb: String, _ vdi: String, length: Int, advice: String) -> StorageError {
        StorageError(code: .notPermitted, message: "\(verb) of VDI \(vdi) would make a chain of \(length) VHDs; "
            + "the limit is \(VHDChain.maximumLength) (\(advice))")
    }

    /// ENOLCK: another user holds the VDI's persistent lock.
    static func vdiLockedByOther(_ vdi: String, holders: [LockHolder]) -> StorageError {
        StorageError(code: .noLocks,
                     message: "VDI \(vdi) is locked by \(PersistentLock.list(holders)); vdi_lock with Force TRUE breaks that lock")
    }

    /// EBUSY: the VDI has a persistent lock.
    static func vdiLocked(_ vdi: String, holders: [LockHolder]) -> StorageError {
        StorageError(code: .resourceBusy, message: "VDI \(vdi) is locked by \(PersistentLock.list(holders)); run vdi_unlock first")
    }

    /// ENOLCK: the short-term mutex guarding a VDI's lock files could not be taken.
    static func vdiLockMutexUnavailable(_ vdi: String, _ reason: String) -> StorageError {
        StorageError(code: .noLocks, message: "VDI \(vdi): \(reason)")
    }

    /// EBUSY: another process holds a host-local lock (`holders` as found in /proc, if any).
    static func hostLockHeld(_ path: String, waited seconds: Int, holders: [String]) -> StorageError {
        StorageError(code: .resourceBusy, message: "another operation holds \(path) (waited \(seconds) s)"
                     + (holders.isEmpty ? "" : ": " + holders.joined(separator: ", ")))
    }

    /// EBUSY: another process or host holds a claim on shared storage.
    static func claimHeld(_ what: String, by holder: String, waited seconds: Int) -> StorageError {
        StorageError(code: .resourceBusy, message: "\(what) is claimed by \(holder) (waited \(seconds) s)")
    }

    /// ENOSPC or EIO: a claim file could not be written.
    static func claimFailed(_ path: String, _ reason: String, errno: Errno?) -> StorageError {
        StorageError(code: errno == .noSpace ? .noSpace : .ioError, message: "cannot take the claim \(path): \(reason)")
    }

    /// ENODEV: the dconf names something that is not a usable block device.
    public static func noSuchBlockDevice(_ path: String, reason: String) -> StorageError {
        StorageError(code: .noSuchDevice, message: "device \(path) \(reason)")
    }

    /// EBUSY: the kernel refused an exclusive open (O_EXCL) of the device.
    public static func blockDeviceInUse(_ path: String) -> StorageError {
        StorageError(code: .resourceBusy,
                     message: "device \(path) is in use (mounted, or held by LVM, RAID or another program); release it first")
    }

    /// `failure` (EIO unless the caller knows better): another program exited non-zero;
    /// `reason` is the last line it printed.
    public static func commandFailed(_ program: String, status: Int32, reason: String, code: Errno = .ioError) -> StorageError {
        StorageError(code: code, message: "\(program) failed (status \(status)): \(reason)")
    }

    /// Turns a failed system call into a StorageError naming the operation and path, with the
    /// errno kept as the cause. The exit code is the errno itself where the spec has a place
    /// for it with the same meaning: EPERM, EBUSY, ENODEV, ENOLCK; out-of-space errors (ENOSPC,
    /// EDQUOT, EFBIG) are ENOSPC; everything else is EIO. (EINVAL, EEXIST and ENOSYS from a
    /// system call are EIO: to a caller they mean bad input, an existing SR or VDI, an
    /// unimplemented verb, none of which a failed call inside a verb is.)
    public static func system(_ errno: Errno, _ operation: String, path: String? = nil) -> StorageError {
        let what = path.map { "\(operation) \($0)" } ?? operation
        let cause = Cause.systemCall(operation, errno)
        switch errno {
        case .noSpace, .diskQuotaExceeded, .fileTooLarge:
            return StorageError(code: .noSpace, message: "\(what): no space left (\(errno.symbolicName))", cause: cause)
        case .notPermitted, .resourceBusy, .noSuchDevice, .noLocks:
            return StorageError(code: errno, message: "\(what): \(errno.symbolicName) \(String(describing: errno))", cause: cause)
        default:
            return StorageError(code: .ioError, message: "\(what): \(errno.symbolicName) \(String(describing: errno))", cause: cause)
        }
    }
}
