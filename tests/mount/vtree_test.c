/* vtree_test: the virtual tree under MOUNTPOINT/.hermes, on a real FUSE
 * mount served by fs_run in this process (a thread), with a test provider
 * shaped like the job files of `.hermes/run`:
 *
 *   .hermes/sync          static file (struct fs_vfile), content at open
 *   .hermes/note          static file with a write_fn (error on "bad")
 *   .hermes/slow          static file whose open_fn blocks (slow: like
 *                         .hermes/flush), until the test releases it
 *   .hermes/out/stdout    a stream: data as it arrives, EOF once ended
 *   .hermes/wait          blocks until ended, then reads "done\n"
 *   .hermes/run           write-only; close() waits until accepted, then
 *                         fails with the provider's errno (EBUSY) or not
 *   .hermes/jobs/ID/status directories that come and go
 *
 * Checked through system calls from threads and child processes: listings
 * and stable inode numbers, streaming (bytes before EOF, EOF after the end),
 * blocked reads and closes ended promptly by signals (a handler: EINTR; a
 * fatal SIGINT: the process dies), close() errors, the one-second safety net,
 * 40 parked reads (more than the FUSE threads) with the mount still serving,
 * and fs_request_exit while reads are parked (no hang; they fail). Prints
 * figures: wake-up latency to a parked reader, streaming throughput.
 *
 * Exits 77 (skip) only without /dev/fuse. Needs to be able to mount (root,
 * or fusermount3).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fs.h"

#define WAIT_MS 10000 /* bound of every wait for a condition (slow CI) */
#define PROMPT_MS 3000 /* "promptly": an exit must end a wait in this */
/* A signal must end a parked request well before the 1 s safety-net retry
 * would (which also ends it, at about 950 ms here): this tells the two apart. */
#define INTERRUPT_MS 500

static char mnt[PATH_MAX];
static char backing[PATH_MAX];
static pthread_t fs_thread;
static atomic_bool fs_done;
static int fs_rc;

/* ---- helpers ---------------------------------------------------------- */

static void cleanup(void)
{
	char cmd[PATH_MAX + 64];

	fs_request_exit();
	for (int i = 0; i < 100 && !atomic_load(&fs_done); i++)
		usleep(50 * 1000);
	if (!atomic_load(&fs_done)) {
		/* fs_run is stuck (the defect being reported). Threads of this
		 * process blocked on the mount would keep it from exiting (they
		 * wait for a server that is this process): abort the connection
		 * (umount -f, root only), else at least detach the mount. */
		snprintf(cmd, sizeof(cmd), "fusermount3 -u -z '%s' 2>/dev/null", mnt);
		if (umount2(mnt, MNT_FORCE) && umount2(mnt, MNT_DETACH) && system(cmd)) {
			/* nothing more to do; the test already failed */
		}
		for (int i = 0; i < 100 && !atomic_load(&fs_done); i++)
			usleep(50 * 1000);
	}
	rmdir(mnt);
	rmdir(backing);
	snprintf(cmd, sizeof(cmd), "%s", mnt);
	rmdir(dirname(cmd));
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	cleanup();
	_exit(1);
}

static void step(const char *what)
{
	printf("== %s\n", what);
	fflush(stdout);
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&t, NULL);
}

static const char *vp(const char *rel)
{
	static _Thread_local char p[PATH_MAX + 64];
	if (snprintf(p, sizeof(p), "%s/.hermes/%s", mnt, rel) >= (int)sizeof(p))
		fail("path too long: %s/.hermes/%s", mnt, rel);
	return p;
}

/* The whole content of a mount path (reads until EOF). */
static int slurp(const char *path, char *out, size_t size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, out + len, size - 1 - len);
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	out[len] = '\0';
	close(fd);
	return (int)len;
}

/* ---- the test provider ------------------------------------------------ */

enum tp_file { TP_STDOUT = 1, TP_WAIT, TP_RUN, TP_STATUS };

static struct {
	pthread_mutex_t lock;
	struct buf out;       /* out/stdout so far; protected by lock */
	bool ended;           /* the "job" ended; protected by lock */
	bool accept;          /* run's close may complete; protected by lock */
	int run_result;       /* -errno run's close returns once accepted */
	struct buf run_got;   /* written to run; protected by lock */
	char jobs[4][16];     /* ids of jobs/ID; protected by lock */
	size_t njobs;
	atomic_int wait_reads; /* read calls on wait (to see a reader parked) */
	atomic_int run_flushes;
} tp = { .lock = PTHREAD_MUTEX_INITIALIZER };

static bool tp_job(const char *id)
{
	for (size_t i = 0; i < tp.njobs; i++)
		if (!strcmp(tp.jobs[i], id))
			return true;
	return false;
}

