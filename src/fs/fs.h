/* fs: the FUSE half of `hermes mount LOCALDIR MOUNTPOINT DEST`.
 *
 * A passthrough mount of a backing directory (LOCALDIR): every operation is
 * done on the backing directory, at local-disk speed, and every change that
 * succeeds is reported to an observer (the sync engine). The mount root also
 * holds a virtual directory ".hermes" whose files are produced by callbacks
 * (status, flush barrier, commands); it hides a real LOCALDIR/.hermes.
 *
 * Built on the libfuse3 low-level API, multithreaded. Each inode the kernel
 * knows holds an O_PATH descriptor of its backing file (so renames of
 * directories never break open handles), so a mount of N known files needs
 * about N descriptors: fs_run raises RLIMIT_NOFILE to its hard limit.
 *
 * Caching: writeback cache, kernel attribute/entry caching for
 * fs_options.cache_timeout seconds, page cache kept across opens. This is
 * correct as long as LOCALDIR is changed only through the mount; a change
 * made behind the mount's back (by another program writing LOCALDIR) may not
 * be seen through the mount until the cache times out, and for file data
 * already cached, until the file's pages are evicted. Call fs_invalidate()
 * after writing LOCALDIR directly.
 *
 * Ownership and permissions: the kernel checks permissions against the
 * backing files' modes (default_permissions); files are created with the
 * daemon's uid/gid, as on any passthrough mount. Worker threads use a private
 * umask of 0 (the kernel applies the caller's umask), set with
 * unshare(CLONE_FS) on each worker thread, so the rest of the process keeps
 * its umask and working directory.
 */
#ifndef HERMES_FS_H
#define HERMES_FS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Change notifications, called from FUSE worker threads (possibly several at
 * once) right after an operation succeeded on the backing directory. Paths
 * are relative to the backing root, '/'-separated, never starting with '/',
 * never inside the virtual ".hermes" directory.
 *
 * Details of the contract:
 *  - changed: create/mknod/mkdir/symlink/link (the new name), setattr (chmod,
 *    chown, truncate, utimens), open with O_TRUNC for writing, setxattr and
 *    removexattr, fallocate, copy_file_range (destination). For data written
 *    with write(): on the first write reaching a handle after its open (or
 *    after its last flush), and again on flush/release of a handle written
 *    since; so once close() has returned, the data is on the backing disk and
 *    changed() has been called after it. With the writeback cache, writes
 *    through mmap reach the mount later (msync, munmap+close, or the kernel's
 *    writeback), and are reported when they do.
 *  - A path with several hard links is reported under one of its names.
 *  - RENAME_EXCHANGE is reported as changed(a) and changed(b) (both may be
 *    directories: their whole subtrees moved).
 *  - A file already unlinked (still open) is not reported, nor are changes
 *    to the attributes of the root directory itself (it has no name).
 *  - A path longer than PATH_MAX cannot be named and is not reported (a
 *    warning is logged once).
 *  - Callbacks must be thread-safe and should not block: the FUSE request
 *    that triggered them waits for their return. Any may be NULL.
 */
struct fs_observer {
	void (*changed)(void *ctx, const char *path);            /* created, written, truncated, chmod/utimens, symlink, mkdir, link */
	void (*removed)(void *ctx, const char *path);            /* unlink, rmdir */
	void (*renamed)(void *ctx, const char *from, const char *to);
	void *ctx;
};

/* A virtual file under MOUNTPOINT/.hermes/ (the directory exists only in
 * the mount, not on disk). Its content is produced when it is opened, by
 * open_fn, which may block (e.g. .hermes/flush waits for the sync); the
 * bytes are then served to reads of that open file. A write_fn, if set,
 * receives what was written to the file when it is closed (flush/release),
 * and its non-zero -errno return becomes the close() error.
 *
 * Details: open_fn is called only for opens that can read (O_RDONLY,
 * O_RDWR); a NULL open_fn gives empty content. Writes are appended to a
 * per-open buffer whatever their offset; each close() of a descriptor of
 * that open file (flush) hands the bytes written since the last one to
 * write_fn. Without write_fn the file is mode 0444 and opening it for
 * writing fails with EACCES. Names must be single path components. The
 * structures (and name) must stay valid while fs_run runs.
 */
struct fs_vfile {
	const char *name;                                          /* e.g. "sync", "flush" */
	int (*open_fn)(void *ctx, struct buf *content);            /* 0 or -errno */
	int (*write_fn)(void *ctx, const void *data, size_t len);  /* NULL: read-only */
	void *ctx;
};

struct fs_options {
	const char *backing;    /* LOCALDIR */
	const char *mountpoint;
	bool foreground;
	bool debug;
	const char *fuse_opts;  /* comma-separated -o options passed to FUSE (allow_other, ...) or NULL */
	struct fs_observer observer;
	const struct fs_vfile *vfiles;
	size_t nvfiles;
	/* Seconds the kernel may cache attributes, names and missing names;
	 * 0 means the default, FS_DEFAULT_CACHE_TIMEOUT. */
	double cache_timeout;
};

#define FS_DEFAULT_CACHE_TIMEOUT 5.0
#define FS_VIRTUAL_DIR ".hermes"

/* Mount and serve until unmounted (fusermount3 -u, or fs_request_exit).
 * Returns 0 or -errno; errors are described in err (struct buf, see src/common/buf.h) naming the path.
 * One mount per process at a time. fs_run installs no signal handlers: a
 * caller that wants SIGINT/SIGTERM to unmount calls fs_request_exit from its
 * handler. With foreground false, the process daemonizes (fork, setsid,
 * chdir /, stdio to /dev/null) once the mount is up: call it before starting
 * other threads. */
int fs_run(const struct fs_options *o, struct buf *err);

/* async-signal-safe: ends fs_run after pending requests. Requests being
 * served complete; the mount is then detached (lazily: processes with open
 * files get ENOTCONN). A call before or during fs_run's setup makes it
 * return right after mounting. */
void fs_request_exit(void);

/* Drop what the kernel caches for PATH (relative to the backing root):
 * its name, attributes and data pages. For a caller that changed LOCALDIR
 * directly while mounted. Returns 0 (also when the kernel knew nothing of
 * PATH), -ENOTCONN when no mount is being served, or -errno. Thread-safe;
 * not from a FUSE callback (observer/vfile) of the same mount. */
int fs_invalidate(const char *path);

#endif
