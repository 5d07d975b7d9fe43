/* jobclient.c: see jobclient.h.
 *
 * Lock order: jc->lock only; the I/O thread never holds it across network
 * I/O. Files under STATE_DIR/ID are written by the I/O thread alone. */
#include "jobclient.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"
#include "transport.h"
#include "wire.h"

#define RECV_POLL_MS 100
#define HANDSHAKE_MS 30000

struct jobclient {
	struct jobclient_config cfg; /* cfg.state_dir points to state_dir */
	char state_dir[PATH_MAX];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;

	/* Jobs known, oldest first; the last may be running. */
	struct jobinfo jobs[JOBCLIENT_KEPT];
	size_t njobs;
	bool running;          /* jobs[njobs-1] runs */
	struct timespec t0;    /* monotonic start of the running job */

	/* One run request at a time, handed from jobclient_run to the I/O thread. */
	char *run_command;     /* set: to send */
	bool run_waiting;      /* sent, waiting for STARTED or ERROR */
	bool run_done;
	int run_rc;
	uint64_t run_id;
	struct buf run_err;
	uint32_t req;          /* request id of the latest run */
	/* The latest run, when it could not start: what .hermes/out/status shows. */
	struct jobinfo refused;
	bool refused_latest;
	bool cancel;           /* a cancel to send */

	/* I/O thread only. */
	struct transport *t;
	struct wire w;
	int out_fd[3];         /* [1] stdout, [2] stderr of the running job */
};

static void notify(struct jobclient *jc)
{
	if (jc->cfg.changed)
		jc->cfg.changed(jc->cfg.ctx);
}

void jobclient_path(struct jobclient *jc, uint64_t id, const char *file, char *out, size_t n)
{
	snprintf(out, n, "%s/%llu%s%s", jc->cfg.state_dir, (unsigned long long)id,
		 file ? "/" : "", file ? file : "");
}

