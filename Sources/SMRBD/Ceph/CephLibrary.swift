import CRBD
import SMCore

/// librbd's and librados' functions, called as `ceph.rbd_open(...)`: the table `sm_ceph_load`
/// fills with dlopen and dlsym (Sources/CRBD/include/CRBD.h). Nothing links the libraries, so a
/// call that never reaches the cluster (--help, a refused argument) does not load them; that was
/// 11 of RBDSR's 12 ms at every start (Docs/performance.md). Every call goes through a
/// `CephSession`, whose `init` loads them first (`CephLibrary.load()`).
var ceph: sm_ceph_api { sm_ceph_functions().pointee }

enum CephLibrary {
    /// Loads librados and librbd once per process; EIO with the loader's reason when either is
    /// missing or lacks a function SMRBD calls.
    static func load() throws(StorageError) {
        if let failure = sm_ceph_load() {
            throw .io(
                "cannot load Ceph's client libraries (\(SM_LIBRADOS_SONAME), \(SM_LIBRBD_SONAME): packages librados2, "
                    + "librbd1): \(String(cString: failure))")
        }
    }
}
