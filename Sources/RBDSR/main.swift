import SMCore
import SMRBD

DriverMain.run(RBDSR.self)