/* What VPATH is: a tp_file, 0 for a directory, -1 for nothing. */
static int tp_kind(const char *vpath)
{
	char id[16];
	int n = 0;

	if (!strcmp(vpath, "out") || !strcmp(vpath, "jobs"))
		return 0;
	if (!strcmp(vpath, "out/stdout"))
		return TP_STDOUT;
	if (!strcmp(vpath, "wait"))
		return TP_WAIT;
	if (!strcmp(vpath, "run"))
		return TP_RUN;
	if (sscanf(vpath, "jobs/%15[0-9]%n", id, &n) == 1) {
		bool known = tp_job(id);
		if (known && !vpath[n])
			return 0;
		if (known && !strcmp(vpath + n, "/status"))
			return TP_STATUS;
	}
	return -1;
}

static int tp_stat(void *ctx, const char *vpath, struct fs_vstat *st)
{
	(void)ctx;
	pthread_mutex_lock(&tp.lock);
	int k = tp_kind(vpath);
	pthread_mutex_unlock(&tp.lock);
	if (k < 0)
		return -ENOENT;
	*st = (struct fs_vstat){ .dir = k == 0, .perm = k == 0 ? 0755 : k == TP_RUN ? 0200 : 0444 };
	if (k == TP_STATUS)
		st->size = 8; /* "running\n" */
	return 0;
}

static int tp_list(void *ctx, const char *vpath, struct fs_vnames *names)
{
	static const char *const top[] = { "out", "jobs", "wait", "run" };
	int rc = 0;

	(void)ctx;
	pthread_mutex_lock(&tp.lock);
	if (!vpath[0]) {
		for (size_t i = 0; i < 4 && !rc; i++)
			rc = fs_vnames_add(names, top[i]);
	} else if (!strcmp(vpath, "out")) {
		rc = fs_vnames_add(names, "stdout");
	} else if (!strcmp(vpath, "jobs")) {
		for (size_t i = 0; i < tp.njobs && !rc; i++)
			rc = fs_vnames_add(names, tp.jobs[i]);
	} else if (tp_kind(vpath) == 0) {
		rc = fs_vnames_add(names, "status");
	} else {
		rc = -ENOTDIR;
	}
	pthread_mutex_unlock(&tp.lock);
	return rc;
}

static int tp_open(void *ctx, const char *vpath, int flags, void **fh)
{
	(void)ctx;
	pthread_mutex_lock(&tp.lock);
	int k = tp_kind(vpath);
	pthread_mutex_unlock(&tp.lock);
	if (k <= 0)
		return k < 0 ? -ENOENT : -EISDIR;
	if ((k == TP_RUN) != ((flags & O_ACCMODE) == O_WRONLY))
		return -EACCES;
	*fh = (void *)(uintptr_t)k;
	return 0;
}

static ssize_t tp_copy(const char *src, size_t len, char *buf, size_t size, off_t off)
{
	if ((size_t)off >= len)
		return 0;
	size_t n = len - (size_t)off < size ? len - (size_t)off : size;
	memcpy(buf, src + off, n);
	return (ssize_t)n;
}

static ssize_t tp_read(void *ctx, void *fh, char *buf, size_t size, off_t off)
{
	ssize_t n;

	(void)ctx;
	pthread_mutex_lock(&tp.lock);
	switch ((uintptr_t)fh) {
	case TP_STDOUT:
		if ((size_t)off < tp.out.len)
			n = tp_copy((const char *)tp.out.data, tp.out.len, buf, size, off);
		else
			n = tp.ended ? 0 : -EAGAIN;
		break;
	case TP_WAIT:
		atomic_fetch_add(&tp.wait_reads, 1);
		n = tp.ended ? tp_copy("done\n", 5, buf, size, off) : -EAGAIN;
		break;
	case TP_STATUS:
		n = tp_copy("running\n", 8, buf, size, off);
		break;
	default:
		n = -EBADF;
	}
	pthread_mutex_unlock(&tp.lock);
	return n;
}

static ssize_t tp_write(void *ctx, void *fh, const char *buf, size_t size, off_t off)
{
	(void)ctx;
	(void)off;
	if ((uintptr_t)fh != TP_RUN)
		return -EBADF;
	pthread_mutex_lock(&tp.lock);
	int rc = buf_append(&tp.run_got, buf, size);
	pthread_mutex_unlock(&tp.lock);
	return rc ? rc : (ssize_t)size;
}

static int tp_flush(void *ctx, void *fh)
{
	(void)ctx;
	if ((uintptr_t)fh != TP_RUN)
		return 0;
	atomic_fetch_add(&tp.run_flushes, 1);
	pthread_mutex_lock(&tp.lock);
	int rc = tp.accept ? tp.run_result : -EAGAIN;
	pthread_mutex_unlock(&tp.lock);
	return rc;
}

/* Change the provider's state, then wake the parked requests. */
static void tp_set(bool ended, bool accept, int run_result, bool wake)
{
	pthread_mutex_lock(&tp.lock);
	tp.ended = ended;
	tp.accept = accept;
	tp.run_result = run_result;
	pthread_mutex_unlock(&tp.lock);
	if (wake)
		fs_vwake();
}

static void tp_output(const char *s)
{
	pthread_mutex_lock(&tp.lock);
	if (buf_append_str(&tp.out, s))
		fail("out of memory");
	pthread_mutex_unlock(&tp.lock);
	fs_vwake();
}

