#include "mirror.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hints.h"
#include "log.h"
#include "transport.h"

#define COALESCE_MS 3
/* The session's state files are written once the mirror has been idle this
 * long (and when it stops), not after every push: rewriting them (~100
 * bytes a file) was most of a one-line save's latency in an 8,000-file
 * tree. */
#define SAVE_IDLE_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

enum mirror_state { M_CONNECTING, M_IDLE, M_SYNCING, M_OFFLINE };

static const char *const state_names[] = {
	[M_CONNECTING] = "connecting", [M_IDLE] = "idle",
	[M_SYNCING] = "syncing", [M_OFFLINE] = "offline",
};

struct mirror {
	struct mirror_config cfg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;  /* a change was noted, or stop */
	pthread_cond_t moved; /* synced advanced, or the state changed */
	/* protected by mu: */
	char **dirty;
	size_t ndirty, cap;
	struct hints hints; /* byte ranges of the paths in dirty */
	uint64_t noted;   /* changes noted so far */
	uint64_t synced;  /* every change numbered <= synced is on the host */
	uint64_t generation;
	enum mirror_state state;
	bool stop;
	struct buf last_error;
	struct sync_stats totals;
	/* thread-only: */
	bool save_due;    /* pushes since the session's state was saved */
	struct sync_session *session;
	struct transport *t;
	struct sync_stats st;
};

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* err's text as a C string (bytes appended to a buf are not NUL-terminated:
 * a NUL is added past len), or strerror(-rc) when err is empty. */
static const char *error_text(struct buf *err, int rc)
{
	if (!err->len || buf_reserve(err, 1))
		return err->len ? "(out of memory)" : strerror(-rc);
	err->data[err->len] = '\0';
	return (const char *)err->data;
}

/* Append paths to the dirty list (mu held). */
static void keep_paths(struct mirror *m, char **paths, size_t n)
{
	if (m->ndirty + n > m->cap) {
		size_t cap = m->cap ? m->cap : 64;
		while (cap < m->ndirty + n)
			cap *= 2;
		char **v = realloc(m->dirty, cap * sizeof(*v));
		if (!v) {
			/* Cannot remember them: make the next session reconcile all. */
			for (size_t i = 0; i < n; i++)
				free(paths[i]);
			if (m->session)
				m->state = M_OFFLINE;
			return;
		}
		m->dirty = v;
		m->cap = cap;
	}
	memcpy(m->dirty + m->ndirty, paths, n * sizeof(*paths));
	m->ndirty += n;
}

/* mu held. */
static void note_path(struct mirror *m, char *copy)
{
	m->noted++;
	if (copy)
		keep_paths(m, &copy, 1);
	pthread_cond_signal(&m->wake);
}

void mirror_changed(struct mirror *m, const char *path)
{
	char *copy = strdup(path);
	pthread_mutex_lock(&m->mu);
	/* Whole from now on: a truncate or a rename after a write (or before
	 * it) is not a range. Without memory, no hint, which means whole. */
	hints_whole(&m->hints, path);
	note_path(m, copy);
	pthread_mutex_unlock(&m->mu);
}

void mirror_written(struct mirror *m, const char *path, uint64_t off, uint64_t len)
{
	char *copy = strdup(path);
	pthread_mutex_lock(&m->mu);
	hints_add(&m->hints, path, off, len);
	note_path(m, copy);
	pthread_mutex_unlock(&m->mu);
}

static void set_state(struct mirror *m, enum mirror_state s, const struct buf *err)
{
	pthread_mutex_lock(&m->mu);
	m->state = s;
	if (err && err->len) {
		buf_reset(&m->last_error);
		buf_append(&m->last_error, err->data, err->len);
	}
	pthread_cond_broadcast(&m->moved);
	pthread_mutex_unlock(&m->mu);
}

static void drop_session(struct mirror *m)
{
	sync_session_close(m->session);
	m->session = NULL;
	if (m->t)
		transport_close(m->t, NULL);
	m->t = NULL;
}

/* Connect and reconcile. Changes noted before the attempt are covered by
 * its full scan, so on success they count as synced. */