static double elapsed_s(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ------------------------------------------------------- status records --- */

void jobinfo_format(const struct jobinfo *ji, struct buf *out)
{
	buf_printf(out, "id: %llu\nstate: %s\n", (unsigned long long)ji->id, job_state_name(ji->state));
	if (ji->state == JOB_EXITED)
		buf_printf(out, "exit_code: %d\n", ji->exit_code);
	buf_printf(out, "duration: %.3f\nimage: %s\ngpus: %s\nstarted: %lld\n", ji->duration_s,
		   ji->image, ji->gpus[0] ? ji->gpus : "none", (long long)ji->started);
	if (ji->output_truncated)
		buf_printf(out, "output: truncated\n");
	buf_printf(out, "command: %s\n", ji->command);
	if (ji->message[0])
		buf_printf(out, "message: %s\n", ji->message);
}

static enum job_state state_from_name(const char *s)
{
	for (int i = JOB_QUEUED; i <= JOB_TIMED_OUT; i++)
		if (!strcmp(s, job_state_name((enum job_state)i)))
			return (enum job_state)i;
	return JOB_FAILED;
}

/* Copy src into dst[n], cut to fit (fields are for people to read). */
static void copy_field(char *dst, size_t n, const char *src)
{
	size_t len = strnlen(src, n - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

int jobinfo_parse(const char *text, struct jobinfo *ji)
{
	bool any = false;
	memset(ji, 0, sizeof(*ji));
	ji->state = JOB_FAILED;
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *sep = memchr(line, ':', len);
		if (sep && sep + 1 < line + len && sep[1] == ' ') {
			char key[16], v[1024];
			snprintf(key, sizeof(key), "%.*s", (int)(sep - line), line);
			snprintf(v, sizeof(v), "%.*s", (int)(line + len - sep - 2), sep + 2);
			any = true;
			if (!strcmp(key, "id"))
				ji->id = strtoull(v, NULL, 10);
			else if (!strcmp(key, "state"))
				ji->state = state_from_name(v);
			else if (!strcmp(key, "exit_code"))
				ji->exit_code = atoi(v);
			else if (!strcmp(key, "duration"))
				ji->duration_s = atof(v);
			else if (!strcmp(key, "started"))
				ji->started = (time_t)atoll(v);
			else if (!strcmp(key, "output"))
				ji->output_truncated = true;
			else if (!strcmp(key, "image"))
				copy_field(ji->image, sizeof(ji->image), v);
			else if (!strcmp(key, "gpus"))
				copy_field(ji->gpus, sizeof(ji->gpus), strcmp(v, "none") ? v : "");
			else if (!strcmp(key, "command"))
				copy_field(ji->command, sizeof(ji->command), v);
			else if (!strcmp(key, "message"))
				copy_field(ji->message, sizeof(ji->message), v);
		}
		line = nl ? nl + 1 : NULL;
	}
	return any ? 0 : -EINVAL;
}

/* Read back a status file written by save_status (a job of an earlier mount). */
static int load_status(struct jobclient *jc, uint64_t id, struct jobinfo *ji)
{
	char path[PATH_MAX];
	struct buf text = BUF_INIT;
	jobclient_path(jc, id, "status", path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		memset(ji, 0, sizeof(*ji));
		ji->state = JOB_FAILED;
		copy_field(ji->message, sizeof(ji->message), "the mount ended while this job ran");
	} else {
		int rc = fd_read_all(fd, &text, 1 << 16);
		close(fd);
		if (rc || buf_append(&text, "", 1) || jobinfo_parse((const char *)text.data, ji)) {
			buf_free(&text);
			return -EIO;
		}
		buf_free(&text);
	}
	ji->id = id;
	return 0;
}

static void save_status(struct jobclient *jc, const struct jobinfo *ji)
{
	char path[PATH_MAX];
	struct buf text = BUF_INIT;
	jobinfo_format(ji, &text);
	jobclient_path(jc, ji->id, "status", path, sizeof(path));
	int rc = write_file_atomic(path, text.data, text.len);
	if (rc)
		log_warn("%s: cannot save the job's status: %s", path, strerror(-rc));
	buf_free(&text);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void remove_job_dir(struct jobclient *jc, uint64_t id)
{
	static const char *const files[] = { "command", "stdout", "stderr", "status" };
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		jobclient_path(jc, id, files[i], path, sizeof(path));
		unlink(path);
	}
	jobclient_path(jc, id, NULL, path, sizeof(path));
	if (rmdir(path) < 0 && errno != ENOENT)
		log_warn("%s: cannot remove an old job: %s", path, strerror(errno));
}

/* The jobs an earlier mount left in STATE_DIR, the newest JOBCLIENT_KEPT. */
static int load_jobs(struct jobclient *jc)
{
	uint64_t ids[256];
	size_t n = 0;
	DIR *d = opendir(jc->cfg.state_dir);
	if (!d)
		return -errno;
	for (struct dirent *de; (de = readdir(d)) && n < 256;) {
		char *end;
		unsigned long long v = strtoull(de->d_name, &end, 10);
		if (*end == '\0' && v > 0)
			ids[n++] = v;
	}
	closedir(d);
	qsort(ids, n, sizeof(ids[0]), cmp_u64);
	size_t first = n > JOBCLIENT_KEPT ? n - JOBCLIENT_KEPT : 0;
	for (size_t i = 0; i < first; i++)
		remove_job_dir(jc, ids[i]);
	for (size_t i = first; i < n; i++)
		if (load_status(jc, ids[i], &jc->jobs[jc->njobs]) == 0)
			jc->njobs++;
	return 0;
}

/* ------------------------------------------------------------ the wire --- */

static void disconnect(struct jobclient *jc)
{
	if (!jc->t)
		return;
	wire_free(&jc->w);
	transport_close(jc->t, NULL);
	jc->t = NULL;
}

static int connect_agent(struct jobclient *jc, struct buf *err)
{
	if (jc->t)
		return 0;
	int rc = jc->cfg.connect(jc->cfg.ctx, &jc->t, err);
	if (rc)
		return rc;
	rc = wire_init(&jc->w, jc->t, 1);
	if (rc) {
		transport_close(jc->t, NULL);
		jc->t = NULL;
		buf_printf(err, "out of memory");
		return rc;
	}
	rc = wire_handshake(&jc->w, HANDSHAKE_MS, err);
	if (rc) {
		struct buf diag = BUF_INIT;
		wire_free(&jc->w);
		transport_close(jc->t, &diag);
		jc->t = NULL;
		if (diag.len)
			buf_printf(err, " (%.*s)", (int)diag.len, (const char *)diag.data);
		buf_free(&diag);
	}
	return rc;
}

static int send_run(struct jobclient *jc, const char *command, uint32_t req)
{
	struct enc e;
	wire_begin(&jc->w, &e);
	enc_str(&e, command);
	int rc = wire_end(&jc->w, &e, MSG_JOB_RUN, req);
	return rc ? rc : wire_flush(&jc->w);
}

static int send_cancel(struct jobclient *jc, uint32_t req)
{
	struct enc e;
	wire_begin(&jc->w, &e);
	int rc = wire_end(&jc->w, &e, MSG_JOB_CANCEL, req);
	return rc ? rc : wire_flush(&jc->w);
}

static void finish_run(struct jobclient *jc, int rc, uint64_t id, const char *msg)
{
	pthread_mutex_lock(&jc->lock);
	jc->run_waiting = false;
	jc->run_done = true;
	jc->run_rc = rc;
	jc->run_id = id;
	buf_reset(&jc->run_err);
	if (msg)
		buf_append_str(&jc->run_err, msg);
	pthread_cond_broadcast(&jc->cond);
	pthread_mutex_unlock(&jc->lock);
}

/* Send the pending command: over the open connection, or a fresh one when
 * it turns out dead (an idle connection may have dropped unnoticed). */
static void start_run(struct jobclient *jc, const char *command, uint32_t req)
{
	struct buf err = BUF_INIT;
	int rc = -ENOTCONN;
	for (int attempt = 0; attempt < 2 && rc; attempt++) {
		if (attempt)
			disconnect(jc);
		buf_reset(&err);
		rc = connect_agent(jc, &err);
		if (rc)
			break;
		rc = send_run(jc, command, req);
		if (rc)
			buf_printf(&err, "lost the connection to %s", jc->cfg.host);
	}
	if (rc) {
		struct buf msg = BUF_INIT;
		buf_printf(&msg, "cannot reach the job agent on %s: %.*s", jc->cfg.host,
			   (int)err.len, (const char *)err.data);
		buf_append(&msg, "", 1);
		finish_run(jc, rc, 0, (const char *)msg.data);
		buf_free(&msg);
	}
	buf_free(&err);
}

static void close_outputs(struct jobclient *jc)
{
	for (int i = 1; i <= 2; i++) {
		if (jc->out_fd[i] >= 0)
			close(jc->out_fd[i]);
		jc->out_fd[i] = -1;
	}
}

/* The job files of a new job: command, empty stdout and stderr. */
static int open_job_files(struct jobclient *jc, uint64_t id, const char *command)
{
	char path[PATH_MAX];
	jobclient_path(jc, id, NULL, path, sizeof(path));
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	jobclient_path(jc, id, "status", path, sizeof(path));
	unlink(path);
	jobclient_path(jc, id, "command", path, sizeof(path));
	int rc = write_file_atomic(path, command, strlen(command));
	static const char *const names[3] = { NULL, "stdout", "stderr" };
	for (int i = 1; i <= 2 && !rc; i++) {
		jobclient_path(jc, id, names[i], path, sizeof(path));
		jc->out_fd[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
		if (jc->out_fd[i] < 0)
			rc = -errno;
	}
	if (rc)
		close_outputs(jc);
	return rc;
}

static void on_started(struct jobclient *jc, const struct frame *f, const char *command)
{
	struct dec d;
	struct jobinfo ji = { .state = JOB_RUNNING, .started = time(NULL) };
	dec_init(&d, f);
	ji.id = dec_uvar(&d);
	dec_str(&d, ji.image, sizeof(ji.image));
	dec_str(&d, ji.gpus, sizeof(ji.gpus));
	if (d.err || ji.id == 0) {
		finish_run(jc, -EPROTO, 0, "the job agent sent a malformed answer");
		disconnect(jc);
		return;
	}
	copy_field(ji.command, sizeof(ji.command), command);
	int rc = open_job_files(jc, ji.id, command);
	if (rc)
		log_warn("%s: cannot record job %llu's output: %s", jc->cfg.state_dir,
			 (unsigned long long)ji.id, strerror(-rc));
	pthread_mutex_lock(&jc->lock);
	if (jc->njobs == JOBCLIENT_KEPT) {
		remove_job_dir(jc, jc->jobs[0].id);
		memmove(&jc->jobs[0], &jc->jobs[1], sizeof(jc->jobs[0]) * (JOBCLIENT_KEPT - 1));
		jc->njobs--;
	}
	/* A number seen before (the host's counter restarted): the new job wins. */
	for (size_t i = 0; i < jc->njobs; i++) {
		if (jc->jobs[i].id == ji.id) {
			memmove(&jc->jobs[i], &jc->jobs[i + 1], sizeof(jc->jobs[0]) * (jc->njobs - i - 1));
			jc->njobs--;
			break;
		}
	}
	jc->jobs[jc->njobs++] = ji;
	jc->running = true;
	clock_gettime(CLOCK_MONOTONIC, &jc->t0);
	pthread_mutex_unlock(&jc->lock);
	finish_run(jc, 0, ji.id, NULL);
}

static void on_output(struct jobclient *jc, const struct frame *f)
{
	struct dec d;
	size_t len;
	dec_init(&d, f);
	uint8_t stream = dec_u8(&d);
	const uint8_t *data = dec_blob(&d, &len);
	if (d.err || (stream != 1 && stream != 2) || !jc->running)
		return;
	int rc = jc->out_fd[stream] >= 0 ? write_full(jc->out_fd[stream], data, len) : 0;
	if (rc) {
		log_warn("%s: cannot record job output: %s", jc->cfg.state_dir, strerror(-rc));
		close(jc->out_fd[stream]);
		jc->out_fd[stream] = -1;
	}
	notify(jc);
}

/* The running job ended (as the host says, or because the host is gone). */
static void end_job(struct jobclient *jc, enum job_state state, int exit_code, double duration,
		    bool truncated, const char *message)
{
	close_outputs(jc);
	pthread_mutex_lock(&jc->lock);
	struct jobinfo *ji = &jc->jobs[jc->njobs - 1];
	ji->state = state;
	ji->exit_code = exit_code;
	ji->duration_s = duration >= 0 ? duration : elapsed_s(&jc->t0);
	ji->output_truncated = truncated;
	copy_field(ji->message, sizeof(ji->message), message);
	struct jobinfo copy = *ji;
	jc->running = false;
	jc->cancel = false;
	pthread_cond_broadcast(&jc->cond);
	pthread_mutex_unlock(&jc->lock);
	save_status(jc, &copy);
	notify(jc);
}

static void on_end(struct jobclient *jc, const struct frame *f)
{
	struct dec d;
	char message[512];
	dec_init(&d, f);
	uint8_t state = dec_u8(&d);
	int64_t code = dec_svar(&d);
	uint64_t ms = dec_uvar(&d);
	uint8_t truncated = dec_u8(&d);
	dec_str(&d, message, sizeof(message));
	if (d.err || state > JOB_TIMED_OUT || !jc->running)
		return;
	end_job(jc, (enum job_state)state, (int)code, (double)ms / 1000.0, truncated, message);
}

static void on_error(struct jobclient *jc, const struct frame *f)
{
	struct dec d;
	char path[PATH_MAX], message[512];
	dec_init(&d, f);
	uint64_t errnum = dec_uvar(&d);
	dec_u8(&d);
	dec_str(&d, path, sizeof(path));
	dec_str(&d, message, sizeof(message));
	if (d.err)
		return;
	if (jc->run_waiting) {
		int e = errnum > 0 && errnum < 4096 ? (int)errnum : EIO;
		finish_run(jc, -e, 0, message);
	} else {
		log_warn("job agent on %s: %s", jc->cfg.host, message);
	}
}

/* The connection broke: whatever was under way fails, with the host named. */
static void lost(struct jobclient *jc, int rc)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "lost the connection to the job agent on %s (%s)", jc->cfg.host,
		 rc ? strerror(-rc) : "it closed the connection");
	disconnect(jc);
	if (jc->run_waiting)
		finish_run(jc, -ECONNRESET, 0, msg);
	if (jc->running)
		end_job(jc, JOB_FAILED, 0, -1, false, msg);
}

static void receive(struct jobclient *jc, const char *command)
{
	struct frame f;
	int rc = wire_recv(&jc->w, &f, RECV_POLL_MS);
	if (rc == -EAGAIN)
		return;
	if (rc <= 0) {
		lost(jc, rc);
		return;
	}
	if (f.id != jc->req && f.type != MSG_HELLO)
		return; /* about an earlier request */
	switch (f.type) {
	case MSG_JOB_STARTED:
		if (jc->run_waiting)
			on_started(jc, &f, command);
		break;
	case MSG_JOB_OUTPUT:
		on_output(jc, &f);
		break;
	case MSG_JOB_END:
		on_end(jc, &f);
		break;
	case MSG_ERROR:
		on_error(jc, &f);
		break;
	default:
		break;
	}
}

static void *io_thread(void *arg)
{
	struct jobclient *jc = arg;
	char *command = NULL; /* of the latest run */
	pthread_mutex_lock(&jc->lock);
	for (;;) {
		while (!jc->stop && !jc->run_command && !jc->run_waiting && !jc->running)
			pthread_cond_wait(&jc->cond, &jc->lock);
		if (jc->stop)
			break;
		char *to_send = jc->run_command;
		bool cancel = jc->cancel;
		uint32_t req = jc->req;
		jc->run_command = NULL;
		jc->cancel = false;
		if (to_send) {
			jc->run_waiting = true;
			free(command);
			command = to_send;
		}
		pthread_mutex_unlock(&jc->lock);

		if (to_send)
			start_run(jc, to_send, req);
		if (cancel && jc->t && send_cancel(jc, req))
			lost(jc, -EPIPE);
		if (jc->t && (jc->run_waiting || jc->running))
			receive(jc, command);
		pthread_mutex_lock(&jc->lock);
	}
	pthread_mutex_unlock(&jc->lock);
	free(command);
	disconnect(jc);
	return NULL;
}

/* ------------------------------------------------------------ the API --- */

int jobclient_start(const struct jobclient_config *cfg, struct jobclient **out, struct buf *err)
{
	struct jobclient *jc = calloc(1, sizeof(*jc));
	if (!jc) {
		buf_printf(err, "out of memory");
		return -ENOMEM;
	}
	jc->cfg = *cfg;
	snprintf(jc->state_dir, sizeof(jc->state_dir), "%s", cfg->state_dir);
	jc->cfg.state_dir = jc->state_dir;
	jc->out_fd[0] = jc->out_fd[1] = jc->out_fd[2] = -1;
	pthread_mutex_init(&jc->lock, NULL);
	pthread_cond_init(&jc->cond, NULL);
	int rc = 0;
	if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	if (!rc)
		rc = load_jobs(jc);
	if (rc) {
		buf_printf(err, "%s: %s", cfg->state_dir, strerror(-rc));
	} else {
		rc = -pthread_create(&jc->thread, NULL, io_thread, jc);
		if (rc)
			buf_printf(err, "cannot start the job thread: %s", strerror(-rc));
	}
	if (rc) {
		pthread_cond_destroy(&jc->cond);
		pthread_mutex_destroy(&jc->lock);
		free(jc);
		return rc;
	}
	*out = jc;
	return 0;
}

void jobclient_stop(struct jobclient *jc)
{
	if (!jc)
		return;
	pthread_mutex_lock(&jc->lock);
	jc->stop = true;
	pthread_cond_broadcast(&jc->cond);
	pthread_mutex_unlock(&jc->lock);
	pthread_join(jc->thread, NULL);
	/* A job still running is cancelled by the agent when we hang up. */
	if (jc->running)
		end_job(jc, JOB_CANCELLED, 0, -1, false, "the mount ended while the job ran");
	close_outputs(jc);
	free(jc->run_command);
	buf_free(&jc->run_err);
	pthread_cond_destroy(&jc->cond);
	pthread_mutex_destroy(&jc->lock);
	free(jc);
}

int jobclient_run(struct jobclient *jc, const char *command, uint64_t *id, struct buf *err)
{
	char *copy = strdup(command);
	if (!copy) {
		buf_printf(err, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&jc->lock);
	if (jc->running || jc->run_command || jc->run_waiting) {
		uint64_t cur = jc->njobs ? jc->jobs[jc->njobs - 1].id : 0;
		pthread_mutex_unlock(&jc->lock);
		free(copy);
		buf_printf(err, "job %llu is still running on %s (cancel it with .hermes/cancel)",
			   (unsigned long long)cur, jc->cfg.host);
		return -EBUSY;
	}
	jc->run_command = copy;
	jc->run_done = false;
	jc->req++;
	pthread_cond_broadcast(&jc->cond);
	while (!jc->run_done && !jc->stop)
		pthread_cond_wait(&jc->cond, &jc->lock);
	int rc = jc->run_done ? jc->run_rc : -ECANCELED;
	jc->refused_latest = rc != 0;
	if (rc) {
		buf_append(err, jc->run_err.data, jc->run_err.len);
		jc->refused = (struct jobinfo){ .state = JOB_FAILED, .started = time(NULL) };
		copy_field(jc->refused.command, sizeof(jc->refused.command), command);
		snprintf(jc->refused.message, sizeof(jc->refused.message), "%.*s",
			 (int)jc->run_err.len, (const char *)jc->run_err.data);
	} else {
		*id = jc->run_id;
	}
	pthread_mutex_unlock(&jc->lock);
	return rc;
}

int jobclient_cancel(struct jobclient *jc)
{
	pthread_mutex_lock(&jc->lock);
	bool running = jc->running || jc->run_waiting;
	if (running) {
		jc->cancel = true;
		pthread_cond_broadcast(&jc->cond);
	}
	pthread_mutex_unlock(&jc->lock);
	return running ? 0 : -ESRCH;
}

int jobclient_info(struct jobclient *jc, uint64_t id, struct jobinfo *out)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&jc->lock);
	if (id == 0 && jc->refused_latest) {
		*out = jc->refused;
		pthread_mutex_unlock(&jc->lock);
		return 0;
	}
	for (size_t i = jc->njobs; i-- > 0;) {
		if (id == 0 || jc->jobs[i].id == id) {
			*out = jc->jobs[i];
			if (jc->running && i == jc->njobs - 1)
				out->duration_s = elapsed_s(&jc->t0);
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&jc->lock);
	return rc;
}

size_t jobclient_list(struct jobclient *jc, uint64_t *ids, size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&jc->lock);
	for (size_t i = 0; i < jc->njobs && n < max; i++)
		ids[n++] = jc->jobs[i].id;
	pthread_mutex_unlock(&jc->lock);
	return n;
}