static void tp_jobs(const char *const *ids, size_t n)
{
	pthread_mutex_lock(&tp.lock);
	tp.njobs = n;
	for (size_t i = 0; i < n; i++)
		snprintf(tp.jobs[i], sizeof(tp.jobs[i]), "%s", ids[i]);
	pthread_mutex_unlock(&tp.lock);
}

/* ---- static files ----------------------------------------------------- */

static struct buf note_got;
static pthread_mutex_t note_lock = PTHREAD_MUTEX_INITIALIZER;

static int sync_open(void *ctx, struct buf *content)
{
	(void)ctx;
	return buf_append_str(content, "state: idle\n");
}

static int note_write(void *ctx, const void *data, size_t len)
{
	(void)ctx;
	if (len >= 3 && !memcmp(data, "bad", 3))
		return -EINVAL;
	pthread_mutex_lock(&note_lock);
	int rc = buf_append(&note_got, data, len);
	pthread_mutex_unlock(&note_lock);
	return rc;
}

/* ---- the mount -------------------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool release;      /* protected by lock */
	int rc;            /* what open_fn returns once released; protected by lock */
	atomic_int calls;
} slow = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int slow_open(void *ctx, struct buf *content)
{
	(void)ctx;
	atomic_fetch_add(&slow.calls, 1);
	pthread_mutex_lock(&slow.lock);
	while (!slow.release)
		pthread_cond_wait(&slow.cond, &slow.lock);
	int rc = slow.rc;
	pthread_mutex_unlock(&slow.lock);
	return rc ? rc : buf_append_str(content, "slow done\n");
}

static void slow_set(bool release, int rc)
{
	pthread_mutex_lock(&slow.lock);
	slow.release = release;
	slow.rc = rc;
	pthread_cond_broadcast(&slow.cond);
	pthread_mutex_unlock(&slow.lock);
}

static const struct fs_vfile vfiles[] = {
	{ .name = "sync", .open_fn = sync_open },
	{ .name = "note", .write_fn = note_write },
	{ .name = "slow", .open_fn = slow_open, .slow = true },
};

static const struct fs_vops vops[] = { {
	.stat = tp_stat, .list = tp_list, .open = tp_open, .read = tp_read,
	.write = tp_write, .flush = tp_flush,
} };

static void *fs_main(void *arg)
{
	struct fs_options o = {
		.backing = backing, .mountpoint = mnt, .foreground = true,
		.vfiles = vfiles, .nvfiles = 3, .vops = vops, .nvops = 1,
	};
	struct buf err = BUF_INIT;

	(void)arg;
	fs_rc = fs_run(&o, &err);
	if (fs_rc)
		fprintf(stderr, "fs_run: %.*s\n", (int)err.len, (const char *)err.data);
	buf_free(&err);
	atomic_store(&fs_done, true);
	return NULL;
}

static void mount_up(void)
{
	struct stat st;

	if (pthread_create(&fs_thread, NULL, fs_main, NULL))
		fail("pthread_create");
	for (int64_t t0 = now_ms(); stat(vp(""), &st) != 0; sleep_ms(20)) {
		if (atomic_load(&fs_done))
			fail("fs_run ended before the mount was up (rc %d)", fs_rc);
		if (now_ms() - t0 > WAIT_MS)
			fail("%s did not appear", vp(""));
	}
}

/* ---- checks ----------------------------------------------------------- */

/* The names of a mount directory, sorted and '\n'-separated. */
static void listing(const char *dir, char *out, size_t size)
{
	DIR *d = opendir(dir);
	char *names[64];
	size_t n = 0;

	if (!d)
		fail("opendir %s: %s", dir, strerror(errno));
	for (struct dirent *de; (de = readdir(d)) && n < 64;)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			names[n++] = strdup(de->d_name);
	closedir(d);
	for (size_t i = 1; i < n; i++) /* insertion sort: a handful of names */
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		strncat(out, names[i], size - strlen(out) - 2);
		strcat(out, "\n");
		free(names[i]);
	}
}

static void expect_listing(const char *rel, const char *want)
{
	char got[1024];

	listing(vp(rel), got, sizeof(got));
	if (strcmp(got, want))
		fail("listing of .hermes/%s:\n%s-- wanted:\n%s", rel, got, want);
}

static void check_static(void)
{
	char b[256];

	step("static files keep working");
	int n = slurp(vp("sync"), b, sizeof(b));
	if (n < 0 || strcmp(b, "state: idle\n"))
		fail(".hermes/sync: %s", n < 0 ? strerror(-n) : b);
	int fd = open(vp("note"), O_WRONLY | O_TRUNC);
	if (fd < 0)
		fail("open .hermes/note for writing: %s", strerror(errno));
	if (write(fd, "hello ", 6) != 6 || write(fd, "note\n", 5) != 5)
		fail("write .hermes/note: %s", strerror(errno));
	if (close(fd))
		fail("close .hermes/note: %s", strerror(errno));
	pthread_mutex_lock(&note_lock);
	bool ok = note_got.len == 11 && !memcmp(note_got.data, "hello note\n", 11);
	pthread_mutex_unlock(&note_lock);
	if (!ok)
		fail(".hermes/note: write_fn got %zu bytes", note_got.len);
	fd = open(vp("note"), O_WRONLY);
	if (fd < 0 || write(fd, "bad\n", 4) != 4)
		fail("write .hermes/note: %s", strerror(errno));
	errno = 0;
	if (close(fd) != -1 || errno != EINVAL)
		fail("close after a refused write: %s, wanted EINVAL", strerror(errno));
	if (open(vp("sync"), O_WRONLY) >= 0 || errno != EACCES)
		fail("opening read-only .hermes/sync for writing: %s, wanted EACCES",
		     strerror(errno));
}