static int connect_session(struct mirror *m)
{
	struct buf err = BUF_INIT;
	pthread_mutex_lock(&m->mu);
	uint64_t covered = m->noted;
	/* The reconcile looks at everything: the list can go. */
	for (size_t i = 0; i < m->ndirty; i++)
		free(m->dirty[i]);
	m->ndirty = 0;
	hints_free(&m->hints);
	m->state = M_CONNECTING;
	pthread_mutex_unlock(&m->mu);

	int rc = m->cfg.connect(m->cfg.ctx, &m->t, &err);
	if (!rc)
		rc = sync_session_open(m->t, &m->cfg.so, &m->st, &m->session, &err);
	if (rc) {
		log_warn("cannot sync to %s: %s", m->cfg.dest, error_text(&err, rc));
		drop_session(m);
		set_state(m, M_OFFLINE, &err);
		buf_free(&err);
		return rc;
	}
	pthread_mutex_lock(&m->mu);
	m->synced = covered;
	m->totals.files_sent += m->st.files_sent;
	m->totals.literal_bytes += m->st.literal_bytes;
	m->totals.bytes_sent += m->st.bytes_sent;
	m->totals.bytes_recv += m->st.bytes_recv;
	m->totals.sig_requests += m->st.sig_requests;
	m->state = M_IDLE;
	buf_reset(&m->last_error);
	pthread_cond_broadcast(&m->moved);
	pthread_mutex_unlock(&m->mu);
	buf_free(&err);
	return 0;
}

/* Push one batch: everything in the list now. */
static int push_batch(struct mirror *m)
{
	pthread_mutex_lock(&m->mu);
	char **paths = m->dirty;
	size_t n = m->ndirty;
	uint64_t covered = m->noted;
	struct hints hints = m->hints;
	hints_init(&m->hints);
	m->dirty = NULL;
	m->ndirty = m->cap = 0;
	m->state = M_SYNCING;
	pthread_mutex_unlock(&m->mu);

	struct buf err = BUF_INIT;
	struct sync_stats st0 = m->st;
	/* On failure the hints go: the reconnect reconciles the whole tree. */
	int rc = sync_session_push_hinted(m->session, paths, n, &hints, &err);
	hints_free(&hints);
	pthread_mutex_lock(&m->mu);
	if (rc) {
		keep_paths(m, paths, n); /* invariant 2 */
		free(paths);
		buf_reset(&m->last_error);
		buf_append(&m->last_error, err.data, err.len);
		m->state = M_OFFLINE;
	} else {
		for (size_t i = 0; i < n; i++)
			free(paths[i]);
		free(paths);
		m->synced = covered;
		m->totals.files_sent += m->st.files_sent - st0.files_sent;
		m->totals.literal_bytes += m->st.literal_bytes - st0.literal_bytes;
		m->totals.bytes_sent += m->st.bytes_sent - st0.bytes_sent;
		m->totals.bytes_recv += m->st.bytes_recv - st0.bytes_recv;
		m->totals.sig_requests += m->st.sig_requests - st0.sig_requests;
		m->totals.hinted_files += m->st.hinted_files - st0.hinted_files;
		m->state = M_IDLE;
		m->save_due = true;
	}
	pthread_cond_broadcast(&m->moved);
	pthread_mutex_unlock(&m->mu);
	if (rc) {
		log_warn("sync to %s interrupted: %s", m->cfg.dest, error_text(&err, rc));
		drop_session(m);
	}
	buf_free(&err);
	return rc;
}

