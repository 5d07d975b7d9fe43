#include "writers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdio.h"
#include "manifest.h"
#include "path.h"
#include <xxhash.h>

#define WRITERS_MAX 16
#define WRITERS_MAX_INFLIGHT 512

/* Each worker has its own queue, and all files of one directory go to the
 * same worker: threads creating and renaming in one directory would only
 * fight over its lock (the kernel spins on it), while different
 * directories proceed in parallel. */
struct worker {
	struct writers *w;
	pthread_t th;
	pthread_cond_t work;                /* a job was queued, or stop */
	struct small_file *queue, *queue_tail; /* protected by w->mu */
};

struct writers {
	int root_fd;
	struct tmpnames *names;
	pthread_mutex_t mu;
	pthread_cond_t moved; /* a job finished */
	/* protected by mu: */
	struct small_file *done, *done_tail;
	size_t inflight; /* queued or being installed */
	bool stop;
	int nthreads;
	struct worker workers[WRITERS_MAX];
};

void small_file_free(struct small_file *f)
{
	if (!f)
		return;
	free(f->path);
	free(f->data);
	free(f);
}

int create_file_mode(int dirfd, const char *name, void *mode)
{
	/* The agent's umask is 0: the file gets exactly these bits, and the
	 * fd is writable whatever they are. */
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			*(const uint32_t *)mode & 0777);
	return fd < 0 ? -errno : fd;
}

static int link_temp(int dirfd, const char *name, void *proc_path)
{
	return linkat(AT_FDCWD, proc_path, dirfd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

/* Write the content into fd, set its mode and mtime, note its identity. */
static int fill(int fd, struct small_file *f)
{
	int rc = write_full(fd, f->data, f->len);
	if (!rc && (f->mode & 07000) && fchmod(fd, f->mode) < 0)
		rc = -errno;
	if (rc)
		return rc;
	struct timespec ts[2];
	mtime_spec(ts, f->mtime_ns);
	futimens(fd, ts);
	/* Identity as recorded: linking or renaming keeps inode, size and
	 * mtime; only ctime moves, and the agent does not record it. */
	if (fstat(fd, &f->st) < 0)
		return -errno;
	f->st.st_ctim.tv_sec = f->st.st_ctim.tv_nsec = 0;
	return 0;
}

/* A nameless file (O_TMPFILE) appears under its name only once complete:
 * linked in directly when the name is free, else linked to a temp name and
 * renamed over the old file. Returns -EOPNOTSUPP when the file system (or a
 * missing /proc) rules this out, so the caller can use a named temp file. */
static int install_tmpfile(int dirfd, const char *base, struct tmpnames *names,
			   struct small_file *f)
{
	int fd = openat(dirfd, ".", O_WRONLY | O_TMPFILE | O_CLOEXEC, f->mode & 0777);
	if (fd < 0)
		return errno == EISDIR || errno == EOPNOTSUPP || errno == EINVAL ? -EOPNOTSUPP : -errno;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int rc = fill(fd, f);
	f->what = "writing";
	if (!rc && linkat(AT_FDCWD, proc, dirfd, base, AT_SYMLINK_FOLLOW) < 0) {
		rc = -errno;
		if (rc == -EEXIST) {
			char tmp[64];
			rc = make_temp(names, dirfd, tmp, link_temp, proc);
			if (!rc && renameat(dirfd, tmp, dirfd, base) < 0) {
				rc = -errno;
				unlinkat(dirfd, tmp, 0);
				f->what = "cannot replace";
			}
		} else if (rc == -ENOENT) {
			rc = -EOPNOTSUPP; /* no /proc here */
		}
	}
	if (close(fd) < 0 && !rc)
		rc = -errno; /* NFS and friends report write errors here */
	return rc;
}

static int install_named(int dirfd, const char *base, struct tmpnames *names,
			 struct small_file *f)
{
	char tmp[64];
	int fd = make_temp(names, dirfd, tmp, create_file_mode, &f->mode);
	if (fd < 0) {
		f->what = "creating a temp file for";
		return fd;
	}
	int rc = fill(fd, f);
	if (close(fd) < 0 && !rc)
		rc = -errno;
	f->what = "writing";
	if (!rc && renameat(dirfd, tmp, dirfd, base) < 0) {
		rc = -errno;
		f->what = "cannot replace";
	}
	if (rc)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

static int install(int root_fd, struct tmpnames *names, struct dircache *dc,
		   struct small_file *f)
{
	uint8_t got[16];
	hash_mem(f->data, f->len, got);
	if (memcmp(got, f->hash, 16) != 0) {
		f->what = "content did not verify for";
		return -EBADMSG;
	}
	const char *base;
	int dirfd = dircache_parent(dc, root_fd, f->path, &base);
	if (dirfd < 0) {
		f->what = "cannot reach the directory of";
		return dirfd;
	}
	int rc = install_tmpfile(dirfd, base, names, f);
	return rc == -EOPNOTSUPP ? install_named(dirfd, base, names, f) : rc;
}

void small_file_install(int root_fd, struct tmpnames *names, struct dircache *dc,
			struct small_file *f)
{
	f->err = install(root_fd, names, dc, f);
	if (!f->err)
		f->what = NULL;
}

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	struct writers *w = me->w;
	struct dircache dc;
	dircache_init(&dc);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!me->queue && !w->stop)
			pthread_cond_wait(&me->work, &w->mu);
		struct small_file *f = me->queue;
		if (!f)
			break; /* stopping, nothing left */
		me->queue = f->next;
		if (!me->queue)
			me->queue_tail = NULL;
		pthread_mutex_unlock(&w->mu);

		f->next = NULL;
		small_file_install(w->root_fd, w->names, &dc, f);

		pthread_mutex_lock(&w->mu);
		if (w->done_tail)
			w->done_tail->next = f;
		else
			w->done = f;
		w->done_tail = f;
		w->inflight--;
		pthread_cond_broadcast(&w->moved);
	}
	pthread_mutex_unlock(&w->mu);
	dircache_drop(&dc);
	return NULL;
}