static ino_t ino_of(const char *rel)
{
	struct stat st;

	if (stat(vp(rel), &st))
		fail("stat .hermes/%s: %s", rel, strerror(errno));
	return st.st_ino;
}

static void check_tree(void)
{
	struct stat st;
	char b[64];

	step("nested directories appear and disappear");
	expect_listing("", "jobs\nnote\nout\nrun\nslow\nsync\nwait\n");
	expect_listing("out", "stdout\n");
	expect_listing("jobs", "");
	if (stat(vp("out"), &st) || !S_ISDIR(st.st_mode))
		fail(".hermes/out is not a directory");
	if (stat(vp("run"), &st) || !S_ISREG(st.st_mode) || (st.st_mode & 07777) != 0200)
		fail(".hermes/run: mode %o", st.st_mode);
	if (stat(vp("jobs/7"), &st) == 0 || errno != ENOENT)
		fail(".hermes/jobs/7 exists before the job");

	const char *two[] = { "7", "8" };
	tp_jobs(two, 2);
	expect_listing("jobs", "7\n8\n");
	expect_listing("jobs/7", "status\n");
	ino_t ino7 = ino_of("jobs/7"), ino7s = ino_of("jobs/7/status");
	if (ino7 == ino_of("jobs/8") || ino7s == ino_of("jobs/8/status"))
		fail("two vpaths share an inode number");
	int n = slurp(vp("jobs/7/status"), b, sizeof(b));
	if (n < 0 || strcmp(b, "running\n"))
		fail(".hermes/jobs/7/status: %s", n < 0 ? strerror(-n) : b);
	if (stat(vp("jobs/7/status"), &st) || st.st_size != 8)
		fail(".hermes/jobs/7/status: size %lld, wanted 8", (long long)st.st_size);

	const char *one[] = { "8" };
	tp_jobs(one, 1);
	expect_listing("jobs", "8\n");
	if (stat(vp("jobs/7/status"), &st) == 0 || errno != ENOENT)
		fail(".hermes/jobs/7/status still there after the job went");
	if (open(vp("jobs/7/status"), O_RDONLY) >= 0 || errno != ENOENT)
		fail("opening a gone file: %s, wanted ENOENT", strerror(errno));

	tp_jobs(two, 2);
	if (ino_of("jobs/7") != ino7 || ino_of("jobs/7/status") != ino7s)
		fail("inode numbers of .hermes/jobs/7 changed while mounted");
	tp_jobs(NULL, 0);
	expect_listing("jobs", "");
	if (mkdir(vp("jobs/9"), 0755) == 0 || unlink(vp("wait")) == 0)
		fail("mkdir/unlink inside .hermes succeeded");
}

struct reader {
	const char *rel;
	pthread_t tid;
	pthread_mutex_t lock;
	char got[4096];   /* protected by lock */
	size_t len;       /* protected by lock */
	int err;          /* protected by lock */
	bool eof;         /* protected by lock */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	int fd = open(vp(r->rel), O_RDONLY);
	int err = fd < 0 ? errno : 0;
	char b[512];

	while (!err) {
		ssize_t n = read(fd, b, sizeof(b));
		pthread_mutex_lock(&r->lock);
		if (n < 0)
			err = errno;
		else if (n == 0)
			r->eof = true;
		else if (r->len + (size_t)n < sizeof(r->got)) {
			memcpy(r->got + r->len, b, (size_t)n);
			r->len += (size_t)n;
		}
		bool eof = r->eof;
		pthread_mutex_unlock(&r->lock);
		if (eof)
			break;
	}
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&r->lock);
	r->err = err;
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void reader_start(struct reader *r, const char *rel)
{
	memset(r, 0, sizeof(*r));
	r->rel = rel;
	pthread_mutex_init(&r->lock, NULL);
	if (pthread_create(&r->tid, NULL, reader_main, r))
		fail("pthread_create");
}

/* Wait until the reader has WANT (and EOF if eof), or fail. */
static void reader_expect(struct reader *r, const char *want, bool eof)
{
	int64_t t0 = now_ms();

	for (;;) {
		pthread_mutex_lock(&r->lock);
		bool same = r->len == strlen(want) && !memcmp(r->got, want, r->len);
		bool done = same && r->eof == eof;
		int err = r->err;
		bool got_eof = r->eof;
		pthread_mutex_unlock(&r->lock);
		if (done)
			return;
		if (err)
			fail("reading .hermes/%s: %s", r->rel, strerror(err));
		if (got_eof && !eof)
			fail(".hermes/%s reached EOF too early (%zu bytes)", r->rel, r->len);
		if (now_ms() - t0 > WAIT_MS)
			fail(".hermes/%s: got %zu bytes (eof %d), wanted \"%s\" (eof %d)",
			     r->rel, r->len, got_eof, want, eof);
		sleep_ms(10);
	}
}

