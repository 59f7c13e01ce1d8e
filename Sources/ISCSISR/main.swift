import SMCore

DriverMain.run(ISCSISR.self)
