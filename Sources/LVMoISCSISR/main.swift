import SMCore
import SMLVM

DriverMain.run(LVMoISCSISR.self)
