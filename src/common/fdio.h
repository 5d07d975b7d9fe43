/* fdio: whole reads and writes on file descriptors and small files (short
 * counts and EINTR handled). Return 0 or -errno. */
#ifndef HERMES_FDIO_H
#define HERMES_FDIO_H

#include <stddef.h>

#include "buf.h"

int write_full(int fd, const void *p, size_t n);
/* Append everything fd has left to b; -EFBIG past max bytes. */
int fd_read_all(int fd, struct buf *b, size_t max);
/* Replace path by p[0..n) atomically (temp file in the same directory,
 * fsync-free rename: readers see the old or the new content, whole). */
int write_file_atomic(const char *path, const void *p, size_t n);

#endif
