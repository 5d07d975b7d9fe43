/* fs.c: fs_run and fs_request_exit.
 *
 * Exit: fs_request_exit (a signal handler, maybe) only writes a byte to a
 * pipe. A watcher thread wakes on it, marks the session exited and pokes the
 * mount with a forced stat, so that a worker blocked reading /dev/fuse gets
 * a request, serves it and sees the mark; libfuse's loop then returns, and
 * fs_run unmounts. (fuse_session_exit alone wakes nobody: the signal may
 * land in any thread, not in the loop's sem_wait.)
 *
 * A poke may itself be read by a worker that libfuse is already stopping,
 * which drops it unanswered: the watcher's stat then waits until the
 * /dev/fuse descriptor closes. So the watcher is only told to stop (under
 * its lock, after which it no longer touches the session) when the loop
 * ends, and is joined after fuse_session_destroy, which closes the
 * descriptor and so ends any stat still waiting.
 */
#include "hfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Workers: enough that virtual files blocking in open_fn (a flush waiting
 * for the sync) leave others to serve the mount. */
#define HFS_MAX_THREADS 16

static pthread_once_t hfs_pipe_once = PTHREAD_ONCE_INIT;
static int hfs_pipe[2] = { -1, -1 };     /* never closed: a signal may write */
static atomic_int hfs_wake_fd = -1;      /* hfs_pipe[1] once created */
static atomic_bool hfs_exit_requested;
/* The mount being served (for fs_report_open_files), or NULL. */
static _Atomic(struct hfs *) hfs_serving;

void fs_report_open_files(void)
{
	struct hfs *h = atomic_load(&hfs_serving);
	if (h)
		hfs_report_open_files(h);
}

void fs_request_exit(void)
{
	int saved = errno;
	int fd = atomic_load(&hfs_wake_fd);

	atomic_store(&hfs_exit_requested, true);
	if (fd >= 0) {
		ssize_t n = write(fd, "x", 1);
		(void)n; /* a full pipe is already a pending wake-up */
	}
	errno = saved;
}

static void hfs_pipe_create(void)
{
	if (pipe2(hfs_pipe, O_CLOEXEC | O_NONBLOCK) == 0)
		atomic_store(&hfs_wake_fd, hfs_pipe[1]);
}

static void hfs_pipe_drain(void)
{
	char b[64];

	while (read(hfs_pipe[0], b, sizeof(b)) > 0)
		;
}

struct hfs_watch {
	struct hfs *h;
	pthread_t tid;
	bool started;
	pthread_mutex_t lock;
	bool stopping; /* protected by lock: the loop is over, leave h->se alone */
};

/* Mark the session exited unless the loop is over; true if a poke is due. */
static bool hfs_watch_mark(struct hfs_watch *w, bool *stop)
{
	bool poke = false;

	pthread_mutex_lock(&w->lock);
	*stop = w->stopping;
	if (!*stop && atomic_load(&hfs_exit_requested)) {
		fuse_session_exit(w->h->se);
		poke = true;
	}
	pthread_mutex_unlock(&w->lock);
	return poke;
}

static void *hfs_watcher(void *arg)
{
	struct hfs_watch *w = arg;
	struct statx stx;
	bool stop = false;

	while (!stop) {
		struct pollfd p = { .fd = hfs_pipe[0], .events = POLLIN };
		bool exiting = atomic_load(&hfs_exit_requested);
		/* Once exiting, poke every 100 ms until the loop has ended. */
		int rc = poll(&p, 1, exiting ? 100 : -1);
		if (rc < 0 && errno != EINTR)
			break;
		hfs_pipe_drain();
		if (hfs_watch_mark(w, &stop))
			statx(AT_FDCWD, w->h->mountpoint, AT_STATX_FORCE_SYNC,
			      STATX_BASIC_STATS, &stx);
	}
	return NULL;
}

