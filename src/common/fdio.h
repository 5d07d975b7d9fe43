/* fdio: whole reads and writes on file descriptors (short counts and EINTR
 * handled). Return 0 or -errno. */
#ifndef HERMES_FDIO_H
#define HERMES_FDIO_H

#include <stddef.h>

int write_full(int fd, const void *p, size_t n);

#endif
