// The drivers that need only SMCore, in one executable that the package installs once and names
// once per driver (a multi-call binary, like busybox): linked fully static, each would otherwise
// carry its own copy of libxml2, ICU's data and the Swift runtime (Docs/package.md).
import SMCore

DriverMain.run(oneOf: [FileSR.self, EXTSR.self, NFSSR.self, ISCSISR.self, EXToISCSISR.self])
