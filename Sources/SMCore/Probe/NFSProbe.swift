#if canImport(Glibc)
    import Glibc
#endif

extension NFSSR {
    /// The server's exports (`showmount -e`, the MOUNT protocol's list) and, with `serverpath`,
    /// the SR directories in it: the export is mounted read-only with the dconf's options at
    /// `<mount_dir>/.probe-<pid>` for the length of the call and unmounted again (a failure to
    /// unmount fails the call, naming the mount point). `server` is the only key required.
    ///
    /// ENODEV when the server lists no exports and no `serverpath` is given (an NFSv4-only server
    /// has no MOUNT service: give `serverpath`, and the list is left out), or when `serverpath`
    /// cannot be mounted.
    public static func probe(configuration: DeviceConfiguration, host: HostEnvironment) throws -> ProbeReport {
        let serverText = try configuration.required("server")
        let serverpath = configuration["serverpath"]
        let export = try NFSExport(server: serverText, path: serverpath ?? "/")
        let options = try NFSMountOptions(configuration: configuration, server: export.server)
        var report = ProbeReport(driver: name)
        do throws(StorageError) {
            report.exports = try exports(of: export.server)
        } catch {
            guard serverpath != nil else { throw error }
            Diagnostics.debug("no export list, probing \(export.source) alone: \(error.message)")
        }
        guard serverpath != nil else { return report }
        let point = "\(host.mountDirectory)/.probe-\(getpid())"
        do throws(StorageError) {
            try Mount.mount(export.source, at: point, type: "nfs", options: options.arguments + ["ro"])
        } catch {
            throw StorageError.exportUnmountable(export.source, reason: error.message)
        }
        let found = Result { () throws(StorageError) in try ProbedSR.fileSRs(in: point, shownAs: export.path, host: host) }
        try Mount.unmount(point)
        Mount.removeMountPoint(point)
        report.srs = try found.get()
        return report
    }

    /// `showmount -e --no-headers`: one line per export, its path and who may mount it.
    static func exports(of server: NFSExport.Server) throws(StorageError) -> [ProbedExport] {
        let address: String
        switch server {
        case .name(let text), .ipv4(let text), .ipv6(let text): address = text
        }
        let output = try ExternalCommand.runAllowingFailure("showmount", ["--exports", "--no-headers", address])
        guard output.status == 0 else {
            let reason = ExternalCommand.lastLine(output.standardError) ?? "no output"
            throw StorageError.exportListUnavailable(server.sourceForm, reason: reason)
        }
        return output.standardOutput.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard let path = fields.first, path.hasPrefix("/") else { return nil }
            return ProbedExport(path: String(path), clients: fields.count > 1 ? String(fields[1]).trimmingWhitespace() : "")
        }
    }
}
