// lock-util: arrives with the persistent-lock issue.
import SMCore
#if canImport(Glibc)
import Glibc
#endif

Diagnostics.writeStandardError("lock-util: not implemented yet\n")
exit(38)
