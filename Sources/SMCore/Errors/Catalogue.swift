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
        StorageError(
            code: .notPermitted,
            message: "VDI \(vdi) has dependent VDIs (\(what)) and cannot change" + (advice.map { "; \($0)" } ?? ""))
    }

    /// EPERM: a snapshot or clone would make a chain longer than `VHDChain.maximumLength`;
    /// `advice` says how to shorten it.
    public static func chainTooLong(_ verb: String, _ vdi: String, length: Int, advice: String) -> StorageError {
        StorageError(
            code: .notPermitted,
            message: "\(verb) of VDI \(vdi) would make a chain of \(length) VHDs; "
                + "the limit is \(VHDChain.maximumLength) (\(advice))")
    }

    /// ENOLCK: another user holds the VDI's persistent lock.
    static func vdiLockedByOther(_ vdi: String, holders: [LockHolder]) -> StorageError {
        StorageError(
            code: .noLocks,
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
        StorageError(
            code: .resourceBusy,
            message: "another operation holds \(path) (waited \(seconds) s)"
                + (holders.isEmpty ? "" : ": " + holders.joinedText(separator: ", ")))
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
        StorageError(
            code: .resourceBusy,
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

// MARK: Substrates and drivers (mounts, devices, iSCSI, LVM)

extension StorageError {
    /// EEXIST: the SR already exists at `place` (a device, an export).
    public static func srExists(_ sr: String, on place: String) -> StorageError {
        StorageError(code: .fileExists, message: "SR \(sr) already exists on \(place)")
    }

    /// ENODEV: a directory SR's location (FileSR's dconf `location`) is missing.
    public static func locationMissing(_ location: String) -> StorageError {
        StorageError(code: .noSuchDevice, message: "location \(location) does not exist or is not a directory")
    }

    /// EBUSY: the SR is attached on this host (`how` says how: "mounted at …").
    public static func srAttached(_ sr: String, how: String) -> StorageError {
        StorageError(code: .resourceBusy, message: "SR \(sr) is attached on this host (\(how)); run sr_detach first")
    }

    /// ENODEV: the SR's attach record is there, its mount is not.
    public static func srMountMissing(_ sr: String, fileSystem: String, mountPoint: String) -> StorageError {
        StorageError(
            code: .noSuchDevice,
            message: "SR \(sr) is recorded as attached but no \(fileSystem) is mounted on \(mountPoint); run sr_attach again")
    }

    /// ENODEV: the SR's mount comes from another source than the dconf names.
    public static func srMountedFromElsewhere(_ sr: String, source: String, expected: String) -> StorageError {
        StorageError(
            code: .noSuchDevice,
            message: "SR \(sr) is mounted from \(source), not from \(expected) "
                + "as the dconf says; run sr_detach and sr_attach with the right dconf")
    }

    /// EBUSY: something else is mounted on the SR's mount point.
    public static func mountPointTaken(_ mountPoint: String, by source: String, type: String, expected: String) -> StorageError {
        StorageError(
            code: .resourceBusy,
            message: "\(mountPoint) already has \(source) (\(type)) mounted, not \(expected); unmount it first")
    }

    /// EBUSY: umount2(2) answered EBUSY.
    public static func mountPointBusy(_ mountPoint: String) -> StorageError {
        StorageError(code: .resourceBusy, message: "\(mountPoint) is busy (a process has files open in it); close them first")
    }

    /// EBUSY: the device is mounted on this host (at `mountPoints`).
    public static func deviceMounted(_ device: String, at mountPoints: [String]) -> StorageError {
        StorageError(
            code: .resourceBusy,
            message: "device \(device) is mounted at \(mountPoints.joinedText(separator: ", ")); unmount it first")
    }

    /// EEXIST: sr_create found `contents` on the device and was not told to destroy them (`force`).
    public static func deviceHolds(_ device: String, contents: String) -> StorageError {
        StorageError(
            code: .fileExists,
            message: "device \(device) holds \(contents); "
                + "nothing was changed (add <force>true</force> to the dconf to destroy it)")
    }

    /// ENODEV: the device holds `contents` (or "no filesystem"), not the SR; `outcome` says
    /// what was left alone.
    public static func deviceNotThisSR(
        _ device: String, holds contents: String, sr: String,
        outcome: String? = nil
    ) -> StorageError {
        StorageError(
            code: .noSuchDevice,
            message: "device \(device) holds \(contents), not SR \(sr)"
                + (outcome.map { "; \($0)" } ?? ""))
    }

    /// EEXIST: sr_create on a device whose SR of this UUID an interrupted sr_delete left.
    public static func srHalfDeletedOnDevice(_ sr: String, device: String) -> StorageError {
        StorageError(code: .fileExists, message: "device \(device) holds SR \(sr), half deleted; run sr_delete to finish first")
    }

    /// ENODEV: a verb other than sr_delete on an SR that an interrupted sr_delete left.
    public static func srHalfDeleted(_ sr: String, device: String) -> StorageError {
        StorageError(
            code: .noSuchDevice,
            message: "SR \(sr) on device \(device) is half deleted (sr_delete was interrupted); run sr_delete to finish")
    }

    /// EBUSY: ext4's multi-mount protection shows another host holding the SR's filesystem.
    public static func srInUseByAnotherHost(
        _ sr: String, device: String, holder: String, secondsAgo: Int,
        outcome: String
    ) -> StorageError {
        StorageError(
            code: .resourceBusy,
            message: "SR \(sr) on device \(device) is in use by another host: ext4 "
                + "multi-mount protection names \(holder), updated \(secondsAgo) s ago; \(outcome)")
    }

    /// EBUSY: e2fsprogs refused the SR for ext4 multi-mount protection, and the MMP block does
    /// not name the holder (`detail` says why).
    public static func srRefusedByMultiMountProtection(
        _ sr: String, device: String, refusal: String, detail: String, outcome: String
    ) -> StorageError {
        StorageError(
            code: .resourceBusy,
            message: "SR \(sr) on device \(device) is in use by another host: ext4 multi-mount protection "
                + "refused it (\(refusal)); \(detail); \(outcome)")
    }

    /// ENODEV: the export cannot be mounted (the spec's "attachment parameters are incorrect").
    public static func exportUnmountable(_ export: String, reason: String) -> StorageError {
        StorageError(code: .noSuchDevice, message: "cannot mount the export \(export): \(reason)")
    }

    /// ENODEV: the export has no directory for the SR.
    public static func srMissingOnExport(_ sr: String, export: String) -> StorageError {
        StorageError(
            code: .noSuchDevice,
            message: "SR \(sr) does not exist on \(export) "
                + "(no directory \(sr) there); run sr_create first, or check serverpath")
    }

    /// ENODEV: the SR is recorded as attached but this host keeps no iSCSI session record for it.
    public static func srSessionRecordMissing(_ sr: String) -> StorageError {
        StorageError(code: .noSuchDevice, message: "SR \(sr) is attached but has no iSCSI session record; run sr_attach again")
    }

    /// ENODEV: iscsiadm reached no target (`what` names the step).
    public static func targetUnreachable(_ what: String, reason: String) -> StorageError {
        StorageError(code: .noSuchDevice, message: "\(what): the target does not answer: \(reason)")
    }

    /// ENODEV: sendtargets discovery at `endpoint` lists no record for the IQN.
    public static func targetNotAdvertised(_ iqn: String, endpoint: String) -> StorageError {
        StorageError(code: .noSuchDevice, message: "the target at \(endpoint) does not advertise \(iqn)")
    }

    /// ENODEV: dconf `usediscoverynumber` names a record the discovery did not list.
    public static func discoveryRecordMissing(_ number: Int, iqn: String, endpoint: String, records: Int) -> StorageError {
        StorageError(
            code: .noSuchDevice,
            message: "usediscoverynumber \(number): the target at \(endpoint) "
                + "advertises \(records) record(s) for \(iqn) (0 to \(records - 1))")
    }

    /// ENODEV: LUNs the dconf names have no block device on this host after login.
    public static func lunsMissing(_ missing: [Int], iqn: String, portal: String, present: [Int]) -> StorageError {
        let here = present.map(String.init).joinedText(separator: ", ")
        return StorageError(
            code: .noSuchDevice,
            message: "target \(iqn) at \(portal) has no LUN "
                + missing.map(String.init).joinedText(separator: ", ")
                + " on this host (its LUNs here: \(here.isEmpty ? "none" : here))")
    }

    /// EBUSY: a LUN is open exclusively on this host, so the session cannot log out.
    public static func lunInUse(_ lun: Int, iqn: String, device: String) -> StorageError {
        StorageError(
            code: .resourceBusy,
            message: "LUN \(lun) of \(iqn) (\(device)) is in use on this host "
                + "(mounted or held by device-mapper); release it before logging out")
    }

    /// EEXIST: sr_create found something on a device and will not overwrite it (LVM).
    public static func deviceNotBlank(_ device: String, found: String) -> StorageError {
        StorageError(
            code: .fileExists,
            message: "device \(device) is not blank: \(found); "
                + "sr_create does not overwrite it (clear it first, e.g. wipefs, if it is unused)")
    }

    /// ENODEV: the volume group lacks physical volumes (a device is missing or renamed).
    public static func volumeGroupIncomplete(_ group: String, missing: UInt64, of total: UInt64) -> StorageError {
        StorageError(
            code: .noSuchDevice,
            message: "volume group \(group) is missing \(missing) of its \(total) physical volumes; check its devices")
    }

    /// EBUSY: something on this host holds the logical volume open.
    public static func logicalVolumeOpen(_ qualifiedName: String) -> StorageError {
        StorageError(code: .resourceBusy, message: "logical volume \(qualifiedName) is open on this host (in use)")
    }

    /// EBUSY: another host of the pool has the logical volume active (holds its LV lock).
    public static func activeOnAnotherHost(_ qualifiedName: String) -> StorageError {
        StorageError(
            code: .resourceBusy,
            message: "logical volume \(qualifiedName) is active on another host "
                + "(it holds the volume's lock); vdi_detach it there first")
    }

    /// EBUSY: vgremove of a shared group whose lock space another host has started.
    public static func volumeGroupInUseElsewhere(_ group: String) -> StorageError {
        StorageError(
            code: .resourceBusy,
            message: "volume group \(group) is in use on another host (its lock "
                + "space is started there: the SR is attached on another host, or sanlock has not yet seen it leave; "
                + "retry after sr_detach there)")
    }

    /// EBUSY: sanlock lists other hosts (`hosts`, described) that may still hold leases in the lock space.
    public static func lockspaceInUseElsewhere(_ lockspace: String, hosts: String) -> StorageError {
        StorageError(
            code: .resourceBusy,
            message: "lock space \(lockspace) may be in use on another host: "
                + "\(hosts); the SR is attached there, or that host stopped less than sanlock's host_dead_seconds ago "
                + "(retry later; Docs/LVMoISCSISR.md)")
    }

    /// ENOLCK: the shared group's lock space cannot be started on this host.
    public static func lockspaceNotStarted(_ group: String, reason: String) -> StorageError {
        StorageError(
            code: .noLocks,
            message: "cannot start the lock space of volume group \(group) "
                + "(are sanlock and lvmlockd running? Docs/LVMoISCSISR.md): \(reason)")
    }

    // vdi_import and vdi_export (Docs/export.md).

    /// EINVAL: the stream vdi_import reads is not what its Format and Size say (too long, not a
    /// dynamic VHD, a VHD that breaks a rule); nothing was left behind.
    public static func badStream(_ reason: String) -> StorageError {
        StorageError(code: .invalidArgument, message: "vdi_import: \(reason); nothing was imported")
    }

    /// EIO: the stream ended before the data it announced (a transfer cut short); nothing was left behind.
    public static func streamEnded(after bytes: UInt64, expected: String) -> StorageError {
        StorageError(code: .ioError, message: "vdi_import: the stream ended after \(bytes) bytes, \(expected); nothing was imported")
    }
}

/// sr_probe's failures (Docs/probe.md).
extension StorageError {
    /// ENODEV: the NFS server does not give its export list (no MOUNT service, or no answer).
    public static func exportListUnavailable(_ server: String, reason: String) -> StorageError {
        StorageError(
            code: .noSuchDevice,
            message: "NFS server \(server) gives no export list (showmount: \(reason)); an NFSv4-only server has none: give serverpath")
    }
}
