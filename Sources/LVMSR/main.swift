import SMCore
import SMLVM

DriverMain.run(LVMSR.self)
