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
 * already cached, until the file's pages are evicted.
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
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

/* Change notifications, called from FUSE worker threads (possibly several at
 * once) right after an operation succeeded on the backing directory. Paths
 * are relative to the backing root, '/'-separated, never starting with '/',
 * never inside the virtual ".hermes" directory.
 *
 * Details of the contract:
 *  - changed: mknod/mkdir/symlink/link (the new name), setattr (chmod,
 *    chown, truncate, utimens) without a handle, setxattr and removexattr.
 *    Through an open handle -- a file made by create(), an open with
 *    O_TRUNC, write(), fallocate, copy_file_range (destination), times set
 *    by the writeback cache -- once, when the handle is flushed (close),
 *    fsynced or released, not while it is being written (a report makes the
 *    sync read the file: a file still being written would be sent again and
 *    again). So once close() or fsync() has returned, the data is on the
 *    backing disk and changed() has been called after it. With the
 *    writeback cache, writes through mmap reach the mount later (msync,
 *    munmap+close, or the kernel's writeback), and are reported at the
 *    release that follows. A file held open and written but never closed
 *    nor fsynced is not reported until it is.
 *  - written: instead of changed() for a handle whose only changes were
 *    write()s (the kernel's writeback of cached pages, mmap'ed ones too,
 *    comes through write() as well): the bounding byte range [off, off+len)
 *    of what was written through that handle since its last report, at the
 *    same moments (close, fsync, release, fs_report_open_files). len 0: only
 *    the times changed; len reaching UINT64_MAX: from off to wherever the
 *    file ends (O_APPEND writes without the writeback cache). A handle
 *    opened with O_TRUNC or made by create(), or that saw a fallocate or a
 *    copy_file_range, reports changed() instead (ftruncate is reported at
 *    once, as changed()). With written NULL, changed() is called.
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
	void (*written)(void *ctx, const char *path, uint64_t off, uint64_t len); /* bytes written through a handle */
	void (*removed)(void *ctx, const char *path);            /* unlink, rmdir */
	void (*renamed)(void *ctx, const char *from, const char *to);
	void *ctx;
};

/* The virtual tree under MOUNTPOINT/.hermes/ (the directory exists only in
 * the mount, not on disk). Its content comes from providers: a static layer
 * (struct fs_vfile, files made at open) and any number of struct fs_vops
 * (nested, dynamic directories, streaming reads, blocking closes).
 *
 * vpath: a path relative to .hermes, '/'-separated, no leading or trailing
 * '/': "" is .hermes itself, "out/stdout", "jobs/12/status". The fs answers
 * for "" itself (a directory listing the names of every provider). Any other
 * vpath belongs to the first provider (static files first, then vops in
 * order) whose stat() does not return -ENOENT; a directory's listing comes
 * from its owner alone.
 *
 * Inodes: each vpath keeps one inode number while the mount lives (a table
 * vpath -> inode, grown as vpaths are looked up; ~100 bytes each). Nothing
 * under .hermes is cached by the kernel (entry and attribute timeouts 0, no
 * negative entries), so names may come and go at any time. Files are served
 * with direct_io: reads go to the provider whatever size stat() said.
 */

/* Attributes of a vpath. size 0 means unknown (reads decide where EOF is).
 * mtime {0, 0}: for a file, the time the mount started; for a directory,
 * the time its names were last seen to change (the kernel keeps a listing
 * until the directory's mtime changes, so a provider that sets a directory's
 * mtime itself must move it whenever names come or go). Owner: the daemon's
 * uid. */
struct fs_vstat {
	bool dir;
	mode_t perm;            /* e.g. 0444, 0644, 0200, 0755 */
	uint64_t size;
	struct timespec mtime;
};

/* Names of a directory being listed (opaque; filled by fs_vops.list). */
struct fs_vnames;
/* Add NAME (a single path component, copied): 0, -ENOMEM or -EINVAL. */
int fs_vnames_add(struct fs_vnames *names, const char *name);