static void check_stream(void)
{
	struct reader r;

	step("a streaming read gets bytes before EOF, and EOF after the end");
	reader_start(&r, "out/stdout"); /* started before anything is printed */
	tp_output("line 1\n");
	reader_expect(&r, "line 1\n", false);
	tp_output("line 2\n");
	reader_expect(&r, "line 1\nline 2\n", false);
	tp_output("last");
	tp_set(true, false, 0, true);
	reader_expect(&r, "line 1\nline 2\nlast", true);
	pthread_join(r.tid, NULL);

	step("O_NONBLOCK: EAGAIN instead of waiting");
	tp_set(false, false, 0, true);
	int fd = open(vp("wait"), O_RDONLY | O_NONBLOCK);
	char b[16];
	if (fd < 0)
		fail("open .hermes/wait: %s", strerror(errno));
	errno = 0;
	if (read(fd, b, sizeof(b)) != -1 || errno != EAGAIN)
		fail("non-blocking read of .hermes/wait: %s, wanted EAGAIN", strerror(errno));
	tp_set(true, false, 0, true);
	if (read(fd, b, sizeof(b)) != 5 || memcmp(b, "done\n", 5))
		fail("non-blocking read of .hermes/wait after the end: %s", strerror(errno));
	close(fd);

	step(".hermes/wait blocks until the end");
	tp_set(false, false, 0, true);
	int before = atomic_load(&tp.wait_reads);
	reader_start(&r, "wait");
	for (int64_t t0 = now_ms(); atomic_load(&tp.wait_reads) == before; sleep_ms(10))
		if (now_ms() - t0 > WAIT_MS)
			fail("the read of .hermes/wait never reached the provider");
	pthread_mutex_lock(&r.lock);
	bool early = r.len || r.eof || r.err;
	pthread_mutex_unlock(&r.lock);
	if (early)
		fail(".hermes/wait returned before the end");
	tp_set(true, false, 0, true);
	reader_expect(&r, "done\n", true);
	pthread_join(r.tid, NULL);

	step("a provider that forgets fs_vwake is late, not stuck (1 s retry)");
	tp_set(false, false, 0, true);
	before = atomic_load(&tp.wait_reads);
	reader_start(&r, "wait");
	for (int64_t t0 = now_ms(); atomic_load(&tp.wait_reads) == before; sleep_ms(10))
		if (now_ms() - t0 > WAIT_MS)
			fail("the read of .hermes/wait never reached the provider");
	int64_t t0 = now_ms();
	tp_set(true, false, 0, false);
	reader_expect(&r, "done\n", true);
	if (now_ms() - t0 > PROMPT_MS)
		fail("the safety-net retry took %lld ms", (long long)(now_ms() - t0));
	pthread_join(r.tid, NULL);
}

/* Empty the stream and start a new "job". */
static void tp_restart(void)
{
	pthread_mutex_lock(&tp.lock);
	buf_reset(&tp.out);
	pthread_mutex_unlock(&tp.lock);
	tp_set(false, false, 0, true);
}

static void check_many_parked(void)
{
	enum { N = 40 }; /* more than the FUSE worker threads (16) */
	static struct reader r[N];
	char b[64];

	step("40 parked reads hold no FUSE thread: the mount keeps serving");
	tp_restart();
	int before = atomic_load(&tp.wait_reads);
	for (int i = 0; i < N; i++)
		reader_start(&r[i], "wait");
	for (int64_t t0 = now_ms(); atomic_load(&tp.wait_reads) - before < N; sleep_ms(10))
		if (now_ms() - t0 > WAIT_MS)
			fail("only %d of %d reads of .hermes/wait reached the provider",
			     atomic_load(&tp.wait_reads) - before, N);
	int64_t t0 = now_ms();
	int n = slurp(vp("sync"), b, sizeof(b));
	if (n < 0 || strcmp(b, "state: idle\n"))
		fail(".hermes/sync with %d reads parked: %s", N, n < 0 ? strerror(-n) : b);
	if (now_ms() - t0 > PROMPT_MS)
		fail(".hermes/sync took %lld ms with %d reads parked", (long long)(now_ms() - t0), N);
	tp_set(true, false, 0, true);
	for (int i = 0; i < N; i++) {
		reader_expect(&r[i], "done\n", true);
		pthread_join(r[i].tid, NULL);
	}
}

#define LAT_N 200

struct producer {
	pthread_t tid;
	int64_t sent_us[LAT_N];
};