static int hfs_watch_start(struct hfs_watch *w, struct hfs *h)
{
	sigset_t all, old;

	w->h = h;
	pthread_mutex_init(&w->lock, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&w->tid, NULL, hfs_watcher, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	w->started = rc == 0;
	return -rc;
}

/* The loop is over: from now on the watcher leaves the session alone. */
static void hfs_watch_stop(struct hfs_watch *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_mutex_unlock(&w->lock);
	ssize_t n = write(hfs_pipe[1], "q", 1);
	(void)n;
}

/* After fuse_session_destroy: no poke can still be waiting. */
static void hfs_watch_join(struct hfs_watch *w)
{
	if (!w->started)
		return;
	pthread_join(w->tid, NULL);
	pthread_mutex_destroy(&w->lock);
	w->started = false;
}

/* realpath of a directory, with the error named. */
static int hfs_real_dir(const char *what, const char *path, char **out, struct buf *err)
{
	struct stat st;

	*out = realpath(path, NULL);
	if (!*out) {
		int e = errno;
		if (e == ENOTCONN)
			buf_printf(err, "%s %s: %s (a stale mount? try fusermount3 -u %s)",
				   what, path, strerror(e), path);
		else
			buf_printf(err, "%s %s: %s", what, path, strerror(e));
		return -e;
	}
	if (stat(*out, &st)) {
		int e = errno;
		buf_printf(err, "%s %s: %s", what, path, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		buf_printf(err, "%s %s: %s", what, path, strerror(ENOTDIR));
		return -ENOTDIR;
	}
	return 0;
}

static bool hfs_is_under(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	if (n == 1)
		return path[1] != '\0'; /* under "/" */
	return !strncmp(path, dir, n) && path[n] == '/';
}

static int hfs_check_paths(struct hfs *h, const struct fs_options *o, struct buf *err)
{
	int rc = hfs_real_dir("directory", o->backing, &h->backing, err);
	if (rc)
		return rc;
	h->backing_len = strlen(h->backing);
	rc = hfs_real_dir("mount point", o->mountpoint, &h->mountpoint, err);
	if (rc)
		return rc;
	if (hfs_is_under(h->backing, h->mountpoint)) {
		buf_printf(err, "mount point %s is inside the directory it would show (%s)",
			   o->mountpoint, o->backing);
		return -EINVAL;
	}
	return 0;
}

static int hfs_setup(struct hfs *h, const struct fs_options *o, struct buf *err)
{
	struct stat st;

	int rc = hfs_check_paths(h, o, err);
	if (rc)
		return rc;
	h->root.fd = open(h->backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (h->root.fd < 0 || fstat(h->root.fd, &st)) {
		rc = -errno;
		buf_printf(err, "directory %s: %s", o->backing, strerror(-rc));
		return rc;
	}
	h->root.kind = HFS_REAL;
	h->root.dev = st.st_dev;
	h->root.ino = st.st_ino;
	h->root.refs = 1;
	rc = hfs_vinit(h, o, err);
	if (rc)
		return rc;
	rc = hfs_table_init(&h->table);
	if (rc) {
		buf_printf(err, "mounting %s: %s", o->mountpoint, strerror(-rc));
		return rc;
	}
	h->obs = o->observer;
	h->timeout = o->cache_timeout > 0 ? o->cache_timeout : FS_DEFAULT_CACHE_TIMEOUT;
	h->debug = o->debug;
	h->uid = getuid();
	h->gid = getgid();
	clock_gettime(CLOCK_REALTIME, &h->started);
	return 0;
}

/* Files still open when the mount ends get no release: close them here
 * (the inodes they hold go with the table). */
static void hfs_close_open_files(struct hfs *h)
{
	while (h->files) {
		struct hfs_file *f = h->files;
		h->files = f->next;
		close(f->fd);
		free(f);
	}
}

static void hfs_teardown(struct hfs *h)
{
	hfs_close_open_files(h);
	if (h->table.slots)
		hfs_table_destroy(&h->table);
	if (h->root.fd >= 0)
		close(h->root.fd);
	hfs_vdestroy(h);
	free(h->backing);
	free(h->mountpoint);
	pthread_mutex_destroy(&h->files_lock);
}

/* Every known inode holds a descriptor: allow as many as we may. */
static void hfs_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* argv for fuse_session_new: mount options, the user's last. */
static int hfs_build_args(const struct hfs *h, const struct fs_options *o,
			  struct fuse_args *args, struct buf *err)
{
	char *opts = NULL;
	char *fsname = NULL;
	int rc = -ENOMEM;

	if (asprintf(&fsname, "fsname=hermes:%s", h->backing) < 0) {
		fsname = NULL;
		goto out;
	}
	if (fuse_opt_add_opt(&opts, "default_permissions,subtype=hermes") ||
	    fuse_opt_add_opt_escaped(&opts, fsname) ||
	    (o->fuse_opts && o->fuse_opts[0] && fuse_opt_add_opt(&opts, o->fuse_opts)))
		goto out;
	if (fuse_opt_add_arg(args, "hermes") || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, opts) || (o->debug && fuse_opt_add_arg(args, "-d")))
		goto out;
	rc = 0;
out:
	if (rc)
		buf_printf(err, "mounting %s: %s", o->mountpoint, strerror(-rc));
	free(opts);
	free(fsname);
	return rc;
}

/* Serve until unmounted or asked to exit; 0 or -errno. */
static int hfs_serve(struct hfs *h, const struct fs_options *o, struct hfs_watch *w,
		     struct buf *err)
{
	int rc = hfs_watch_start(w, h);
	if (rc) {
		buf_printf(err, "mounting %s: %s", o->mountpoint, strerror(-rc));
		return rc;
	}
	atomic_store(&hfs_serving, h);
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (!cfg) {
		rc = -ENOMEM;
	} else if (!atomic_load(&hfs_exit_requested) && !(rc = hfs_vpark_start())) {
		fuse_loop_cfg_set_max_threads(cfg, HFS_MAX_THREADS);
		rc = fuse_session_loop_mt(h->se, cfg);
		if (rc > 0)
			rc = -rc;
		/* Before the unmount: fail the reads and closes still waiting. */
		hfs_vpark_stop();
	}
	atomic_store(&hfs_serving, NULL);
	hfs_watch_stop(w);
	fuse_loop_cfg_destroy(cfg);
	if (rc)
		buf_printf(err, "serving %s: %s", o->mountpoint, strerror(-rc));
	return rc;
}

/* Kernel read-ahead for the mount, in KiB (matches max_readahead in
 * ops.c's init). The FUSE default (128 KiB) leaves sequential reads well
 * below the disk's speed. Set before init is served: the kernel keeps the
 * smaller of the device's value and init's max_readahead. */
#define HFS_READ_AHEAD_KB "512"

/* Raise the mount's read-ahead through its backing-device entry in sysfs
 * (root only; others keep the default). The mount's device number comes
 * from mountinfo: a stat of the mount point would wait for this very
 * daemon, which is not serving yet. */
static void hfs_raise_readahead(const char *mountpoint)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], dev[64] = "";

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX], devno[64];
		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %63s %*s %4095s", devno, mp) == 2 &&
		    !strcmp(mp, mountpoint) && strstr(line, " - fuse"))
			snprintf(dev, sizeof(dev), "%s", devno); /* the last one wins */
	}
	fclose(f);
	if (!dev[0])
		return;
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, HFS_READ_AHEAD_KB, strlen(HFS_READ_AHEAD_KB)) < 0)
		fuse_log(FUSE_LOG_DEBUG, "hermes: %s: %s\n", path, strerror(errno));
	close(fd);
}

