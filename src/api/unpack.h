/* unpack: a code archive into a job's workspace, and confined opens in it.
 *
 * unpack_archive reads a tar (plain, gzip or zstd; detected from the bytes)
 * and creates its entries beneath root_fd. It refuses, with one line in err
 * naming the entry: absolute names, "..", names path_check rejects, hard
 * links, devices, FIFOs and sockets, symlinks whose target is absolute or
 * climbs above the workspace, more than max_bytes in all (content plus 512
 * bytes per entry, so masses of empty files are bounded too). Every
 * path component is opened with O_NOFOLLOW beneath root_fd, so no entry can
 * be written through a symlink another entry made. Setuid/setgid bits are
 * dropped. On error the workspace holds a partial tree the caller removes.
 * Returns 0, -EINVAL (refused entry), -EFBIG (over max_bytes), -EIO
 * (not an archive, or a malformed one).
 */
#ifndef HERMES_API_UNPACK_H
#define HERMES_API_UNPACK_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

int unpack_archive(const char *archive_path, int root_fd, uint64_t max_bytes, struct buf *err);

/* Open the path_check-valid `path` beneath root_fd, never following a
 * symlink in any component; flags apply to the last one. fd or -errno. */
int open_beneath(int root_fd, const char *path, int flags, mode_t mode);

/* Remove dir and everything in it (no symlink is followed). 0 or -errno. */
int remove_tree(const char *dir);

#endif
