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

    /// Turns a failed system call into a StorageError: out-of-space errors are ENOSPC,
    /// everything else EIO, with the operation and path in the message.
    public static func system(_ errno: Errno, _ operation: String, path: String? = nil) -> StorageError {
        let what = path.map { "\(operation) \($0)" } ?? operation
        switch errno {
        case .noSpace, .diskQuotaExceeded, .fileTooLarge:
            return StorageError(code: .noSpace, message: "\(what): no space left (\(errno.symbolicName))")
        default:
            return StorageError(code: .ioError, message: "\(what): \(errno.symbolicName) \(String(describing: errno))")
        }
    }
}