struct writers *writers_new(int root_fd, struct tmpnames *names, int nthreads)
{
	struct writers *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->root_fd = root_fd;
	w->names = names;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->moved, NULL);
	if (nthreads > WRITERS_MAX)
		nthreads = WRITERS_MAX;
	for (int i = 0; i < nthreads; i++) {
		struct worker *wk = &w->workers[i];
		wk->w = w;
		pthread_cond_init(&wk->work, NULL);
		if (pthread_create(&wk->th, NULL, worker_main, wk) != 0) {
			pthread_cond_destroy(&wk->work);
			break;
		}
		w->nthreads++;
	}
	if (w->nthreads == 0) {
		writers_free(w);
		return NULL;
	}
	return w;
}

void writers_submit(struct writers *w, struct small_file *f)
{
	f->next = NULL;
	f->err = 0;
	f->what = NULL;
	struct worker *wk = &w->workers[XXH3_64bits(f->path, path_dir_len(f->path)) % w->nthreads];
	pthread_mutex_lock(&w->mu);
	while (w->inflight >= WRITERS_MAX_INFLIGHT)
		pthread_cond_wait(&w->moved, &w->mu);
	if (wk->queue_tail)
		wk->queue_tail->next = f;
	else
		wk->queue = f;
	wk->queue_tail = f;
	w->inflight++;
	pthread_cond_signal(&wk->work);
	pthread_mutex_unlock(&w->mu);
}

struct small_file *writers_done(struct writers *w, bool wait_all)
{
	pthread_mutex_lock(&w->mu);
	while (wait_all && w->inflight > 0)
		pthread_cond_wait(&w->moved, &w->mu);
	struct small_file *list = w->done;
	w->done = w->done_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	return list;
}

void writers_free(struct writers *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	for (int i = 0; i < w->nthreads; i++)
		pthread_cond_signal(&w->workers[i].work);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < w->nthreads; i++) {
		pthread_join(w->workers[i].th, NULL);
		pthread_cond_destroy(&w->workers[i].work);
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->moved);
	free(w);
}
