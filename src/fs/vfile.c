/* vfile.c: the static files of .hermes (struct fs_vfile, see fs.h) as a
 * provider of the virtual tree.
 *
 * Each open of a file that can read runs its open_fn and keeps the bytes it
 * produced; reads serve them. Writes are appended to a per-open buffer,
 * whatever their offset, and handed to write_fn by each flush (close) and by
 * release; write_fn blocks its FUSE worker.
 *
 * A slow file's open_fn runs on a detached thread of its own, started by
 * open: reads answer -EAGAIN (parked) until it has returned, and its end
 * calls fs_vwake. The open file is shared by that thread and the kernel's
 * handle (two references; the last one frees it), so a reader that gives up
 * (Ctrl-C) leaves the thread to finish alone. hfs_vstatic_free waits for
 * the threads still running: open_fn's ctx must outlive them.
 */
#include "hfs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>

struct hfs_vstatic {
	const struct fs_vfile *files; /* borrowed from fs_options; immutable */
	size_t n;
	pthread_mutex_t lock;
	pthread_cond_t idle;          /* nthreads dropped to 0 */
	size_t nthreads;              /* slow open_fns running; protected by lock */
};

/* A handle: what fs_vops.open stores. */
struct hfs_vsfile {
	const struct fs_vfile *vf;  /* immutable */
	struct hfs_vstatic *s;      /* immutable */
	pthread_mutex_t lock;
	unsigned refs;              /* the handle, and a running open_fn; protected by lock */
	bool ready;                 /* open_fn returned; protected by lock */
	int rc;                     /* its result; protected by lock */
	struct buf content;         /* its bytes; immutable once ready */
	struct buf pending;         /* written, not handed to write_fn yet; protected by lock */
};

static const struct fs_vfile *hfs_vs_find(const struct hfs_vstatic *s, const char *vpath)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->files[i].name, vpath))
			return &s->files[i];
	return NULL;
}

static int hfs_vs_stat(void *ctx, const char *vpath, struct fs_vstat *st)
{
	const struct fs_vfile *vf = hfs_vs_find(ctx, vpath);

	if (!vf)
		return -ENOENT;
	*st = (struct fs_vstat){ .perm = vf->write_fn ? 0644 : 0444 };
	return 0;
}

static int hfs_vs_list(void *ctx, const char *vpath, struct fs_vnames *names)
{
	const struct hfs_vstatic *s = ctx;
	int rc = 0;

	if (vpath[0]) /* only files, all directly under .hermes */
		return -ENOTDIR;
	for (size_t i = 0; i < s->n && !rc; i++)
		rc = fs_vnames_add(names, s->files[i].name);
	return rc;
}

