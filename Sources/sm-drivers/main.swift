// The drivers that need only SMCore, lock-util and sm-vhd, in one executable that the package installs
// once and names once per program (a multi-call binary, like busybox): linked fully static, each
// would otherwise carry its own copy of libxml2, ICU's data and the Swift runtime (Docs/package.md).
import LockUtility
import SMCore
import VHDCommand

switch CommandLine.arguments.first?.split(separator: "/").last ?? "" {
case "lock-util": LockUtilityMain.run()
case "sm-vhd": VHDCommandMain.run()
default: break
}
DriverMain.run(oneOf: [FileSR.self, EXTSR.self, NFSSR.self, ISCSISR.self, EXToISCSISR.self])