static int64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* One byte every 2 ms (the reader is parked by then), time-stamped. */
static void *producer_main(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < LAT_N; i++) {
		sleep_ms(2);
		p->sent_us[i] = now_us();
		tp_output("x");
	}
	tp_set(true, false, 0, true);
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void check_latency(void)
{
	static struct producer p;
	int64_t lat[LAT_N];
	char b[64];
	int got = 0;

	step("latency: output to a parked reader");
	tp_restart();
	int fd = open(vp("out/stdout"), O_RDONLY);
	if (fd < 0)
		fail("open .hermes/out/stdout: %s", strerror(errno));
	if (pthread_create(&p.tid, NULL, producer_main, &p))
		fail("pthread_create");
	for (;;) {
		ssize_t n = read(fd, b, sizeof(b));
		int64_t now = now_us();
		if (n < 0)
			fail("read .hermes/out/stdout: %s", strerror(errno));
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n && got < LAT_N; i++, got++)
			lat[got] = now - p.sent_us[got];
	}
	close(fd);
	pthread_join(p.tid, NULL);
	if (got != LAT_N)
		fail(".hermes/out/stdout: %d bytes, wanted %d", got, LAT_N);
	qsort(lat, LAT_N, sizeof(lat[0]), cmp_i64);
	printf("   %d wake-ups: median %lld us, 99th %lld us, max %lld us\n", LAT_N,
	       (long long)lat[LAT_N / 2], (long long)lat[LAT_N * 99 / 100],
	       (long long)lat[LAT_N - 1]);
	if (lat[LAT_N / 2] > 100 * 1000)
		fail("median wake-up latency %lld us (over 100 ms)", (long long)lat[LAT_N / 2]);
}

#define FLOOD_BYTES (32u << 20)
#define FLOOD_CHUNK (64u << 10)

static unsigned char flood_byte(size_t i)
{
	return (unsigned char)((i * 7) % 251);
}

static void *flood_main(void *arg)
{
	static unsigned char chunk[FLOOD_CHUNK];

	(void)arg;
	for (size_t off = 0; off < FLOOD_BYTES; off += FLOOD_CHUNK) {
		for (size_t i = 0; i < FLOOD_CHUNK; i++)
			chunk[i] = flood_byte(off + i);
		pthread_mutex_lock(&tp.lock);
		int rc = buf_append(&tp.out, chunk, FLOOD_CHUNK);
		pthread_mutex_unlock(&tp.lock);
		if (rc)
			fail("out of memory");
		fs_vwake();
	}
	tp_set(true, false, 0, true);
	return NULL;
}

static void check_flood(void)
{
	static unsigned char b[128 << 10];
	pthread_t tid;
	size_t total = 0;

	step("throughput: 32 MiB streamed while produced");
	tp_restart();
	int fd = open(vp("out/stdout"), O_RDONLY);
	if (fd < 0)
		fail("open .hermes/out/stdout: %s", strerror(errno));
	int64_t t0 = now_us();
	if (pthread_create(&tid, NULL, flood_main, NULL))
		fail("pthread_create");
	for (;;) {
		ssize_t n = read(fd, b, sizeof(b));
		if (n < 0)
			fail("read .hermes/out/stdout: %s", strerror(errno));
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (b[i] != flood_byte(total + (size_t)i))
				fail(".hermes/out/stdout: wrong byte at %zu", total + (size_t)i);
		total += (size_t)n;
	}
	int64_t us = now_us() - t0;
	close(fd);
	pthread_join(tid, NULL);
	if (total != FLOOD_BYTES)
		fail(".hermes/out/stdout: %zu bytes, wanted %u", total, FLOOD_BYTES);
	printf("   %u MiB in %lld ms: %.0f MiB/s\n", FLOOD_BYTES >> 20,
	       (long long)(us / 1000), (double)FLOOD_BYTES / (1 << 20) / ((double)us / 1e6));
	tp_restart();
}

struct closer {
	pthread_t tid;
	atomic_bool done;
	int rc;
	int err;
};

static void *closer_main(void *arg)
{
	struct closer *c = arg;
	int fd = open(vp("run"), O_WRONLY | O_TRUNC);

	c->rc = -1;
	c->err = errno;
	if (fd >= 0) {
		if (write(fd, "make test\n", 10) != 10) {
			c->err = errno;
			close(fd);
		} else {
			c->rc = close(fd);
			c->err = c->rc ? errno : 0;
		}
	}
	atomic_store(&c->done, true);
	return NULL;
}

