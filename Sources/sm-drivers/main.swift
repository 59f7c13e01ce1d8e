// The drivers that need only SMCore, and lock-util, in one executable that the package installs
// once and names once per program (a multi-call binary, like busybox): linked fully static, each
// would otherwise carry its own copy of libxml2, ICU's data and the Swift runtime (Docs/package.md).
import LockUtility
import SMCore

if CommandLine.arguments.first.map({ $0.split(separator: "/").last == "lock-util" }) ?? false {
    LockUtilityMain.run()
}
DriverMain.run(oneOf: [FileSR.self, EXTSR.self, NFSSR.self, ISCSISR.self, EXToISCSISR.self])
