/* job: one command in a Podman container; see job.h.
 *
 * Threads of one job_run:
 *   caller   creates the container, then attaches to it (podman_attach) and
 *            forwards output, counting it against the output limit; once the
 *            stream ends it joins the supervisor and removes the container.
 *   supervisor  waits until the attach is in place (so no output is lost),
 *            starts the container, waits for it with the wall time as the
 *            bound, kills it on timeout.
 *   any      job_cancel kills the container.
 *
 * States (result.state), decided once both threads are done:
 *   start refused -> FAILED; cancel before the end -> CANCELLED;
 *   wall time hit -> TIMED_OUT; otherwise EXITED (with a message when the job
 *   was killed for flooding output or running out of memory).
 */
#include "job.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdi.h"
#include "podman.h"

/* After the container stopped, the attach stream gets this long to drain. */
#define ATTACH_GRACE_S 5.0
/* After a kill, the wait for the container to stop is bounded by this. */
#define KILL_WAIT_MS 30000L
/* Output beyond output_bytes + max(output_bytes, FLOOD_SLACK) kills the job. */
#define FLOOD_SLACK (8u << 20)

struct job {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* The fields below are protected by lock. */
	bool cancelled;    /* job_cancel was called */
	bool running;      /* job_run is between create and remove: pm and id valid */
	unsigned kills;    /* job_cancel calls in flight using pm */
	bool attached;     /* the attach stream is in place */
	bool attach_done;  /* podman_attach returned */
	bool started;      /* podman_start returned 0 */
	bool notified;     /* the started callback returned (output waits for it) */
	bool no_start;     /* the supervisor will not start the container */
	bool wait_done;    /* the supervisor is finished */
	double wait_end;   /* when wait_done became true (monotonic seconds) */
	bool timed_out;
	bool killed_by_cancel;
	struct podman *pm;
	char id[72];

	/* Owned by the supervisor until wait_done, then by the caller. */
	int start_rc;
	struct buf start_err;
	int exit_code;
	double t_start, t_end;

	/* Owned by the caller thread. */
	const struct job_spec *spec;
	const struct job_callbacks *cb;
	pthread_mutex_t cb_lock; /* callbacks never run two at once */
	uint64_t out_total, out_forwarded;
	bool truncated, flooded;
	bool out_ready; /* the started callback ran: output may follow it */
	pthread_t flood_killer;
	bool flood_killer_started;
};

const char *job_state_name(enum job_state s)
{
	static const char *const names[] = {
		[JOB_QUEUED] = "queued",       [JOB_RUNNING] = "running",
		[JOB_EXITED] = "exited",       [JOB_FAILED] = "failed",
		[JOB_CANCELLED] = "cancelled", [JOB_TIMED_OUT] = "timed-out",
	};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct job *job_new(void)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->cb_lock, NULL);
	pthread_cond_init(&j->cond, &ca);
	pthread_condattr_destroy(&ca);
	return j;
}

void job_free(struct job *j)
{
	if (!j)
		return;
	buf_free(&j->start_err);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->cb_lock);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

