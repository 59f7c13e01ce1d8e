import SMCore

DriverMain.run(EXTSR.self)