static void check_close(void)
{
	struct closer c = { 0 };

	step("close() waits until the provider accepts, then returns its error");
	tp_set(false, false, 0, true);
	int before = atomic_load(&tp.run_flushes);
	if (pthread_create(&c.tid, NULL, closer_main, &c))
		fail("pthread_create");
	for (int64_t t0 = now_ms(); atomic_load(&tp.run_flushes) == before; sleep_ms(10))
		if (now_ms() - t0 > WAIT_MS)
			fail("close of .hermes/run never reached the provider");
	if (atomic_load(&c.done))
		fail("close of .hermes/run returned before accepted (rc %d: %s)", c.rc,
		     strerror(c.err));
	tp_set(false, true, -EBUSY, true);
	pthread_join(c.tid, NULL);
	if (c.rc != -1 || c.err != EBUSY)
		fail("close of .hermes/run: rc %d (%s), wanted EBUSY", c.rc, strerror(c.err));
	pthread_mutex_lock(&tp.lock);
	bool got = tp.run_got.len == 10 && !memcmp(tp.run_got.data, "make test\n", 10);
	buf_reset(&tp.run_got);
	pthread_mutex_unlock(&tp.lock);
	if (!got)
		fail(".hermes/run: the provider did not get the command");

	tp_set(false, true, 0, true);
	memset(&c, 0, sizeof(c));
	closer_main(&c);
	if (c.rc != 0)
		fail("accepted close of .hermes/run: %s", strerror(c.err));
	if (open(vp("run"), O_RDONLY) >= 0 || errno != EACCES)
		fail("opening write-only .hermes/run for reading: %s, wanted EACCES",
		     strerror(errno));
}

/* A child must not keep this process's /dev/fuse descriptor: the
 * connection would outlive fs_run's close of it, and the child's own last
 * close (a FLUSH nobody serves any more) would wait for ever. */
static void child_fds(void)
{
	close_range(3, ~0U, 0);
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* A child that blocks in read (of .hermes/wait) or close (of .hermes/run);
 * with a SIGUSR1 handler it exits 0 if the call failed with EINTR. */
static pid_t blocker(bool closing)
{
	const char *path = vp(closing ? "run" : "wait"); /* not after fork */
	pid_t pid = fork();

	if (pid)
		return pid;
	child_fds();
	struct sigaction sa = { .sa_handler = on_usr1 }; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	char b[64];
	int fd = open(path, closing ? O_WRONLY : O_RDONLY);
	if (fd < 0)
		_exit(2);
	if (closing) {
		if (write(fd, "x\n", 2) != 2)
			_exit(3);
		_exit(close(fd) == -1 && errno == EINTR ? 0 : 4);
	}
	_exit(read(fd, b, sizeof(b)) == -1 && errno == EINTR ? 0 : 5);
}

/* Wait for the child to end, at most ms: its wait status, or -1. */
static int reap(pid_t pid, int ms)
{
	int status;

	for (int64_t t0 = now_ms(); now_ms() - t0 <= ms; sleep_ms(10))
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
	return -1;
}

/* Wait until COUNTER moved past BEFORE (the call reached the provider). */
static void wait_reached(atomic_int *counter, int before, const char *what)
{
	for (int64_t t0 = now_ms(); atomic_load(counter) == before; sleep_ms(10))
		if (now_ms() - t0 > WAIT_MS)
			fail("%s never reached the provider", what);
}

static void check_interrupt(void)
{
	struct stat st;

	step("a signal ends a blocked read or close promptly");
	tp_set(false, false, 0, true);
	struct {
		bool closing;
		int sig;
		atomic_int *counter;
	} cases[] = {
		{ false, SIGUSR1, &tp.wait_reads },
		{ false, SIGINT, &tp.wait_reads },
		{ true, SIGUSR1, &tp.run_flushes },
		{ true, SIGINT, &tp.run_flushes },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *what = cases[i].closing ? "close of .hermes/run" : "read of .hermes/wait";
		int before = atomic_load(cases[i].counter);
		pid_t pid = blocker(cases[i].closing);
		if (pid < 0)
			fail("fork: %s", strerror(errno));
		wait_reached(cases[i].counter, before, what);
		sleep_ms(50); /* let it park (a signal before that is handled too) */
		int64_t t0 = now_ms();
		kill(pid, cases[i].sig);
		int status = reap(pid, INTERRUPT_MS);
		if (status == -1) {
			kill(pid, SIGKILL);
			fail("%s: still blocked %d ms after %s", what, INTERRUPT_MS,
			     strsignal(cases[i].sig));
		}
		if (cases[i].sig == SIGUSR1 && (!WIFEXITED(status) || WEXITSTATUS(status)))
			fail("%s after SIGUSR1: wanted EINTR (child status %#x)", what, status);
		if (cases[i].sig == SIGINT && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT))
			fail("%s: SIGINT did not kill the reader (status %#x)", what, status);
		printf("   %s, %s: ended in %lld ms\n", what, strsignal(cases[i].sig),
		       (long long)(now_ms() - t0));
	}
	if (stat(vp("wait"), &st))
		fail("the mount is unwell after the interrupts: %s", strerror(errno));
}

