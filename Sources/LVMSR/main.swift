import SMCore

DriverMain.run(LVMSR.self)
