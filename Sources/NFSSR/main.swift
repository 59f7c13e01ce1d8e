import SMCore

DriverMain.run(NFSSR.self)
