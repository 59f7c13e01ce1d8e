// lock-util: the NFS-safe persistent lock (LOCK-UTIL.md); the command line is the LockUtility module.
import LockUtility

LockUtilityMain.run()
