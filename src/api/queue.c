#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backend.h"
#include "gpu.h"
#include "jobspec.h"
#include "log.h"
#include "schedule.h"
#include "unpack.h"

#define STOPPED_MSG "hermesd stopped while the job ran"
static const double dur_bounds[] = { 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 7200 };
#define NBOUNDS (sizeof(dur_bounds) / sizeof(dur_bounds[0]))

/* One started job; owned by its run thread, listed in queue.running. */
struct running {
	struct running *next;
	struct queue *q;
	int64_t id;
	char *token;
	size_t gpu_slot[CONFIG_MAX_GPUS]; /* indices into q->gpus */
	size_t ngpu;
	bool cpu_slot;
	struct jobspec spec;
	struct backend_job *bj;
};

struct queue {
	const struct config *cfg;
	char host[256];
	struct gpu_set gpus;
	bool slurm; /* Slurm places GPU jobs itself: no local GPU accounting */
	pthread_t sched_thread;

	pthread_mutex_t lock;
	pthread_cond_t wake;   /* a job was queued or a slot came free */
	pthread_cond_t idle;   /* a run ended */
	/* Protected by lock: */
	struct store *store;
	bool stopping;
	struct running *running;
	size_t nrunning;
	int64_t gpu_busy[CONFIG_MAX_GPUS]; /* job id per GPU, 0 when free */
	unsigned cpu_busy;
	char *last_token;
	uint64_t dur_bucket[NBOUNDS + 1];
	uint64_t dur_count;
	double dur_sum;
	uint64_t ended[JOB_TIMED_OUT + 1];
};

/* ---------------------------------------------------------------- paths */

int queue_job_path(struct queue *q, int64_t id, const char *name, struct buf *out)
{
	buf_reset(out);
	int r = buf_printf(out, "%s/jobs/%lld%s%s", q->cfg->state_dir, (long long)id,
			   name ? "/" : "", name ? name : "");
	return r ? r : buf_append(out, "", 1);
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* ------------------------------------------------------------- the runs */

static void release(struct queue *q, struct running *rj)
{
	for (size_t i = 0; i < rj->ngpu; i++)
		q->gpu_busy[rj->gpu_slot[i]] = 0;
	if (rj->cpu_slot)
		q->cpu_busy--;
	for (struct running **p = &q->running; *p; p = &(*p)->next)
		if (*p == rj) {
			*p = rj->next;
			break;
		}
	q->nrunning--;
}

static void running_free(struct running *rj)
{
	backend_job_free(rj->bj);
	jobspec_free(&rj->spec);
	free(rj->token);
	free(rj);
}

static void placed(void *ctx, const char *backend_id, const char *host)
{
	struct running *rj = ctx;
	struct buf err = BUF_INIT;
	pthread_mutex_lock(&rj->q->lock);
	if (store_set_placement(rj->q->store, rj->id, backend_id, host, &err) < 0)
		log_error("job %lld: %.*s", (long long)rj->id, (int)err.len, (char *)err.data);
	pthread_mutex_unlock(&rj->q->lock);
	buf_free(&err);
}

static void record(struct queue *q, const struct job_result *res)
{
	size_t b = 0;
	while (b < NBOUNDS && res->duration_s > dur_bounds[b])
		b++;
	q->dur_bucket[b]++;
	q->dur_count++;
	q->dur_sum += res->duration_s;
	if (res->state <= JOB_TIMED_OUT)
		q->ended[res->state]++;
}

static void end_run(struct running *rj, struct job_result *res)
{
	struct queue *q = rj->q;
	struct buf err = BUF_INIT;
	pthread_mutex_lock(&q->lock);
	const char *state = job_state_name(res->state);
	const char *msg = res->message;
	if (res->state == JOB_CANCELLED && q->stopping) {
		state = "failed";
		msg = STOPPED_MSG;
	} else if (res->state < JOB_EXITED) {
		state = "failed";
	}
	if (store_finish(q->store, rj->id, state, res->state == JOB_EXITED, res->exit_code, msg,
			 &err) < 0)
		log_error("job %lld: %.*s", (long long)rj->id, (int)err.len, (char *)err.data);
	record(q, res);
	release(q, rj);
	pthread_cond_broadcast(&q->wake);
	pthread_cond_broadcast(&q->idle);
	pthread_mutex_unlock(&q->lock);
	buf_free(&err);
}

static void *run_main(void *arg)
{
	struct running *rj = arg;
	struct queue *q = rj->q;
	struct buf dir = BUF_INIT, ws = BUF_INIT, logp = BUF_INIT;
	struct job_result res;
	memset(&res, 0, sizeof(res));
	int log_fd = -1;
	if (queue_job_path(q, rj->id, NULL, &dir) < 0 || queue_job_path(q, rj->id, "ws", &ws) < 0 ||
	    queue_job_path(q, rj->id, "log", &logp) < 0) {
		res.state = JOB_FAILED;
		snprintf(res.message, sizeof(res.message), "out of memory");
	} else if ((log_fd = open((char *)logp.data, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				  0644)) < 0) {
		res.state = JOB_FAILED;
		snprintf(res.message, sizeof(res.message), "%s: %s", (char *)logp.data,
			 strerror(errno));
	} else {
		const char *gpus[CONFIG_MAX_GPUS];
		for (size_t i = 0; i < rj->ngpu; i++)
			gpus[i] = q->gpus.ids[rj->gpu_slot[i]];
		struct run_req req = {
			.id = rj->id, .job_dir = (char *)dir.data, .workspace = (char *)ws.data,
			.log_path = (char *)logp.data, .log_fd = log_fd, .spec = &rj->spec,
			.gpus = gpus, .ngpus = rj->ngpu,
		};
		backend_job_run(rj->bj, &req, placed, rj, &res);
	}
	if (log_fd >= 0)
		close(log_fd);
	buf_free(&dir);
	buf_free(&ws);
	buf_free(&logp);
	end_run(rj, &res);
	running_free(rj);
	return NULL;
}

/* ------------------------------------------------------------ scheduler */

static const struct token *token_by_name(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->ntokens; i++)
		if (!strcmp(cfg->tokens[i].name, name))
			return &cfg->tokens[i];
	return NULL;
}