void job_cancel(struct job *j)
{
	pthread_mutex_lock(&j->lock);
	j->cancelled = true;
	bool kill = j->running && !j->wait_done;
	if (kill) {
		j->kills++;
		j->killed_by_cancel = true;
	}
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (!kill)
		return;
	struct buf err = BUF_INIT;
	/* A failed kill still ends the job: the supervisor re-checks cancelled
	 * after start, and the container is removed with force at the end. */
	podman_kill(j->pm, j->id, &err);
	buf_free(&err);
	pthread_mutex_lock(&j->lock);
	j->kills--;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

/* ---- supervisor ---- */

static void set_done(struct job *j)
{
	pthread_mutex_lock(&j->lock);
	j->wait_done = true;
	j->wait_end = now_s();
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

/* Wait for the container, killing it when the wall time is over. */
static void supervise_wait(struct job *j)
{
	unsigned wall = j->spec->wall_time_s;
	long bound = wall ? (long)((j->t_start + wall - now_s()) * 1000) : 0;
	if (wall && bound < 1)
		bound = 1;
	int rc = podman_wait(j->pm, j->id, bound, &j->exit_code, &j->start_err);
	if (rc == -ETIMEDOUT) {
		buf_reset(&j->start_err);
		pthread_mutex_lock(&j->lock);
		j->timed_out = true;
		pthread_mutex_unlock(&j->lock);
		podman_kill(j->pm, j->id, &j->start_err);
		buf_reset(&j->start_err);
		rc = podman_wait(j->pm, j->id, KILL_WAIT_MS, &j->exit_code, &j->start_err);
	}
	j->t_end = now_s();
	if (rc) {
		/* The end is unknown (Podman went away): treated as a failure. */
		j->start_rc = rc;
		j->exit_code = -1;
	}
}

static void *supervise(void *arg)
{
	struct job *j = arg;
	pthread_mutex_lock(&j->lock);
	while (!j->attached && !j->attach_done && !j->cancelled)
		pthread_cond_wait(&j->cond, &j->lock);
	bool go = j->attached && !j->cancelled;
	if (!go)
		j->no_start = true;
	pthread_mutex_unlock(&j->lock);
	if (!go) {
		set_done(j);
		return NULL;
	}
	j->t_start = now_s();
	j->start_rc = podman_start(j->pm, j->id, &j->start_err);
	pthread_mutex_lock(&j->lock);
	j->started = j->start_rc == 0;
	j->no_start = !j->started;
	bool cancelled = j->cancelled;
	pthread_mutex_unlock(&j->lock);
	if (j->started && j->cb->started) {
		pthread_mutex_lock(&j->cb_lock);
		j->cb->started(j->cb->ctx, j->id);
		pthread_mutex_unlock(&j->cb_lock);
	}
	pthread_mutex_lock(&j->lock);
	j->notified = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (j->started && cancelled) {
		/* job_cancel may have run before start, when a kill had no effect */
		struct buf e = BUF_INIT;
		podman_kill(j->pm, j->id, &e);
		buf_free(&e);
	}
	if (j->started)
		supervise_wait(j);
	set_done(j);
	return NULL;
}

/* ---- the caller's side: output ---- */

static void on_attached(void *ctx)
{
	struct job *j = ctx;
	pthread_mutex_lock(&j->lock);
	j->attached = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

static void *flood_kill_thread(void *arg)
{
	struct job *j = arg;
	struct buf e = BUF_INIT;
	podman_kill(j->pm, j->id, &e);
	buf_free(&e);
	return NULL;
}

/* The kill runs on its own thread: this one must go on draining the
 * stream, or conmon blocks writing to it and Podman's kill times out. */
static void kill_for_flood(struct job *j)
{
	j->flooded = true;
	j->flood_killer_started = pthread_create(&j->flood_killer, NULL, flood_kill_thread, j) == 0;
	if (!j->flood_killer_started)
		flood_kill_thread(j); /* no thread: kill from here, slower but it ends */
}

static void on_frame(void *ctx, int stream, const void *data, size_t len)
{
	struct job *j = ctx;
	if (!j->out_ready) {
		/* Output can arrive before podman_start returns; callers see
		 * started() first. */
		pthread_mutex_lock(&j->lock);
		while (!j->notified && !j->no_start)
			pthread_cond_wait(&j->cond, &j->lock);
		pthread_mutex_unlock(&j->lock);
		j->out_ready = true;
	}
	uint64_t limit = j->spec->output_bytes;
	j->out_total += len;
	size_t fwd = len;
	if (limit) {
		uint64_t room = limit - j->out_forwarded;
		if (fwd > room) {
			fwd = (size_t)room;
			j->truncated = true;
		}
	}
	if (fwd && j->cb->output) {
		pthread_mutex_lock(&j->cb_lock);
		j->cb->output(j->cb->ctx, stream, data, fwd);
		pthread_mutex_unlock(&j->cb_lock);
	}
	j->out_forwarded += fwd;
	uint64_t slack = limit > FLOOD_SLACK ? limit : FLOOD_SLACK;
	if (limit && !j->flooded && j->out_total > limit + slack)
		kill_for_flood(j);
}

/* Stop attaching when the container will never start, or when it stopped
 * and the stream did not end within the grace time. */
static bool attach_abort(void *ctx)
{
	struct job *j = ctx;
	pthread_mutex_lock(&j->lock);
	bool stop = j->no_start && !j->started;
	if (j->wait_done && now_s() - j->wait_end > ATTACH_GRACE_S)
		stop = true;
	pthread_mutex_unlock(&j->lock);
	return stop;
}

/* ---- job_run ---- */

static int build_spec(const struct job_spec *s, struct podman_spec *ps, struct podman_bind **binds,
		      const char ***env, const char **argv)
{
	*binds = calloc(s->nmounts + 1, sizeof(**binds));
	*env = calloc(s->nenv + 1, sizeof(**env));
	if (!*binds || !*env)
		return -ENOMEM;
	(*binds)[0] = (struct podman_bind){ s->workspace, JOB_WORKDIR, false };
	for (size_t i = 0; i < s->nmounts; i++)
		(*binds)[i + 1] = (struct podman_bind){ s->mounts[i].src, s->mounts[i].dst,
							s->mounts[i].readonly };
	/* A writable HOME for tools that want one (/ is read-only); the spec's
	 * env comes after it and wins. */
	(*env)[0] = "HOME=/tmp";
	for (size_t i = 0; i < s->nenv; i++)
		(*env)[i + 1] = s->env[i];
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = s->command;
	*ps = (struct podman_spec){
		.name = s->name, .image = s->image, .rootfs = s->rootfs,
		.argv = argv, .argc = 3, .env = *env, .nenv = s->nenv + 1,
		.binds = *binds, .nbinds = s->nmounts + 1, .workdir = JOB_WORKDIR,
		.user = s->user, .devices = s->gpus, .ndevices = s->ngpus,
		.label_key = s->owner ? "hermes.owner" : NULL, .label_value = s->owner,
		.network = s->network, .memory_bytes = s->memory_bytes, .pids = s->pids,
		/* conmon's own kill, should this process die with the job running */
		.stop_timeout_s = s->wall_time_s ? s->wall_time_s + 30 : 0,
	};
	return 0;
}

static int create_container(struct job *j, struct buf *err)
{
	struct podman_spec ps;
	struct podman_bind *binds = NULL;
	const char **env = NULL;
	const char *argv[3];
	int rc = build_spec(j->spec, &ps, &binds, &env, argv);
	if (rc)
		buf_printf(err, "job %s: out of memory", j->spec->name);
	else
		rc = podman_create(j->pm, &ps, j->id, sizeof(j->id), err);
	free(binds);
	free(env);
	return rc;
}

static bool oom_killed(struct job *j)
{
	struct buf out = BUF_INIT, e = BUF_INIT;
	bool oom = false;
	if (podman_inspect(j->pm, j->id, &out, &e) == 0) {
		json_object *o = json_tokener_parse((const char *)out.data), *st, *v;
		if (o && json_object_object_get_ex(o, "State", &st) &&
		    json_object_object_get_ex(st, "OOMKilled", &v))
			oom = json_object_get_boolean(v);
		json_object_put(o);
	}
	buf_free(&out);
	buf_free(&e);
	return oom;
}

static void fill_result(struct job *j, struct job_result *r)
{
	const struct job_spec *s = j->spec;
	r->output_truncated = j->truncated;
	r->duration_s = j->t_end > j->t_start ? j->t_end - j->t_start : 0;
	if (j->killed_by_cancel || (j->cancelled && !j->started)) {
		r->state = JOB_CANCELLED;
		snprintf(r->message, sizeof(r->message), "cancelled");
	} else if (j->start_rc) {
		r->state = JOB_FAILED;
		snprintf(r->message, sizeof(r->message), "%s",
			 j->start_err.len ? (char *)j->start_err.data : "container did not start");
	} else if (j->timed_out) {
		r->state = JOB_TIMED_OUT;
		snprintf(r->message, sizeof(r->message), "wall time of %us exceeded: killed",
			 s->wall_time_s);
	} else {
		r->state = JOB_EXITED;
		r->exit_code = j->exit_code;
		if (j->flooded)
			snprintf(r->message, sizeof(r->message),
				 "output went far beyond the %llu-byte limit: killed",
				 (unsigned long long)s->output_bytes);
		else if (j->exit_code == 137 && s->memory_bytes)
			/* Podman 4.3 with cgroup v1 often misses the OOM kill, so
			 * an unexplained SIGKILL is reported as the likely cause. */
			snprintf(r->message, sizeof(r->message), oom_killed(j)
				 ? "out of memory: killed at the %llu-byte memory limit"
				 : "killed by SIGKILL, most likely out of memory (memory limit %llu bytes)",
				 (unsigned long long)s->memory_bytes);
	}
	if (r->state != JOB_EXITED)
		r->exit_code = j->exit_code;
}

/* Attach, start (supervisor), wait; the container exists. */
static void run_container(struct job *j)
{
	pthread_t sup;
	if (pthread_create(&sup, NULL, supervise, j)) {
		j->start_rc = -EAGAIN;
		buf_printf(&j->start_err, "job %s: cannot create a thread", j->spec->name);
		return;
	}
	struct podman_attach_cb acb = { on_attached, on_frame, attach_abort, j };
	struct buf aerr = BUF_INIT;
	int arc = podman_attach(j->pm, j->id, &acb, &aerr);
	pthread_mutex_lock(&j->lock);
	j->attach_done = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	pthread_join(sup, NULL);
	if (j->flood_killer_started)
		pthread_join(j->flood_killer, NULL);
	if (arc && arc != -ECANCELED && !j->start_rc && !j->started) {
		j->start_rc = arc;
		buf_printf(&j->start_err, "%s", (char *)aerr.data);
	}
	buf_free(&aerr);
}

static int remove_container(struct job *j, struct buf *err)
{
	pthread_mutex_lock(&j->lock);
	while (j->kills)
		pthread_cond_wait(&j->cond, &j->lock);
	j->running = false;
	pthread_mutex_unlock(&j->lock);
	int rc = podman_remove(j->pm, j->id, err);
	if (rc == -EBUSY) /* still stopping after a kill: once more */
		rc = podman_remove(j->pm, j->id, err);
	return rc;
}

static int check_spec(const struct job_spec *s, struct buf *err)
{
	if (!s->podman_socket || !s->name || !s->workspace || !s->command ||
	    (!s->image == !s->rootfs)) {
		buf_printf(err, "job %s: incomplete spec (socket, workspace, command and one of "
			   "image or rootfs are needed)", s->name ? s->name : "?");
		return -EINVAL;
	}
	return s->ngpus ? job_check_gpus(s->gpus, s->ngpus, err) : 0;
}

int job_run(struct job *j, const struct job_spec *spec, const struct job_callbacks *cb,
	    struct job_result *result, struct buf *err)
{
	static const struct job_callbacks no_cb;
	memset(result, 0, sizeof(*result));
	result->state = JOB_FAILED;
	j->spec = spec;
	j->cb = cb ? cb : &no_cb;
	int rc = check_spec(spec, err);
	if (rc == 0 && !(j->pm = podman_new(spec->podman_socket))) {
		buf_printf(err, "job %s: out of memory", spec->name);
		rc = -ENOMEM;
	}
	pthread_mutex_lock(&j->lock);
	bool cancelled = j->cancelled;
	pthread_mutex_unlock(&j->lock);
	if (rc == 0 && cancelled) {
		result->state = JOB_CANCELLED;
		snprintf(result->message, sizeof(result->message), "cancelled");
		goto out;
	}
	if (rc == 0)
		rc = create_container(j, err);
	if (rc) {
		snprintf(result->message, sizeof(result->message), "%s",
			 err->len ? (char *)err->data : "could not run");
		goto out;
	}
	snprintf(result->container_id, sizeof(result->container_id), "%s", j->id);
	pthread_mutex_lock(&j->lock);
	j->running = true;
	pthread_mutex_unlock(&j->lock);
	run_container(j);
	fill_result(j, result);
	rc = remove_container(j, err);
	if (rc == 0 && result->state == JOB_FAILED) {
		rc = j->start_rc;
		buf_printf(err, "%s", result->message);
	}
out:
	podman_free(j->pm);
	j->pm = NULL;
	return rc;
}

/* ---- outside a run ---- */

int job_check_gpus(const char *const *gpus, size_t ngpus, struct buf *err)
{
	for (size_t i = 0; i < ngpus; i++) {
		int rc = cdi_check(gpus[i], err);
		if (rc)
			return rc;
	}
	return 0;
}

int job_sweep(const char *podman_socket, const char *owner, struct buf *err)
{
	struct podman *pm = podman_new(podman_socket);
	if (!pm) {
		buf_printf(err, "sweep of Podman at %s: out of memory", podman_socket);
		return -ENOMEM;
	}
	struct buf ids = BUF_INIT;
	size_t n = 0;
	int rc = podman_list_label(pm, "hermes.owner", owner, &ids, &n, err);
	const char *id = (const char *)ids.data;
	for (size_t i = 0; rc == 0 && i < n; i++, id += strlen(id) + 1)
		rc = podman_remove(pm, id, err);
	buf_free(&ids);
	podman_free(pm);
	return rc ? rc : (int)n;
}
