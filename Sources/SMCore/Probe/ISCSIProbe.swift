#if canImport(Glibc)
    import Glibc
#endif

/// sr_probe for the iSCSI drivers (ISCSISR, EXToISCSISR, LVMoISCSISR): the targets the portal
/// `target:port` advertises, and with `targetIQN` that target's LUNs and what is on them.
///
/// - **Targets**: sendtargets discovery with `-o nonpersistent`, so iscsiadm keeps no record.
/// - **LUNs** need a session: under the target's host lock (`ISCSISession`), a login exactly as
///   sr_attach's (CHAP from the dconf into the node record, never into an argv), the LUNs read
///   (by-path link, size, SCSI id, vendor, model, the VDI UUID ISCSISR names it by, libblkid's
///   signatures), then a logout, unless this host already had a session to the target (another
///   SR's: it is used and left as it was), and the node records removed again unless they were
///   there before. `inspect` runs while the LUNs are there (LVMoISCSISR reads their volume groups).
public enum ISCSIProbe {
    /// How long to wait after login for the first LUN's block device to appear.
    static let lunTimeout = 10.0

    public static func probe(
        driver: String, configuration: DeviceConfiguration, host: HostEnvironment,
        inspect: (inout ProbeReport) throws -> Void = { _ in }
    ) throws -> ProbeReport {
        var report = ProbeReport(driver: driver)
        guard configuration["targetIQN"] != nil else {
            let address = try ISCSITarget.hostAddress(configuration.required("target"))
            let port = try configuration["port"].map { value throws(StorageError) in
                UInt16(try ISCSITarget.number(value, key: "port", in: 1...65535))
            }
            report.targets = try targets(at: ISCSIPortal(address: address, port: port ?? ISCSITarget.defaultPort, groupTag: "1").text)
            return report
        }
        let session = ISCSISession(target: try ISCSITarget(configuration: configuration), host: host)
        let lock = try session.lockTarget()
        defer { lock.release() }
        let hadSession = !session.liveSessions().isEmpty
        let records = "\(session.nodeDirectory)/\(session.target.iqn)"
        let hadRecords = Syscall.exists(records)
        let outcome = Result {
            let portal = try session.login()
            defer { if !hadSession { logOut(session, portal) } }
            report.targets = [ProbedTarget(iqn: session.target.iqn, portal: portal.text, groupTag: portal.groupTag)]
            report.luns = try luns(session, portal)
            try inspect(&report)
        }
        if !hadRecords && Syscall.exists(records) {
            do throws(StorageError) {
                try ISCSIAdm.run(
                    ["-m", "node", "-T", session.target.iqn, "-o", "delete"], accepting: [.noObjects],
                    what: "removing the node records of \(session.target.iqn) the probe made")
            } catch {
                OperationLog.note(host: host, "\(driver) sr_probe: \(error.message)")
            }
        }
        try outcome.get()
        return report
    }

    /// The logout after the LUNs were read; a LUN something opened meanwhile keeps the session,
    /// which the operations log says.
    static func logOut(_ session: ISCSISession, _ portal: ISCSIPortal) {
        do throws(StorageError) {
            try session.logout(portal)
        } catch {
            OperationLog.note(host: session.host, "sr_probe left the session to \(session.target.iqn) logged in: \(error.message)")
        }
    }

    /// sendtargets at `endpoint`, nothing recorded: every target and portal advertised.
    static func targets(at endpoint: String) throws(StorageError) -> [ProbedTarget] {
        let output = try ISCSIAdm.run(
            ["-m", "discovery", "-t", "sendtargets", "-p", endpoint, "-o", "nonpersistent"],
            what: "discovery at \(endpoint)")
        return output.standardOutput.split(whereSeparator: \.isNewline).compactMap { line in
            ISCSIPortal.parseDiscovery(String(line)).map {
                ProbedTarget(iqn: $0.iqn, portal: $0.portal.text, groupTag: $0.portal.groupTag)
            }
        }
    }

    /// The target's LUNs at `portal`, after waiting up to `lunTimeout` for the first one's
    /// device. A LUN whose device cannot be read is left out and noted in the operations log.
    static func luns(_ session: ISCSISession, _ portal: ISCSIPortal) throws(StorageError) -> [ProbedLUN] {
        let deadline = Syscall.monotonicNow() + lunTimeout
        while session.lunDevices(portal).isEmpty && Syscall.monotonicNow() < deadline { usleep(100_000) }
        _ = try? ExternalCommand.runAllowingFailure("udevadm", ["settle", "--timeout=30"])
        var found: [ProbedLUN] = []
        for (number, path) in session.lunDevices(portal).sorted(by: { $0.key < $1.key }) {
            do throws(StorageError) {
                let identifier = try ISCSISession.scsiIdentifier(of: path)
                let attributes = "/sys/class/block/\(kernelName(of: path))/device"
                found.append(
                    ProbedLUN(
                        number: number, device: try ProbedDevice.reading(path), scsiIdentifier: identifier,
                        vendor: attribute("\(attributes)/vendor"), model: attribute("\(attributes)/model"),
                        vdi: ISCSISR.vdiUUID(scsiIdentifier: identifier)))
            } catch {
                OperationLog.note(
                    host: session.host, "sr_probe: LUN \(number) of \(session.target.iqn) (\(path)) left out: \(error.message)")
            }
        }
        return found
    }

    /// `sdb` for a link to /dev/sdb.
    static func kernelName(of path: String) -> String {
        guard let resolved = realpath(path, nil) else { return "" }
        defer { free(resolved) }
        return String(String(cString: resolved).split(separator: "/").last ?? "")
    }

    static func attribute(_ path: String) -> String {
        guard let bytes = try? Syscall.readFile(path, limit: 4096) else { return "" }
        return String(decoding: bytes, as: UTF8.self).trimmingWhitespace()
    }
}

extension ISCSISR {
    public static func probe(configuration: DeviceConfiguration, host: HostEnvironment) throws -> ProbeReport {
        try ISCSIProbe.probe(driver: name, configuration: configuration, host: host)
    }
}

extension EXToISCSISR {
    /// As ISCSISR's; `LUNid` is not needed (every LUN is listed, an EXT SR on one is named).
    public static func probe(configuration: DeviceConfiguration, host: HostEnvironment) throws -> ProbeReport {
        try ISCSIProbe.probe(driver: name, configuration: configuration, host: host)
    }
}
