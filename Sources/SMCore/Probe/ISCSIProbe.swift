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
            let endpoint = ISCSIPortal(address: address, port: port ?? ISCSITarget.defaultPort, groupTag: "1")
            let records = Records(nodeDirectory: ISCSISession.nodeDirectory(host), endpoint: endpoint)
            let outcome = Result { () throws(StorageError) in try targets(at: endpoint.text) }
            records.removeNew(host: host, driver: driver)
            report.targets = try outcome.get()
            return report
        }
        let session = ISCSISession(target: try ISCSITarget(configuration: configuration), host: host)
        let lock = try session.lockTarget()
        defer { lock.release() }
        let hadSession = !session.liveSessions().isEmpty
        let records = Records(
            nodeDirectory: session.nodeDirectory,
            endpoint: ISCSIPortal(address: session.target.address, port: session.target.port, groupTag: "1"))
        let outcome = Result {
            let portal = try session.login()
            let read = Result {
                report.targets = [ProbedTarget(iqn: session.target.iqn, portal: portal.text, groupTag: portal.groupTag)]
                report.luns = try luns(session, portal)
                try inspect(&report)
            }
            // A session this probe cannot end is an error (EBUSY naming the LUN held open): the
            // probe must not leave a login behind without saying so.
            if !hadSession { try session.logout(portal) }
            try read.get()
        }
        if !hadSession { records.removeNew(host: host, driver: driver) }
        try outcome.get()
        return report
    }

    /// iscsiadm's records before a probe: every node record (`<node_dir>/<IQN>/<address>,<port>,<tag>`,
    /// a directory of one file per interface, or one file in older layouts) and the sendtargets
    /// discovery record of the portal. What the probe's discovery and login add is removed again
    /// afterwards, record by record (`iscsiadm -o delete`; a failure is noted in the operations
    /// log, the probe's answer stands): a login through the `default` interface beside records of
    /// other interfaces for the same target (sr_attach's) adds one record, and only it goes.
    struct Records {
        /// One node record: its target, its portal and, in the per-interface layout, its interface.
        struct Record: Hashable, Comparable {
            var target: String
            var portal: String
            var interface: String?

            static func < (left: Record, right: Record) -> Bool {
                (left.target, left.portal, left.interface ?? "") < (right.target, right.portal, right.interface ?? "")
            }
        }

        let nodeDirectory: String
        let endpoint: ISCSIPortal
        let records: Set<Record>
        let hadDiscovery: Bool

        /// `<node_dir>/../send_targets/<address>,<port>`, where open-iscsi keeps discovery records.
        var discoveryRecord: String { Self.discoveryRecord(nodeDirectory, endpoint) }

        static func discoveryRecord(_ nodeDirectory: String, _ endpoint: ISCSIPortal) -> String {
            "\(Syscall.parentDirectory(of: nodeDirectory))/send_targets/\(endpoint.address),\(endpoint.port)"
        }

        /// The node records under `nodeDirectory` now.
        static func list(_ nodeDirectory: String) -> Set<Record> {
            var found: Set<Record> = []
            for target in (try? Syscall.directoryEntries(nodeDirectory)) ?? [] {
                for portal in (try? Syscall.directoryEntries("\(nodeDirectory)/\(target)")) ?? [] {
                    let path = "\(nodeDirectory)/\(target)/\(portal)"
                    guard Syscall.isDirectory(path) else {
                        found.insert(Record(target: target, portal: portal))
                        continue
                    }
                    for interface in (try? Syscall.directoryEntries(path)) ?? [] {
                        found.insert(Record(target: target, portal: portal, interface: interface))
                    }
                }
            }
            return found
        }

        /// The `-p` operand of a record's portal directory name `<address>,<port>,<tag>`.
        static func portalOperand(_ name: String) -> String? {
            let fields = name.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count >= 3, let port = UInt16(fields[fields.count - 2]) else { return nil }
            let address = fields[..<(fields.count - 2)].joined(separator: ",")
            return ISCSIPortal(address: address, port: port, groupTag: String(fields[fields.count - 1])).text
        }

        init(nodeDirectory: String, endpoint: ISCSIPortal) {
            self.nodeDirectory = nodeDirectory
            self.endpoint = endpoint
            records = Self.list(nodeDirectory)
            hadDiscovery = Syscall.exists(Self.discoveryRecord(nodeDirectory, endpoint))
        }

        func removeNew(host: HostEnvironment, driver: String) {
            var commands: [[String]] = []
            for record in Self.list(nodeDirectory).subtracting(records).sorted() {
                var arguments = ["-m", "node", "-T", record.target]
                if let portal = Self.portalOperand(record.portal) { arguments += ["-p", portal] }
                if let interface = record.interface { arguments += ["-I", interface] }
                commands.append(arguments + ["-o", "delete"])
            }
            if !hadDiscovery && Syscall.exists(discoveryRecord) {
                commands.append(["-m", "discoverydb", "-t", "sendtargets", "-p", endpoint.text, "-o", "delete"])
            }
            for arguments in commands {
                do throws(StorageError) {
                    try ISCSIAdm.run(arguments, accepting: [.noObjects], what: "removing a record sr_probe made")
                } catch {
                    OperationLog.note(host: host, "\(driver) sr_probe: \(error.message)")
                }
            }
        }
    }

    /// sendtargets at `endpoint`, nothing recorded: every target and portal advertised.
    static func targets(at endpoint: String) throws(StorageError) -> [ProbedTarget] {
        let output = try ISCSIAdm.run(
            ["-m", "discovery", "-t", "sendtargets", "-p", endpoint, "-o", "nonpersistent"],
            what: "discovery at \(endpoint)")
        // iscsiadm prints a target once per interface the portal's discovery ran through (a
        // discovery record sr_attach made binds its own interface): each target is listed once.
        var seen: Set<String> = []
        return output.standardOutput.split(whereSeparator: \.isNewline).compactMap { line in
            ISCSIPortal.parseDiscovery(String(line)).map {
                ProbedTarget(iqn: $0.iqn, portal: $0.portal.text, groupTag: $0.portal.groupTag)
            }
        }.filter { seen.insert("\($0.iqn) \($0.portal) \($0.groupTag)").inserted }
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
