import SMCore
import SMRBD

#if canImport(Glibc)
    import Glibc
#endif

// As `DriverMain.run`, but the process ends with `_exit` once the verb has answered: by then every
// image is closed (watches and exclusive locks released), and what `rados_shutdown` and `exit`
// would still do (join librados' threads, free its maps, run libceph-common's static destructors)
// is several milliseconds of every verb that change nothing outside this process
// (`CephSession.leaveConnectionToProcessExit`). The answer is written through unbuffered
// descriptors; stdio is flushed all the same.
signal(SIGPIPE, SIG_IGN)
CephSession.leaveConnectionToProcessExit = true
let status = DriverMain.execute(RBDSR.self, arguments: Array(CommandLine.arguments.dropFirst()))
fflush(nil)
_exit(status)