static bool token_ok(void *ctx, const char *token)
{
	struct queue *q = ctx;
	const struct token *t = token_by_name(q->cfg, token);
	if (!t || !t->max_running)
		return true;
	unsigned n = 0;
	for (struct running *rj = q->running; rj; rj = rj->next)
		n += !strcmp(rj->token, token);
	return n < t->max_running;
}

static struct sched_free free_resources(struct queue *q)
{
	struct sched_free f = { 0, q->cfg->cpu_slots - q->cpu_busy };
	if (q->slurm)
		f.gpus = CONFIG_MAX_GPUS;
	else
		for (size_t i = 0; i < q->gpus.n; i++)
			f.gpus += q->gpu_busy[i] == 0;
	return f;
}

/* Give rj its GPUs (or CPU slot) and write "0,1" into gpu_list. */
static void take_resources(struct queue *q, struct running *rj, unsigned ngpus,
			   char *gpu_list, size_t sz)
{
	gpu_list[0] = '\0';
	if (ngpus == 0) {
		rj->cpu_slot = true;
		q->cpu_busy++;
		return;
	}
	if (q->slurm) {
		snprintf(gpu_list, sz, "slurm:%u", ngpus);
		return;
	}
	size_t used = 0;
	for (size_t i = 0; i < q->gpus.n && rj->ngpu < ngpus; i++) {
		if (q->gpu_busy[i])
			continue;
		q->gpu_busy[i] = rj->id;
		rj->gpu_slot[rj->ngpu++] = i;
		if (used < sz)
			used += (size_t)snprintf(gpu_list + used, sz - used, "%s%s", used ? "," : "",
						 q->gpus.ids[i]);
	}
}

