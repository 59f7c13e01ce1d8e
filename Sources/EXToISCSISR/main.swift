import SMCore

DriverMain.run(EXToISCSISR.self)
