/* fsops: file-system building blocks of the agent, safe to use from any
 * thread: confined path resolution, a one-entry parent directory cache,
 * and temp file names.
 *
 * open_beneath() resolves a relative path beneath root_fd with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): no "..",
 * no absolute path and no symlink, final component included, can lead it
 * outside. A dircache belongs to one thread.
 */
#ifndef HERMES_FSOPS_H
#define HERMES_FSOPS_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* fd or -errno; O_CLOEXEC is added. Falls back to open_beneath_walk where
 * the kernel has no openat2. */
int open_beneath(int root_fd, const char *path, int flags);
/* The same confinement without openat2: one openat(O_NOFOLLOW) per path
 * component, so neither "..", nor a symlink, final one included, is ever
 * followed. A symlink in the middle gives -ELOOP, at the end whatever
 * openat(O_NOFOLLOW) gives for `flags` (-ELOOP, or an O_PATH fd of the link
 * itself with O_PATH and no O_DIRECTORY). */
int open_beneath_walk(int root_fd, const char *path, int flags);

struct dircache {
	int fd; /* -1 when empty; never root_fd */
	unsigned gen; /* dircache_generation when filled */
	char path[PATH_MAX];
};
/* A directory was removed: every cache (all threads) refills. */
void dircache_invalidate_all(void);
void dircache_init(struct dircache *dc);
void dircache_drop(struct dircache *dc);
/* The directory holding path (borrowed fd, valid until the next call or
 * drop), and its last component in *base. Returns the fd or -errno. */
int dircache_parent(struct dircache *dc, int root_fd, const char *path, const char **base);

/* Temp names: AGENT_TMP_PREFIX, a random per-session base, a counter. */
struct tmpnames {
	uint32_t base;
	atomic_uint seq;
};
int tmpnames_init(struct tmpnames *t);
/* Create a fresh temp name in dirfd with create(dirfd, name, arg), which
 * returns >= 0 or -errno; -EEXIST makes it try another name. */
int make_temp(struct tmpnames *t, int dirfd, char name[64],
	      int (*create)(int dirfd, const char *name, void *arg), void *arg);

/* utimensat/futimens argument setting mtime (atime untouched). */
void mtime_spec(struct timespec ts[2], int64_t mtime_ns);

#endif