static int start_job(struct queue *q, const struct job_row *row, struct buf *err)
{
	struct running *rj = calloc(1, sizeof(*rj));
	if (!rj || !(rj->token = strdup(row->token)) || !(rj->bj = backend_job_new(q->cfg))) {
		if (rj)
			free(rj->token);
		free(rj);
		return -ENOMEM;
	}
	rj->q = q;
	rj->id = row->id;
	int r = jobspec_parse(row->spec, q->cfg->image, q->cfg->wall_time_s, &rj->spec, err);
	char gpu_list[CONFIG_MAX_GPUS * 8];
	if (r == 0) {
		take_resources(q, rj, row->gpus, gpu_list, sizeof(gpu_list));
		r = store_start(q->store, row->id, q->host, gpu_list, err);
	}
	if (r == 0) {
		rj->next = q->running;
		q->running = rj;
		q->nrunning++;
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		r = -pthread_create(&t, &attr, run_main, rj);
		pthread_attr_destroy(&attr);
		if (r == 0)
			return 0;
		buf_printf(err, "cannot start a thread for job %lld", (long long)row->id);
		release(q, rj);
	} else {
		for (size_t i = 0; i < rj->ngpu; i++)
			q->gpu_busy[rj->gpu_slot[i]] = 0;
		if (rj->cpu_slot)
			q->cpu_busy--;
	}
	if (buf_append(err, "", 1) == 0)
		store_finish(q->store, row->id, "failed", false, 0, (char *)err->data, err);
	running_free(rj);
	return r;
}

/* Start the next job if one fits. 1: started one, 0: none to start. */
static int start_next(struct queue *q)
{
	struct sched_free f = free_resources(q);
	if (f.gpus == 0 && f.cpu_slots == 0)
		return 0;
	struct job_row *rows;
	size_t n;
	struct buf err = BUF_INIT;
	if (store_list(q->store, NULL, "queued", &rows, &n, &err) < 0) {
		log_error("%.*s", (int)err.len, (char *)err.data);
		buf_free(&err);
		return 0;
	}
	struct sched_job *jobs = calloc(n ? n : 1, sizeof(*jobs));
	long pick = -1;
	if (jobs) {
		for (size_t i = 0; i < n; i++)
			jobs[i] = (struct sched_job){ rows[i].id, rows[i].token, rows[i].gpus };
		pick = sched_pick(jobs, n, &f, q->last_token, token_ok, q);
	}
	int started = 0;
	if (pick >= 0) {
		const struct job_row *row = &rows[pick];
		char *t = strdup(row->token);
		if (t) {
			free(q->last_token);
			q->last_token = t;
		}
		if (start_job(q, row, &err) < 0)
			log_error("job %lld: %.*s", (long long)row->id, (int)err.len, (char *)err.data);
		started = 1;
	}
	free(jobs);
	store_rows_free(rows, n);
	buf_free(&err);
	return started;
}

