// The LVM drivers in one executable that the package installs once and names once per driver
// (a multi-call binary, like sm-drivers): linked with static archives of libxml2, ICU and
// libstdc++ (Scripts/ld-static-dependencies), each would otherwise carry its own copy of them and
// of ICU's data. Dynamic, unlike sm-drivers, because it loads liblvm2cmd with dlopen.
import SMCore
import SMLVM

DriverMain.run(oneOf: [LVMSR.self, LVMoISCSISR.self])
