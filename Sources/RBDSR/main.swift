import SMRBD

RBDSR.main()