static void *sched_main(void *arg)
{
	struct queue *q = arg;
	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		if (start_next(q))
			continue;
		/* Woken by every submit and every end; the timeout is a safety net. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		pthread_cond_timedwait(&q->wake, &q->lock, &ts);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* ------------------------------------------------------- open and close */

/* Runs the store has as running belong to a dead hermesd: stop them, so a
 * job reported failed does not go on in Slurm. */
static void abandon_running(struct queue *q)
{
	struct job_row *rows;
	size_t n;
	struct buf err = BUF_INIT;
	if (store_list(q->store, NULL, "running", &rows, &n, &err) < 0) {
		log_error("%.*s", (int)err.len, (char *)err.data);
		buf_free(&err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		buf_reset(&err);
		if (backend_abandon(q->cfg, rows[i].backend_id, &err) < 0)
			log_warn("job %lld: %.*s", (long long)rows[i].id, (int)err.len, (char *)err.data);
	}
	store_rows_free(rows, n);
	buf_free(&err);
}

static int open_store(struct queue *q, struct buf *err)
{
	struct buf p = BUF_INIT;
	int r = mkdir_p(q->cfg->state_dir);
	if (r < 0) {
		buf_printf(err, "%s: cannot create the state directory: %s", q->cfg->state_dir,
			   strerror(-r));
		return r;
	}
	r = buf_printf(&p, "%s/tmp", q->cfg->state_dir);
	r = r ? r : buf_append(&p, "", 1);
	if (r == 0 && (r = mkdir_p((char *)p.data)) < 0)
		buf_printf(err, "%s: %s", (char *)p.data, strerror(-r));
	buf_reset(&p);
	if (r == 0 && !(r = buf_printf(&p, "%s/jobs.db", q->cfg->state_dir)) &&
	    !(r = buf_append(&p, "", 1)))
		r = store_open(&q->store, (char *)p.data, err);
	buf_free(&p);
	if (r < 0)
		return r;
	abandon_running(q);
	r = store_recover(q->store, "hermesd stopped or died while the job ran", err);
	if (r > 0)
		log_warn("%d job(s) that ran when hermesd stopped are marked failed", r);
	return r < 0 ? r : 0;
}

int queue_open(struct queue **out, const struct config *cfg, struct buf *err)
{
	struct queue *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->cfg = cfg;
	q->slurm = cfg->backend == BACKEND_SLURM;
	if (gethostname(q->host, sizeof(q->host) - 1) < 0)
		snprintf(q->host, sizeof(q->host), "localhost");
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	pthread_cond_init(&q->idle, NULL);
	int r = gpu_set_init(&q->gpus, cfg->gpus_setting, err);
	if (r == 0 && q->gpus.n > CONFIG_MAX_GPUS) {
		buf_printf(err, "gpus = %s: more than %d GPUs", cfg->gpus_setting, CONFIG_MAX_GPUS);
		r = -E2BIG;
	}
	r = r ? r : open_store(q, err);
	if (r == 0 && (r = backend_sweep(cfg, err)) > 0)
		log_warn("removed %d container(s) left by an earlier hermesd", r);
	if (r >= 0)
		r = -pthread_create(&q->sched_thread, NULL, sched_main, q);
	if (r < 0) {
		store_close(q->store);
		gpu_set_free(&q->gpus);
		free(q);
		return r;
	}
	*out = q;
	return 0;
}

void queue_close(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->sched_thread, NULL);
	pthread_mutex_lock(&q->lock);
	for (struct running *rj = q->running; rj; rj = rj->next)
		backend_job_cancel(rj->bj);
	while (q->nrunning > 0)
		pthread_cond_wait(&q->idle, &q->lock);
	pthread_mutex_unlock(&q->lock);
	store_close(q->store);
	gpu_set_free(&q->gpus);
	free(q->last_token);
	pthread_cond_destroy(&q->wake);
	pthread_cond_destroy(&q->idle);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* --------------------------------------------------------------- submit */

static int admit(struct queue *q, const struct token *t, const struct jobspec *spec,
		 const char *json, int64_t *id, struct buf *err)
{
	if (spec->gpus > t->max_gpus) {
		buf_printf(err, "token %s may ask for at most %u GPU(s), the job asks for %u",
			   t->name, t->max_gpus, spec->gpus);
		return -EPERM;
	}
	if (!q->slurm && spec->gpus > q->gpus.n) {
		buf_printf(err, "the job asks for %u GPU(s) but host %s has %zu", spec->gpus, q->host,
			   q->gpus.n);
		return -EPERM;
	}
	pthread_mutex_lock(&q->lock);
	int64_t queued = 0, staging = 0;
	int r = store_count(q->store, t->name, "queued", &queued, err);
	r = r ? r : store_count(q->store, t->name, "staging", &staging, err);
	if (r == 0 && t->max_queued && queued + staging >= t->max_queued) {
		buf_printf(err, "token %s already has %lld job(s) queued (max_queued = %u)", t->name,
			   (long long)(queued + staging), t->max_queued);
		r = -EDQUOT;
	}
	r = r ? r : store_insert(q->store, t->name, json, spec->gpus, id, err);
	pthread_mutex_unlock(&q->lock);
	return r;
}

/* Unpack into STATE/jobs/ID/ws. */
static int stage(struct queue *q, int64_t id, const char *archive_path, struct buf *err)
{
	struct buf ws = BUF_INIT;
	int r = queue_job_path(q, id, "ws", &ws);
	if (r == 0 && (r = mkdir_p((char *)ws.data)) < 0)
		buf_printf(err, "%s: %s", (char *)ws.data, strerror(-r));
	struct stat st;
	if (r == 0 && archive_path && stat(archive_path, &st) == 0 && st.st_size > 0) {
		int fd = open((char *)ws.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			buf_printf(err, "%s: %s", (char *)ws.data, strerror(errno));
		} else {
			r = unpack_archive(archive_path, fd, q->cfg->max_unpacked, err);
			close(fd);
		}
	}
	buf_free(&ws);
	return r;
}

int queue_submit(struct queue *q, const struct token *t, const char *spec_json,
		 const char *archive_path, int64_t *id, struct buf *err)
{
	struct jobspec spec;
	struct buf json = BUF_INIT;
	int r = jobspec_parse(spec_json, q->cfg->image, q->cfg->wall_time_s, &spec, err);
	if (r < 0)
		return r;
	r = jobspec_to_json(&spec, &json);
	r = r ? r : buf_append(&json, "", 1);
	r = r ? r : admit(q, t, &spec, (char *)json.data, id, err);
	jobspec_free(&spec);
	buf_free(&json);
	if (r < 0)
		return r;
	r = stage(q, *id, archive_path, err);
	struct buf dir = BUF_INIT, e2 = BUF_INIT;
	if (r < 0 && queue_job_path(q, *id, NULL, &dir) == 0)
		remove_tree((char *)dir.data);
	buf_free(&dir);
	pthread_mutex_lock(&q->lock);
	if (r < 0)
		store_delete(q->store, *id, &e2);
	else if ((r = store_enqueue(q->store, *id, err)) == 0)
		pthread_cond_broadcast(&q->wake);
	pthread_mutex_unlock(&q->lock);
	buf_free(&e2);
	return r;
}

/* ---------------------------------------------------------------- reads */

int queue_get(struct queue *q, const char *token, int64_t id, struct job_row *out,
	      struct buf *err)
{
	pthread_mutex_lock(&q->lock);
	int r = store_get(q->store, id, out, err);
	pthread_mutex_unlock(&q->lock);
	if (r == 0 && token && strcmp(out->token, token)) {
		store_row_free(out);
		r = -ENOENT;
	}
	return r;
}

int queue_list(struct queue *q, const char *token, struct job_row **rows, size_t *n,
	       struct buf *err)
{
	pthread_mutex_lock(&q->lock);
	int r = store_list(q->store, token, NULL, rows, n, err);
	pthread_mutex_unlock(&q->lock);
	return r;
}

static bool live_state(const char *s)
{
	return !strcmp(s, "staging") || !strcmp(s, "queued") || !strcmp(s, "running");
}

bool queue_job_live(struct queue *q, int64_t id)
{
	struct job_row row = { 0 };
	struct buf err = BUF_INIT;
	pthread_mutex_lock(&q->lock);
	bool live = store_get(q->store, id, &row, &err) == 0 && live_state(row.state);
	pthread_mutex_unlock(&q->lock);
	if (row.token)
		store_row_free(&row);
	buf_free(&err);
	return live;
}

int queue_cancel(struct queue *q, const char *token, int64_t id, struct buf *err)
{
	struct job_row row = { 0 };
	pthread_mutex_lock(&q->lock);
	int r = store_get(q->store, id, &row, err);
	if (r == 0 && strcmp(row.token, token))
		r = -ENOENT;
	if (r == 0 && (!strcmp(row.state, "queued") || !strcmp(row.state, "staging")))
		r = store_finish(q->store, id, "cancelled", false, 0, "cancelled before it started",
				 err);
	else if (r == 0 && !strcmp(row.state, "running"))
		for (struct running *rj = q->running; rj; rj = rj->next)
			if (rj->id == id)
				backend_job_cancel(rj->bj);
	pthread_mutex_unlock(&q->lock);
	if (row.token)
		store_row_free(&row);
	return r;
}

/* -------------------------------------------------------------- metrics */

static int gauge(struct buf *o, const char *name, const char *help, double v)
{
	return buf_printf(o, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v);
}

static int metrics_locked(struct queue *q, struct buf *o)
{
	int64_t queued = 0;
	struct buf err = BUF_INIT;
	int r = store_count(q->store, NULL, "queued", &queued, &err);
	buf_free(&err);
	r = r ? r : gauge(o, "hermes_jobs_queued", "Jobs waiting to start.", (double)queued);
	r = r ? r : gauge(o, "hermes_jobs_running", "Jobs running now.", (double)q->nrunning);
	r = r ? r : gauge(o, "hermes_cpu_slots", "Slots for CPU-only jobs.", q->cfg->cpu_slots);
	r = r ? r : gauge(o, "hermes_cpu_slots_busy", "CPU slots in use.", q->cpu_busy);
	r = r ? r : buf_printf(o, "# HELP hermes_jobs_ended_total Jobs ended since hermesd started, by state.\n"
				  "# TYPE hermes_jobs_ended_total counter\n");
	for (int s = JOB_EXITED; r == 0 && s <= JOB_TIMED_OUT; s++)
		r = buf_printf(o, "hermes_jobs_ended_total{state=\"%s\"} %llu\n",
			       job_state_name((enum job_state)s), (unsigned long long)q->ended[s]);
	r = r ? r : buf_printf(o, "# HELP hermes_job_duration_seconds Run time of ended jobs.\n"
				  "# TYPE hermes_job_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t b = 0; r == 0 && b <= NBOUNDS; b++) {
		cum += q->dur_bucket[b];
		if (b < NBOUNDS)
			r = buf_printf(o, "hermes_job_duration_seconds_bucket{le=\"%g\"} %llu\n",
				       dur_bounds[b], (unsigned long long)cum);
		else
			r = buf_printf(o, "hermes_job_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
				       (unsigned long long)cum);
	}
	r = r ? r : buf_printf(o, "hermes_job_duration_seconds_sum %g\nhermes_job_duration_seconds_count %llu\n",
			       q->dur_sum, (unsigned long long)q->dur_count);
	r = r ? r : buf_printf(o, "# HELP hermes_gpu_busy 1 while a job holds the GPU.\n# TYPE hermes_gpu_busy gauge\n");
	for (size_t i = 0; r == 0 && i < q->gpus.n; i++)
		r = buf_printf(o, "hermes_gpu_busy{gpu=\"%s\"} %d\n", q->gpus.ids[i], q->gpu_busy[i] != 0);
	return r;
}

static int gpu_metrics(struct buf *o)
{
	struct gpu_stat *st;
	size_t n;
	struct buf err = BUF_INIT;
	int r = gpu_query(&st, &n, &err);
	if (r < 0) {
		/* A broken driver must not take /metrics down with it. */
		log_warn("%.*s", (int)err.len, (char *)err.data);
		buf_free(&err);
		return 0;
	}
	buf_free(&err);
	if (n > 0)
		r = buf_printf(o, "# HELP hermes_gpu_utilization_ratio GPU utilisation (nvidia-smi).\n"
				  "# TYPE hermes_gpu_utilization_ratio gauge\n"
				  "# HELP hermes_gpu_memory_used_bytes GPU memory in use (nvidia-smi).\n"
				  "# TYPE hermes_gpu_memory_used_bytes gauge\n"
				  "# HELP hermes_gpu_memory_total_bytes GPU memory (nvidia-smi).\n"
				  "# TYPE hermes_gpu_memory_total_bytes gauge\n");
	for (size_t i = 0; r == 0 && i < n; i++)
		r = buf_printf(o, "hermes_gpu_utilization_ratio{gpu=\"%s\"} %g\n"
				  "hermes_gpu_memory_used_bytes{gpu=\"%s\"} %llu\n"
				  "hermes_gpu_memory_total_bytes{gpu=\"%s\"} %llu\n",
			       st[i].index, st[i].utilization, st[i].index,
			       (unsigned long long)st[i].memory_used, st[i].index,
			       (unsigned long long)st[i].memory_total);
	free(st);
	return r;
}

int queue_metrics(struct queue *q, struct buf *out)
{
	pthread_mutex_lock(&q->lock);
	int r = metrics_locked(q, out);
	pthread_mutex_unlock(&q->lock);
	return r ? r : gpu_metrics(out);
}

int queue_gpus_json(struct queue *q, struct buf *out, struct buf *err)
{
	struct gpu_stat *st;
	size_t n;
	int r = gpu_query(&st, &n, err);
	if (r < 0)
		return r;
	json_object *arr = json_object_new_array();
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; arr && i < q->gpus.n; i++) {
		json_object *g = json_object_new_object();
		json_object_object_add(g, "index", json_object_new_string(q->gpus.ids[i]));
		json_object_object_add(g, "job", q->gpu_busy[i] ? json_object_new_int64(q->gpu_busy[i]) : NULL);
		for (size_t k = 0; k < n; k++) {
			if (strcmp(st[k].index, q->gpus.ids[i]))
				continue;
			json_object_object_add(g, "name", json_object_new_string(st[k].name));
			json_object_object_add(g, "utilization", json_object_new_double(st[k].utilization));
			json_object_object_add(g, "memory_used_bytes", json_object_new_int64((int64_t)st[k].memory_used));
			json_object_object_add(g, "memory_total_bytes", json_object_new_int64((int64_t)st[k].memory_total));
		}
		json_object_array_add(arr, g);
	}
	pthread_mutex_unlock(&q->lock);
	free(st);
	if (!arr)
		return -ENOMEM;
	r = buf_append_str(out, json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
	return r;
}