/* A provider of part of the virtual tree. Every callback may be called from
 * several FUSE threads at once, and must not block for long except open;
 * what may take a while is signalled with -EAGAIN ("not yet"), then:
 *
 *   - the request is parked: no FUSE thread waits on it, the caller's
 *     read() or close() blocks (a read of a descriptor in O_NONBLOCK mode
 *     fails with EAGAIN instead, and is not retried);
 *   - it is retried (the same callback, same arguments) after each
 *     fs_vwake() and about every second;
 *   - a signal to the caller (Ctrl-C) ends it at once with EINTR; the
 *     provider is not told (a flush that never completed is visible to it
 *     at release);
 *   - when the mount ends (fs_request_exit, the connection closed), every
 *     parked request fails with ENOTCONN.
 *
 * Callbacks (ctx is fs_vops.ctx; fh is what open stored):
 *   stat     0 and *st, or -ENOENT (not this provider's), or -errno.
 *   list     the names in directory vpath (without "." and ".."): 0 or -errno.
 *   open     flags are open(2)'s (O_ACCMODE, O_TRUNC, ...): 0 and *fh, or
 *            -errno (e.g. -EACCES for a write open of a read-only file).
 *            May block, but holds a FUSE worker meanwhile (open is never
 *            parked): keep it short.
 *   read     bytes copied into buf (at most size) at offset off; 0 is end of
 *            file; -EAGAIN: nothing yet, park; or -errno.
 *   write    bytes taken (size unless an error), or -errno (-EAGAIN is not
 *            special here: it reaches the writer as EAGAIN). NULL: read-only.
 *   flush    each close() of a descriptor of the open file (dup'ed ones
 *            too); its -errno becomes close()'s error; -EAGAIN: park (so
 *            close() waits, e.g. for a flush barrier and then the job
 *            accepted): the provider starts such work once (on another
 *            thread), keeps its progress in fh, and answers -EAGAIN until
 *            it is done. May be NULL (close() succeeds).
 *   release  the open file is gone (last close, or the mount ending with
 *            it still open): free fh. Must not block. May be NULL.
 * stat, list and open are required; read may be NULL for write-only files.
 * fs_run copies the struct; ctx must stay valid while fs_run runs.
 */
struct fs_vops {
	int (*stat)(void *ctx, const char *vpath, struct fs_vstat *st);
	int (*list)(void *ctx, const char *vpath, struct fs_vnames *names);
	int (*open)(void *ctx, const char *vpath, int flags, void **fh);
	ssize_t (*read)(void *ctx, void *fh, char *buf, size_t size, off_t off);
	ssize_t (*write)(void *ctx, void *fh, const char *buf, size_t size, off_t off);
	int (*flush)(void *ctx, void *fh);
	void (*release)(void *ctx, void *fh);
	void *ctx;
};

/* Any thread (not a signal handler): retry now every request parked on
 * -EAGAIN (call it when a provider has new data or a new state). Cheap when
 * nothing is parked; a no-op when no mount is served. */
void fs_vwake(void);

/* The static layer: a file directly under .hermes whose content is produced
 * when it is opened, by open_fn, which may block (e.g. .hermes/flush waits
 * for the sync); the bytes are then served to reads of that open file. A
 * write_fn, if set, receives what was written to the file when it is closed
 * (flush/release), and its non-zero -errno return becomes the close() error.
 *
 * Details: open_fn is called only for opens that can read (O_RDONLY,
 * O_RDWR); a NULL open_fn gives empty content. Writes are appended to a
 * per-open buffer whatever their offset; each close() of a descriptor of
 * that open file (flush) hands the bytes written since the last one to
 * write_fn. Without write_fn the file is mode 0444 and opening it for
 * writing fails with EACCES. Names must be single path components. The
 * structures (and name) must stay valid while fs_run runs.
 *
 * slow: open_fn may block for long (a flush barrier). It then runs on a
 * thread of its own: open returns at once, and reads wait (parked, see
 * fs_vops) until it has returned; its error is then the read's. So a
 * signal ends the wait (EINTR) and holds no FUSE thread, however many wait.
 * open_fn still runs to its end; fs_run returns only after every open_fn
 * still running has returned.
 */
struct fs_vfile {
	const char *name;                                          /* e.g. "sync", "flush" */
	int (*open_fn)(void *ctx, struct buf *content);            /* 0 or -errno */
	int (*write_fn)(void *ctx, const void *data, size_t len);  /* NULL: read-only */
	void *ctx;
	bool slow;
};

struct fs_options {
	const char *backing;    /* LOCALDIR */
	const char *mountpoint;
	bool foreground;
	bool debug;
	const char *fuse_opts;  /* comma-separated -o options passed to FUSE (allow_other, ...) or NULL */
	struct fs_observer observer;
	const struct fs_vfile *vfiles;  /* static files directly under .hermes */
	size_t nvfiles;
	const struct fs_vops *vops;     /* providers of the rest of .hermes, in order */
	size_t nvops;
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

/* For a flush barrier: report (observer changed() or written()) every file still open
 * with data written since its last report, after having the kernel write
 * back what its cache holds of them. So a barrier taken after this covers
 * files an editor or a build keeps open. Thread-safe; a no-op when no mount
 * is being served. From a vfile's open_fn, not from an observer callback. */
void fs_report_open_files(void);

#endif
