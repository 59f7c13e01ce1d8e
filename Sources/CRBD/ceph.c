#include "CRBD.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static struct sm_ceph_api table;
static const char *failure;
static char reason[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/// dlerror's string lives only until its next call: kept here.
static void failed(void) {
    const char *error = dlerror();
    snprintf(reason, sizeof reason, "%s", error ? error : "dlopen failed, no reason given");
    failure = reason;
}

static void load(void) {
    // RTLD_GLOBAL, as when the libraries were linked: what Ceph loads itself resolves against them.
    (void)dlerror();
    if (!dlopen(SM_LIBRADOS_SONAME, RTLD_NOW | RTLD_GLOBAL)) {
        failed();
        return;
    }
    void *rbd = dlopen(SM_LIBRBD_SONAME, RTLD_NOW | RTLD_GLOBAL);
    if (!rbd) {
        failed();
        return;
    }
    void *address;
#define SM_CEPH_BIND(name)                                       \
    if (!(address = dlsym(rbd, #name))) {                        \
        failure = "librbd/librados have no function " #name;    \
        return;                                                  \
    }                                                            \
    table.name = (__typeof__(name) *)address;
    SM_CEPH_FUNCTIONS(SM_CEPH_BIND)
#undef SM_CEPH_BIND
}

const char *sm_ceph_load(void) {
    pthread_once(&once, load);
    return failure;
}

const struct sm_ceph_api *sm_ceph_functions(void) { return &table; }
