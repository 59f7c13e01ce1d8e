// The declarations of liblvm2cmd only: SMLVM loads the library with dlopen (LVM2Library.swift),
// so nothing links it. liblvm2-dev ships no pkg-config file.
#include <lvm2cmd.h>
