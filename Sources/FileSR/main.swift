import SMCore

DriverMain.run(FileSR.self)