static void check_slow(void)
{
	enum { N = 20 }; /* more than the FUSE worker threads (16) */
	static struct reader r[N];
	char b[64];
	int n;

	step("slow static files: open_fn on its own thread, reads parked");
	slow_set(false, 0);
	int before = atomic_load(&slow.calls);
	for (int i = 0; i < N; i++)
		reader_start(&r[i], "slow");
	for (int64_t t0 = now_ms(); atomic_load(&slow.calls) - before < N; sleep_ms(10))
		if (now_ms() - t0 > WAIT_MS)
			fail("only %d of %d opens of .hermes/slow reached open_fn",
			     atomic_load(&slow.calls) - before, N);
	struct reader sync_reader; /* bounded: a mount out of threads would hang */
	reader_start(&sync_reader, "sync");
	reader_expect(&sync_reader, "state: idle\n", true);
	pthread_join(sync_reader.tid, NULL);

	const char *path = vp("slow"); /* not after fork */
	before = atomic_load(&slow.calls);
	pid_t pid = fork();
	if (pid == 0) {
		child_fds();
		struct sigaction sa = { .sa_handler = on_usr1 };
		sigaction(SIGUSR1, &sa, NULL);
		int fd = open(path, O_RDONLY);
		_exit(fd >= 0 && read(fd, b, sizeof(b)) == -1 && errno == EINTR ? 0 : 1);
	}
	wait_reached(&slow.calls, before, "the open of .hermes/slow");
	sleep_ms(50);
	kill(pid, SIGUSR1);
	int status = reap(pid, INTERRUPT_MS);
	if (status == -1) {
		kill(pid, SIGKILL);
		fail("a read of .hermes/slow still blocked %d ms after SIGUSR1", INTERRUPT_MS);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail("a read of .hermes/slow after SIGUSR1: wanted EINTR (status %#x)", status);

	slow_set(true, 0);
	for (int i = 0; i < N; i++) {
		reader_expect(&r[i], "slow done\n", true);
		pthread_join(r[i].tid, NULL);
	}
	slow_set(true, -ETIMEDOUT);
	n = slurp(vp("slow"), b, sizeof(b));
	if (n != -ETIMEDOUT)
		fail("read of .hermes/slow whose open_fn failed: %s, wanted ETIMEDOUT",
		     n < 0 ? strerror(-n) : "success");
	slow_set(true, 0);
}

static void check_exit_while_parked(void)
{
	step("fs_request_exit while a read and a close are parked: no hang");
	tp_set(false, false, 0, true);
	int before = atomic_load(&tp.wait_reads);
	const char *path = vp("wait");
	pid_t rd = fork();
	if (rd == 0) {
		child_fds();
		char b[8];
		int fd = open(path, O_RDONLY);
		_exit(fd >= 0 && read(fd, b, sizeof(b)) < 0 ? 0 : 1);
	}
	wait_reached(&tp.wait_reads, before, "read of .hermes/wait");
	before = atomic_load(&tp.run_flushes);
	struct closer c = { 0 };
	if (pthread_create(&c.tid, NULL, closer_main, &c))
		fail("pthread_create");
	wait_reached(&tp.run_flushes, before, "close of .hermes/run");
	sleep_ms(50);
	/* What `hermes umount` runs: it may refuse (busy), never hang. */
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "timeout 30 fusermount3 -u '%s' 2>&1", mnt);
	int64_t t0 = now_ms();
	int st = system(cmd);
	if (now_ms() - t0 > PROMPT_MS)
		fail("fusermount3 -u took %lld ms with a read parked", (long long)(now_ms() - t0));
	printf("   fusermount3 -u with a read parked: exit %d in %lld ms\n",
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1, (long long)(now_ms() - t0));
	t0 = now_ms();
	fs_request_exit();
	while (!atomic_load(&fs_done))
		if (now_ms() - t0 > PROMPT_MS)
			fail("fs_run still running %d ms after fs_request_exit", PROMPT_MS);
		else
			sleep_ms(10);
	int status = reap(rd, PROMPT_MS);
	if (status == -1) {
		kill(rd, SIGKILL);
		fail("a parked read survived the unmount");
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail("the parked read did not fail at the unmount (status %#x)", status);
	for (; !atomic_load(&c.done); sleep_ms(10))
		if (now_ms() - t0 > PROMPT_MS)
			fail("a parked close survived the unmount");
	pthread_join(c.tid, NULL);
	if (c.rc != -1)
		fail("the parked close succeeded at the unmount");
	pthread_join(fs_thread, NULL);
	if (fs_rc)
		fail("fs_run returned %d", fs_rc);
	printf("   unmounted in %lld ms; parked read and close failed (%s)\n",
	       (long long)(now_ms() - t0), strerror(c.err));
}

int main(void)
{
	char tmpl[] = "/tmp/hermes-vtree-XXXXXX";

	if (access("/dev/fuse", R_OK | W_OK)) {
		printf("SKIP: /dev/fuse: %s\n", strerror(errno));
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	const char *dir = mkdtemp(tmpl);
	if (!dir)
		fail("mkdtemp: %s", strerror(errno));
	snprintf(backing, sizeof(backing), "%s/local", dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	if (mkdir(backing, 0755) || mkdir(mnt, 0755))
		fail("mkdir in %s: %s", dir, strerror(errno));
	mount_up();
	check_static();
	check_tree();
	check_stream();
	check_many_parked();
	check_latency();
	check_flood();
	check_close();
	check_interrupt();
	check_slow();
	check_exit_while_parked();
	rmdir(mnt);
	rmdir(backing);
	rmdir(dir);
	buf_free(&tp.out);
	buf_free(&tp.run_got);
	buf_free(&note_got);
	printf("PASS\n");
	return 0;
}
