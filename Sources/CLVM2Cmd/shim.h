// liblvm2-dev ships no pkg-config file; the module map links lvm2cmd directly.
#include <lvm2cmd.h>