static void *mirror_main(void *arg)
{
	struct mirror *m = arg;
	int backoff = BACKOFF_MIN_MS;
	for (;;) {
		pthread_mutex_lock(&m->mu);
		bool stop = m->stop;
		pthread_mutex_unlock(&m->mu);
		if (!m->session) {
			if (stop)
				break;
			if (connect_session(m) == 0) {
				backoff = BACKOFF_MIN_MS;
				continue;
			}
			/* Offline: wait, then try again (sooner if asked to stop). */
			struct timespec ts;
			deadline_in(&ts, backoff);
			pthread_mutex_lock(&m->mu);
			if (!m->stop)
				pthread_cond_timedwait(&m->wake, &m->mu, &ts);
			pthread_mutex_unlock(&m->mu);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		pthread_mutex_lock(&m->mu);
		while (m->ndirty == 0 && !m->stop) {
			if (!m->save_due) {
				pthread_cond_wait(&m->wake, &m->mu);
				continue;
			}
			struct timespec ts;
			deadline_in(&ts, SAVE_IDLE_MS);
			if (pthread_cond_timedwait(&m->wake, &m->mu, &ts) == ETIMEDOUT &&
			    m->ndirty == 0) {
				m->save_due = false;
				pthread_mutex_unlock(&m->mu);
				sync_session_save(m->session);
				pthread_mutex_lock(&m->mu);
			}
		}
		bool idle_stop = m->ndirty == 0 && m->stop;
		pthread_mutex_unlock(&m->mu);
		if (idle_stop)
			break;
		/* Let a burst finish: an editor's save is several operations. */
		struct timespec nap = { 0, COALESCE_MS * 1000000L };
		nanosleep(&nap, NULL);
		push_batch(m);
	}
	drop_session(m);
	return NULL;
}

int mirror_start(const struct mirror_config *cfg, struct mirror **out)
{
	struct mirror *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->wake, NULL);
	pthread_cond_init(&m->moved, NULL);
	m->state = M_CONNECTING;
	/* The whole tree counts as one change until the first reconcile. */
	m->noted = 1;
	int rc = pthread_create(&m->thread, NULL, mirror_main, m);
	if (rc) {
		free(m);
		return -rc;
	}
	*out = m;
	return 0;
}

int64_t mirror_flush(struct mirror *m, int timeout_ms)
{
	struct timespec ts;
	deadline_in(&ts, timeout_ms);
	pthread_mutex_lock(&m->mu);
	uint64_t target = m->noted;
	int rc = 0;
	while (m->synced < target && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&m->moved, &m->mu, &ts);
	int64_t gen = m->synced >= target ? (int64_t)m->synced : -ETIMEDOUT;
	pthread_mutex_unlock(&m->mu);
	return gen;
}

void mirror_status(struct mirror *m, struct buf *out)
{
	pthread_mutex_lock(&m->mu);
	buf_printf(out,
		   "state: %s\n"
		   "host: %s\n"
		   "pending paths: %zu\n"
		   "changes noted: %" PRIu64 "\n"
		   "changes synced: %" PRIu64 "\n"
		   "files sent: %" PRIu64 "\n"
		   "bytes sent: %" PRIu64 "\n"
		   "wire bytes out: %" PRIu64 "\n"
		   "wire bytes in: %" PRIu64 "\n"
		   "signature requests: %" PRIu64 "\n"
		   "range pushes: %" PRIu64 "\n"
		   "last error: %.*s\n",
		   state_names[m->state], m->cfg.dest, m->ndirty, m->noted, m->synced,
		   m->totals.files_sent, m->totals.literal_bytes,
		   m->totals.bytes_sent, m->totals.bytes_recv,
		   m->totals.sig_requests, m->totals.hinted_files,
		   m->last_error.len ? (int)m->last_error.len : 4,
		   m->last_error.len ? (const char *)m->last_error.data : "none");
	pthread_mutex_unlock(&m->mu);
}

int mirror_stop(struct mirror *m, int timeout_ms)
{
	int64_t left = mirror_flush(m, timeout_ms);
	if (left < 0) {
		pthread_mutex_lock(&m->mu);
		log_warn("%zu changed path%s not sent to %s before stopping (%s); "
			 "the next hermes sync or mount sends them",
			 m->ndirty, m->ndirty == 1 ? "" : "s", m->cfg.dest,
			 m->last_error.len ? error_text(&m->last_error, 0) : "timed out");
		pthread_mutex_unlock(&m->mu);
	}
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_cond_broadcast(&m->wake);
	pthread_mutex_unlock(&m->mu);
	pthread_join(m->thread, NULL);
	for (size_t i = 0; i < m->ndirty; i++)
		free(m->dirty[i]);
	free(m->dirty);
	hints_free(&m->hints);
	buf_free(&m->last_error);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->wake);
	pthread_cond_destroy(&m->moved);
	free(m);
	return left < 0 ? -ETIMEDOUT : 0;
}
