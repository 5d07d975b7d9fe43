/* vpark.c: reads and closes of virtual files that wait (fs.h: -EAGAIN).
 *
 * A provider's read or flush returning -EAGAIN parks the request: it goes on
 * a list with its reply pending, and the FUSE worker goes back to serving
 * others, so any number of blocked `cat .hermes/wait` hold no thread. One
 * retry thread calls the provider again for every parked request after each
 * fs_vwake() and about every second (a safety net: a provider that forgets
 * a wake-up is late, not stuck), and replies to those that are done.
 *
 * Interrupts: each parked request has a FUSE interrupt callback. When the
 * caller gets a signal, the kernel sends INTERRUPT and libfuse calls it; it
 * replies EINTR if the request is on the list. A request being retried is
 * off the list: putting it back checks fuse_req_interrupted() under the lock
 * the callback takes, and libfuse sets that flag before calling back, so an
 * interrupt is never lost: either the flag is seen, or the callback runs
 * once the request is back on the list.
 *
 * Ownership: whoever takes a request off the list (under hfs_vp.lock) is the
 * only one to reply to it and free it. The interrupt callback gets no pointer
 * to the entry (it may be freed meanwhile): it searches for the request.
 *
 * Lost wake-ups: the wake count is read before each attempt; if an
 * fs_vwake() came between the attempt and the parking, the request is parked
 * with a nudge (the count bumped), so the retry thread tries it again at once.
 *
 * Lock order: libfuse calls the interrupt callback holding its request lock,
 * and the callback takes hfs_vp.lock; so fuse_req_interrupt_func (which takes
 * the request lock) is never called under hfs_vp.lock.
 */
#include "hfs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

/* The safety-net period of the retry thread. */
#define HFS_VRETRY_MS 1000

struct hfs_vwait {
	struct hfs_vwait *next;  /* protected by hfs_vp.lock while parked */
	fuse_req_t req;
	struct hfs_vhandle *vh;  /* kept open by the pending request */
	bool read;               /* read, else flush */
	size_t size;
	off_t off;
	char buf[];              /* size bytes, reads only */
};

/* One mount per process: the parking lot is global, like fs_vwake. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* a wake, a first parked request, or stop */
	struct hfs_vwait *parked; /* protected by lock */
	uint64_t wakes;           /* protected by lock: fs_vwake calls and nudges */
	bool running;             /* protected by lock: between start and stop */
	bool stopping;            /* protected by lock */
	pthread_t tid;            /* only start and stop touch it */
} hfs_vp = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

void fs_vwake(void)
{
	pthread_mutex_lock(&hfs_vp.lock);
	hfs_vp.wakes++;
	pthread_cond_broadcast(&hfs_vp.cond);
	pthread_mutex_unlock(&hfs_vp.lock);
}

static uint64_t hfs_vwakes(void)
{
	pthread_mutex_lock(&hfs_vp.lock);
	uint64_t n = hfs_vp.wakes;
	pthread_mutex_unlock(&hfs_vp.lock);
	return n;
}

/* One attempt at w: true when it was replied to (w may be freed). */
static bool hfs_vtry(struct hfs_vwait *w)
{
	const struct fs_vops *ops = w->vh->ops;

	if (w->read) {
		ssize_t n = ops->read(ops->ctx, w->vh->fh, w->buf, w->size, w->off);
		if (n == -EAGAIN)
			return false;
		if (n < 0)
			fuse_reply_err(w->req, (int)-n);
		else
			fuse_reply_buf(w->req, w->buf, (size_t)n < w->size ? (size_t)n : w->size);
		return true;
	}
	int rc = ops->flush(ops->ctx, w->vh->fh);
	if (rc == -EAGAIN)
		return false;
	fuse_reply_err(w->req, rc < 0 ? -rc : 0);
	return true;
}

/* w was just tried and is not done: park it, or end it with EINTR (the
 * caller was interrupted) or ENOTCONN (the mount is ending). seen: the wake
 * count read before the attempt. */
static void hfs_vpark(struct hfs_vwait *w, uint64_t seen)
{
	int err = 0;

	pthread_mutex_lock(&hfs_vp.lock);
	if (fuse_req_interrupted(w->req)) {
		err = EINTR;
	} else if (!hfs_vp.running || hfs_vp.stopping) {
		err = ENOTCONN;
	} else {
		bool first = hfs_vp.parked == NULL;
		w->next = hfs_vp.parked;
		hfs_vp.parked = w;
		if (hfs_vp.wakes != seen)
			hfs_vp.wakes++; /* woken meanwhile: try again at once */
		if (first || hfs_vp.wakes != seen)
			pthread_cond_broadcast(&hfs_vp.cond);
	}
	pthread_mutex_unlock(&hfs_vp.lock);
	if (err) {
		fuse_reply_err(w->req, err);
		free(w);
	}
}

static void hfs_vinterrupt(fuse_req_t req, void *data)
{
	struct hfs_vwait *w = NULL, **pp;

	(void)data;
	pthread_mutex_lock(&hfs_vp.lock);
	for (pp = &hfs_vp.parked; *pp; pp = &(*pp)->next) {
		if ((*pp)->req == req) {
			w = *pp;
			*pp = w->next;
			break;
		}
	}
	pthread_mutex_unlock(&hfs_vp.lock);
	if (w) {
		fuse_reply_err(req, EINTR);
		free(w);
	}
}