static void hfs_vs_unref(struct hfs_vsfile *f)
{
	pthread_mutex_lock(&f->lock);
	bool last = --f->refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (!last)
		return;
	buf_free(&f->content);
	buf_free(&f->pending);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* Run open_fn; the result is what reads serve. */
static void hfs_vs_produce(struct hfs_vsfile *f)
{
	struct buf content = BUF_INIT;
	int rc = f->vf->open_fn ? f->vf->open_fn(f->vf->ctx, &content) : 0;

	pthread_mutex_lock(&f->lock);
	f->content = content;
	f->rc = rc > 0 ? -rc : rc;
	f->ready = true;
	pthread_mutex_unlock(&f->lock);
}

static void *hfs_vs_thread(void *arg)
{
	struct hfs_vsfile *f = arg;
	struct hfs_vstatic *s = f->s;

	hfs_vs_produce(f);
	fs_vwake();
	hfs_vs_unref(f);
	pthread_mutex_lock(&s->lock);
	if (--s->nthreads == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Start f's open_fn on its own thread: 0 or -errno (nothing started). */
static int hfs_vs_start(struct hfs_vsfile *f)
{
	struct hfs_vstatic *s = f->s;
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t tid;

	f->refs = 2;
	pthread_mutex_lock(&s->lock);
	s->nthreads++;
	pthread_mutex_unlock(&s->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all); /* signals are for the caller's threads */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&tid, &attr, hfs_vs_thread, f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc) {
		f->refs = 1;
		pthread_mutex_lock(&s->lock);
		s->nthreads--;
		pthread_mutex_unlock(&s->lock);
	}
	return -rc;
}

static int hfs_vs_open(void *ctx, const char *vpath, int flags, void **fh)
{
	const struct fs_vfile *vf = hfs_vs_find(ctx, vpath);
	int acc = flags & O_ACCMODE;

	if (!vf)
		return -ENOENT;
	if (acc != O_RDONLY && !vf->write_fn)
		return -EACCES;
	struct hfs_vsfile *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->vf = vf;
	f->s = ctx;
	f->refs = 1;
	pthread_mutex_init(&f->lock, NULL);
	if (acc == O_WRONLY)
		f->ready = true; /* nothing to read: no open_fn */
	else if (!vf->slow || hfs_vs_start(f))
		hfs_vs_produce(f); /* also when no thread could start */
	if (f->ready && f->rc) { /* a quick open_fn's error is open's */
		int rc = f->rc;
		hfs_vs_unref(f);
		return rc;
	}
	*fh = f;
	return 0;
}

static ssize_t hfs_vs_read(void *ctx, void *fh, char *buf, size_t size, off_t off)
{
	struct hfs_vsfile *f = fh;

	(void)ctx;
	pthread_mutex_lock(&f->lock);
	bool ready = f->ready;
	int rc = f->rc;
	pthread_mutex_unlock(&f->lock);
	if (!ready)
		return -EAGAIN;
	if (rc)
		return rc;
	if (off < 0 || (size_t)off >= f->content.len)
		return 0;
	size_t n = f->content.len - (size_t)off;
	if (n > size)
		n = size;
	memcpy(buf, f->content.data + off, n);
	return (ssize_t)n;
}

static ssize_t hfs_vs_write(void *ctx, void *fh, const char *buf, size_t size, off_t off)
{
	struct hfs_vsfile *f = fh;

	(void)ctx;
	(void)off; /* appended: the content is a message, not a file */
	pthread_mutex_lock(&f->lock);
	int rc = buf_append(&f->pending, buf, size);
	pthread_mutex_unlock(&f->lock);
	return rc ? rc : (ssize_t)size;
}

/* Hand what was written since the last call to write_fn: 0 or -errno. */
static int hfs_vs_deliver(struct hfs_vsfile *f)
{
	pthread_mutex_lock(&f->lock);
	struct buf data = f->pending;
	f->pending = (struct buf)BUF_INIT;
	pthread_mutex_unlock(&f->lock);
	int rc = 0;
	if (data.len && f->vf->write_fn)
		rc = f->vf->write_fn(f->vf->ctx, data.data, data.len);
	buf_free(&data);
	return rc > 0 ? -rc : rc;
}

static int hfs_vs_flush(void *ctx, void *fh)
{
	(void)ctx;
	return hfs_vs_deliver(fh);
}

static void hfs_vs_release(void *ctx, void *fh)
{
	struct hfs_vsfile *f = fh;

	(void)ctx;
	int rc = hfs_vs_deliver(f);
	if (rc) /* no close() is left to report it to */
		fuse_log(FUSE_LOG_ERR, "hermes: %s/%s: %s\n", FS_VIRTUAL_DIR,
			 f->vf->name, strerror(-rc));
	hfs_vs_unref(f);
}

int hfs_vstatic_new(const struct fs_vfile *vf, size_t n, struct fs_vops *out,
		    struct buf *err)
{
	for (size_t i = 0; i < n; i++) {
		const char *name = vf[i].name;
		if (!name || !name[0] || strchr(name, '/') || !strcmp(name, ".") ||
		    !strcmp(name, "..")) {
			buf_printf(err, "virtual file name \"%s\": not a file name",
				   name ? name : "(null)");
			return -EINVAL;
		}
	}
	struct hfs_vstatic *s = calloc(1, sizeof(*s));
	if (!s) {
		buf_printf(err, "virtual files: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	s->files = vf;
	s->n = n;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	*out = (struct fs_vops){
		.stat = hfs_vs_stat, .list = hfs_vs_list, .open = hfs_vs_open,
		.read = hfs_vs_read, .write = hfs_vs_write, .flush = hfs_vs_flush,
		.release = hfs_vs_release, .ctx = s,
	};
	return 0;
}

void hfs_vstatic_free(struct fs_vops *ops)
{
	struct hfs_vstatic *s = ops->ctx;

	pthread_mutex_lock(&s->lock);
	while (s->nthreads)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	free(s);
	ops->ctx = NULL;
}
