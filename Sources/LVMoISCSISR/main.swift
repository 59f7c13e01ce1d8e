import SMCore

DriverMain.run(LVMoISCSISR.self)
