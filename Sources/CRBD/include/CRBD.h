// librbd and librados (librbd-dev, librados-dev): their declarations, and a table of the
// functions SMRBD calls, filled by sm_ceph_load() with dlopen and dlsym. Nothing links the
// libraries: they and the thirty-odd libraries they need (libceph-common, Boost, ...) cost RBDSR
// about 11 ms at every start, and --help, a refused argument or a verb answered without the
// cluster never call Ceph (Docs/performance.md). Each field has the type of the function it
// holds, taken from the library's own header (__typeof__), so a call through the table is checked
// as a direct call is.
#ifndef SM_CRBD_H
#define SM_CRBD_H

#include <rados/librados.h>
#include <rbd/librbd.h>

/// The sonames this was built against (Debian 12: librados2, librbd1); the package depends on
/// them by name, as dpkg-shlibdeps cannot see a dlopen (Scripts/build-package.sh).
#define SM_LIBRADOS_SONAME "librados.so.2"
#define SM_LIBRBD_SONAME "librbd.so.1"

#define SM_CEPH_FUNCTIONS(F) \
    F(rados_aio_create_completion2) \
    F(rados_aio_get_return_value) \
    F(rados_aio_read_op_operate) \
    F(rados_aio_release) \
    F(rados_aio_stat) \
    F(rados_aio_wait_for_complete) \
    F(rados_aio_write_op_operate) \
    F(rados_break_lock) \
    F(rados_buffer_free) \
    F(rados_conf_get) \
    F(rados_conf_read_file) \
    F(rados_conf_set) \
    F(rados_connect) \
    F(rados_create) \
    F(rados_create_read_op) \
    F(rados_create_write_op) \
    F(rados_ioctx_create) \
    F(rados_ioctx_destroy) \
    F(rados_ioctx_set_namespace) \
    F(rados_list_lockers) \
    F(rados_lock_exclusive) \
    F(rados_mon_command) \
    F(rados_omap_get_end) \
    F(rados_omap_get_next2) \
    F(rados_read) \
    F(rados_read_op_omap_get_vals2) \
    F(rados_read_op_omap_get_vals_by_keys2) \
    F(rados_read_op_operate) \
    F(rados_read_op_read) \
    F(rados_release_read_op) \
    F(rados_release_write_op) \
    F(rados_remove) \
    F(rados_shutdown) \
    F(rados_write_full) \
    F(rados_write_op_omap_rm_keys2) \
    F(rados_write_op_omap_set2) \
    F(rados_write_op_operate) \
    F(rbd_clone3) \
    F(rbd_close) \
    F(rbd_create4) \
    F(rbd_diff_iterate2) \
    F(rbd_get_id) \
    F(rbd_get_parent) \
    F(rbd_get_size) \
    F(rbd_image_options_create) \
    F(rbd_image_options_destroy) \
    F(rbd_image_options_set_uint64) \
    F(rbd_image_spec_list_cleanup) \
    F(rbd_linked_image_spec_cleanup) \
    F(rbd_linked_image_spec_list_cleanup) \
    F(rbd_list2) \
    F(rbd_list_children3) \
    F(rbd_lock_acquire) \
    F(rbd_lock_get_owners) \
    F(rbd_lock_get_owners_cleanup) \
    F(rbd_metadata_get) \
    F(rbd_metadata_list) \
    F(rbd_metadata_remove) \
    F(rbd_metadata_set) \
    F(rbd_namespace_create) \
    F(rbd_namespace_exists) \
    F(rbd_namespace_remove) \
    F(rbd_open) \
    F(rbd_open_read_only) \
    F(rbd_remove) \
    F(rbd_resize) \
    F(rbd_snap_create) \
    F(rbd_snap_is_protected) \
    F(rbd_snap_list) \
    F(rbd_snap_list_end) \
    F(rbd_snap_protect) \
    F(rbd_snap_remove) \
    F(rbd_snap_set) \
    F(rbd_snap_spec_cleanup) \
    F(rbd_snap_unprotect) \
    F(rbd_watchers_list) \
    F(rbd_watchers_list_cleanup)

/// One field per function, named as the function.
struct sm_ceph_api {
#define SM_CEPH_FIELD(name) __typeof__(name) *_Nonnull name;
    SM_CEPH_FUNCTIONS(SM_CEPH_FIELD)
#undef SM_CEPH_FIELD
};

/// Loads both libraries (RTLD_NOW: a missing symbol is found here, not in the middle of a verb)
/// and fills the table; once per process, never unloaded. NULL when loaded, else why not (a
/// static string or dlerror's; the same answer at every call).
const char *_Nullable sm_ceph_load(void);

/// The table; its fields are valid only after sm_ceph_load() answered NULL.
const struct sm_ceph_api *_Nonnull sm_ceph_functions(void);

#endif