static int hfs_mount(struct hfs *h, const struct fs_options *o, struct fuse_args *args,
		     struct buf *err)
{
	h->se = fuse_session_new(args, &hfs_ops, sizeof(hfs_ops), h);
	if (!h->se) {
		buf_printf(err, "mounting %s: invalid FUSE options \"%s\"", o->mountpoint,
			   o->fuse_opts ? o->fuse_opts : "");
		return -EINVAL;
	}
	if (access("/dev/fuse", R_OK | W_OK)) {
		int e = errno;
		buf_printf(err, "mounting %s: /dev/fuse: %s", o->mountpoint, strerror(e));
		return -e;
	}
	if (fuse_session_mount(h->se, h->mountpoint)) {
		buf_printf(err, "mounting %s: the mount failed (see the message above)",
			   o->mountpoint);
		return -EIO;
	}
	hfs_raise_readahead(h->mountpoint);
	if (!o->foreground && fuse_daemonize(0)) {
		buf_printf(err, "mounting %s: cannot go to the background", o->mountpoint);
		fuse_session_unmount(h->se);
		return -ECHILD;
	}
	return 0;
}

int fs_run(const struct fs_options *o, struct buf *err)
{
	struct hfs h = { .root.fd = -1 };
	struct hfs_watch w = { 0 };
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	int rc;

	if (!o || !o->backing || !o->mountpoint || (o->nvfiles && !o->vfiles)) {
		buf_printf(err, "fs_run: missing directory or mount point");
		return -EINVAL;
	}
	pthread_once(&hfs_pipe_once, hfs_pipe_create);
	if (atomic_load(&hfs_wake_fd) < 0) {
		buf_printf(err, "mounting %s: cannot create a pipe", o->mountpoint);
		return -EMFILE;
	}
	hfs_pipe_drain();
	hfs_raise_nofile();
	pthread_mutex_init(&h.files_lock, NULL);
	rc = hfs_setup(&h, o, err);
	if (!rc)
		rc = hfs_build_args(&h, o, &args, err);
	if (!rc)
		rc = hfs_mount(&h, o, &args, err);
	if (!rc) {
		rc = hfs_serve(&h, o, &w, err);
		fuse_session_unmount(h.se);
	}
	if (h.se)
		fuse_session_destroy(h.se);
	hfs_watch_join(&w);
	fuse_opt_free_args(&args);
	hfs_teardown(&h);
	atomic_store(&hfs_exit_requested, false);
	return rc;
}
