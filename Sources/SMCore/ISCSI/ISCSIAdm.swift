import SystemPackage

/// open-iscsi's `iscsiadm`, the only way SMCore talks to the kernel initiator (through iscsid).
/// Its exit statuses (open-iscsi `iscsi_err.h`) become errnos here and nowhere else.
enum ISCSIAdm {
    static let program = "iscsiadm"

    /// iscsiadm exit statuses this code gives a meaning to.
    enum Status: Int32 {
        case transport = 4  // ISCSI_ERR_TRANS: cannot connect to the portal
        case transportTimeout = 8  // ISCSI_ERR_TRANS_TIMEOUT
        case sessionExists = 15  // ISCSI_ERR_SESS_EXISTS: already logged in
        case noDaemon = 20  // ISCSI_ERR_ISCSID_NOTCONN
        case noObjects = 21  // ISCSI_ERR_NO_OBJS_FOUND: no such record or session
        case authorisation = 24  // ISCSI_ERR_LOGIN_AUTH_FAILED
    }

    /// Runs iscsiadm; status 0 and the statuses in `accepted` are success.
    @discardableResult
    static func run(_ arguments: [String], accepting accepted: Set<Status> = [], what: String) throws(StorageError) -> CommandOutput {
        let output = try ExternalCommand.runAllowingFailure(program, arguments)
        if output.status == 0 { return output }
        let status = Status(rawValue: output.status)
        if let status, accepted.contains(status) { return output }
        let reason = ExternalCommand.lastLine(output.standardError) ?? ExternalCommand.lastLine(output.standardOutput) ?? "no output"
        switch status {
        case .noDaemon:
            throw .io("\(what): iscsiadm cannot reach iscsid (is it running?): \(reason)")
        case .authorisation:
            throw StorageError.chapRefused(what)
        case .transport, .transportTimeout:
            throw StorageError.targetUnreachable(what, reason: reason)
        default:
            throw .io("\(what): iscsiadm failed (status \(output.status)): \(reason)")
        }
    }
}