/* First attempt, from the FUSE worker; parks w if not done, unless the
 * caller asked not to wait (O_NONBLOCK: EAGAIN, as a pipe would). */
static void hfs_vbegin(struct hfs_vwait *w, bool nonblock)
{
	uint64_t seen = hfs_vwakes();

	if (hfs_vtry(w)) {
		free(w);
		return;
	}
	if (nonblock) {
		fuse_reply_err(w->req, EAGAIN);
		free(w);
		return;
	}
	fuse_req_interrupt_func(w->req, hfs_vinterrupt, NULL);
	hfs_vpark(w, seen);
}

static struct hfs_vwait *hfs_vwait_new(fuse_req_t req, struct fuse_file_info *fi,
				       bool read, size_t size, off_t off)
{
	struct hfs_vwait *w = malloc(sizeof(*w) + (read ? size : 0));

	if (!w)
		return NULL;
	*w = (struct hfs_vwait){
		.req = req, .vh = (struct hfs_vhandle *)(uintptr_t)fi->fh,
		.read = read, .size = size, .off = off,
	};
	return w;
}

void hfs_vread(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	const struct hfs_vhandle *vh = (struct hfs_vhandle *)(uintptr_t)fi->fh;

	if (!vh->ops->read) {
		fuse_reply_err(req, EBADF);
		return;
	}
	struct hfs_vwait *w = hfs_vwait_new(req, fi, true, size, off);
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	hfs_vbegin(w, fi->flags & O_NONBLOCK); /* the file's flags now (fcntl too) */
}

void hfs_vflush(fuse_req_t req, struct fuse_file_info *fi)
{
	const struct hfs_vhandle *vh = (struct hfs_vhandle *)(uintptr_t)fi->fh;

	if (!vh->ops->flush) {
		fuse_reply_err(req, 0);
		return;
	}
	struct hfs_vwait *w = hfs_vwait_new(req, fi, false, 0, 0);
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	hfs_vbegin(w, false); /* close() cannot be told to come back */
}

/* Wait for a wake, a stop, or (with requests parked) the safety net.
 * Called and returns with hfs_vp.lock held. */
static void hfs_vretry_wait(uint64_t seen)
{
	while (!hfs_vp.stopping && hfs_vp.wakes == seen) {
		if (!hfs_vp.parked) {
			pthread_cond_wait(&hfs_vp.cond, &hfs_vp.lock);
			continue;
		}
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t); /* the condition variable's clock */
		t.tv_sec += HFS_VRETRY_MS / 1000;
		t.tv_nsec += (long)(HFS_VRETRY_MS % 1000) * 1000000L;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&hfs_vp.cond, &hfs_vp.lock, &t) == ETIMEDOUT)
			break;
	}
}

static void *hfs_vretry_main(void *arg)
{
	uint64_t seen = 0;

	(void)arg;
	pthread_mutex_lock(&hfs_vp.lock);
	seen = hfs_vp.wakes;
	for (;;) {
		hfs_vretry_wait(seen);
		if (hfs_vp.stopping)
			break;
		seen = hfs_vp.wakes;
		struct hfs_vwait *list = hfs_vp.parked;
		hfs_vp.parked = NULL;
		pthread_mutex_unlock(&hfs_vp.lock);
		while (list) {
			struct hfs_vwait *w = list;
			list = w->next;
			if (hfs_vtry(w))
				free(w);
			else
				hfs_vpark(w, seen);
		}
		pthread_mutex_lock(&hfs_vp.lock);
	}
	pthread_mutex_unlock(&hfs_vp.lock);
	return NULL;
}

int hfs_vpark_start(void)
{
	sigset_t all, old;

	pthread_mutex_lock(&hfs_vp.lock);
	hfs_vp.stopping = false;
	hfs_vp.running = true;
	pthread_mutex_unlock(&hfs_vp.lock);
	/* Signals (SIGINT for the unmount) are for the caller's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&hfs_vp.tid, NULL, hfs_vretry_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_mutex_lock(&hfs_vp.lock);
		hfs_vp.running = false;
		pthread_mutex_unlock(&hfs_vp.lock);
	}
	return -rc;
}

void hfs_vpark_stop(void)
{
	pthread_mutex_lock(&hfs_vp.lock);
	bool running = hfs_vp.running;
	hfs_vp.stopping = true;
	pthread_cond_broadcast(&hfs_vp.cond);
	pthread_mutex_unlock(&hfs_vp.lock);
	if (running)
		pthread_join(hfs_vp.tid, NULL);
	pthread_mutex_lock(&hfs_vp.lock);
	struct hfs_vwait *list = hfs_vp.parked;
	hfs_vp.parked = NULL;
	hfs_vp.running = false;
	pthread_mutex_unlock(&hfs_vp.lock);
	while (list) {
		struct hfs_vwait *w = list;
		list = w->next;
		fuse_reply_err(w->req, ENOTCONN);
		free(w);
	}
}
