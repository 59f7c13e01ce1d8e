// The drivers that load a substrate's libraries with dlopen (the LVM drivers: liblvm2cmd; RBDSR:
// librados and librbd) in one executable that the package installs once and names once per driver
// (a multi-call binary, like sm-drivers): linked with static archives of libxml2, ICU and
// libstdc++ (Scripts/ld-static-dependencies), each would otherwise carry its own copy of them and
// of ICU's data. Dynamic, unlike sm-drivers, because a static executable cannot dlopen safely.
import SMCore
import SMLVM
import SMRBD

if CommandLine.arguments.first?.split(separator: "/").last == "RBDSR" { RBDSR.main() }
DriverMain.run(oneOf: [LVMSR.self, LVMoISCSISR.self, RBDSR.self])
