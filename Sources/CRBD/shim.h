// librbd-dev and librados-dev: Ceph's client libraries, loaded only by RBDSR (through SMRBD).
#include <rados/librados.h>
#include <rbd/librbd.h>
