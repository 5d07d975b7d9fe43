/* jobs.c: the agent's job mode; see jobs.h.
 *
 * Two threads share the wire: the serving thread reads requests (the only
 * reader), the job thread writes the job's frames. Writes from both go
 * through send_lock (wire.h keeps the two directions apart). */
#include "jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "job.h"
#include "log.h"

#define OUTPUT_CHUNK (64u * 1024u)
#define LOCK_PATH ".hermes/agent/job.lock"
#define SEQ_PATH ".hermes/agent/job.seq"
#define ENDING_WAIT_MS 30000 /* for a lost client's job to be cleaned up */

struct jobserver {
	struct wire *w;
	const struct jobs_options *o;
	pthread_mutex_t send_lock;
	pthread_t thread;
	bool thread_live;      /* joinable; serving thread only */
	atomic_bool running;   /* set by the serving thread, cleared by the job thread */
	struct job *job;       /* of the running job; owned by the serving thread */
	uint32_t req;          /* request id of the running job */
	char *command;
	int send_err;          /* first wire error from the job thread */
	int lock_fd;           /* the root's job lock while held; under send_lock */
};

static int send_frame(struct jobserver *s, struct enc *e, uint8_t type, uint32_t id)
{
	int rc = wire_end(s->w, e, type, id);
	if (!rc)
		rc = wire_flush(s->w);
	return rc;
}

static int send_error(struct jobserver *s, uint32_t id, int errnum, const char *msg)
{
	struct enc e;
	pthread_mutex_lock(&s->send_lock);
	wire_begin(s->w, &e);
	enc_uvar(&e, (uint64_t)errnum);
	enc_u8(&e, 0);
	enc_str(&e, "");
	enc_str(&e, msg);
	int rc = send_frame(s, &e, MSG_ERROR, id);
	pthread_mutex_unlock(&s->send_lock);
	return rc;
}

const char *jobs_default_socket(void)
{
	static char path[512];
	const char *env = getenv("HERMES_PODMAN_SOCKET");
	if (env && *env)
		return env;
	if (geteuid() == 0)
		return "/run/podman/podman.sock";
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg && *xdg)
		snprintf(path, sizeof(path), "%s/podman/podman.sock", xdg);
	else
		snprintf(path, sizeof(path), "/run/user/%u/podman/podman.sock", (unsigned)geteuid());
	return path;
}

/* ---------------------------------------------------------- the job run --- */

struct run {
	struct jobserver *s;
	bool started;
	uint64_t number;
	const char *image;
	struct buf gpus; /* comma-separated CDI names, NUL-terminated */
};

static void on_started(void *ctx, const char *container_id)
{
	struct run *r = ctx;
	struct jobserver *s = r->s;
	struct enc e;
	(void)container_id;
	r->started = true;
	pthread_mutex_lock(&s->send_lock);
	wire_begin(s->w, &e);
	enc_uvar(&e, r->number);
	enc_str(&e, r->image ? r->image : "");
	enc_str(&e, r->gpus.len ? (const char *)r->gpus.data : "");
	int rc = send_frame(s, &e, MSG_JOB_STARTED, s->req);
	if (rc && !s->send_err)
		s->send_err = rc;
	pthread_mutex_unlock(&s->send_lock);
}

static void on_output(void *ctx, int stream, const void *data, size_t len)
{
	struct run *r = ctx;
	struct jobserver *s = r->s;
	const uint8_t *p = data;
	pthread_mutex_lock(&s->send_lock);
	while (len > 0 && !s->send_err) {
		size_t n = len < OUTPUT_CHUNK ? len : OUTPUT_CHUNK;
		struct enc e;
		wire_begin(s->w, &e);
		enc_u8(&e, (uint8_t)stream);
		enc_blob(&e, p, n);
		int rc = send_frame(s, &e, MSG_JOB_OUTPUT, s->req);
		if (rc)
			s->send_err = rc;
		p += n;
		len -= n;
	}
	pthread_mutex_unlock(&s->send_lock);
}

static void send_end(struct jobserver *s, const struct job_result *res)
{
	struct enc e;
	pthread_mutex_lock(&s->send_lock);
	wire_begin(s->w, &e);
	enc_u8(&e, (uint8_t)res->state);
	enc_svar(&e, res->exit_code);
	enc_uvar(&e, (uint64_t)(res->duration_s * 1000.0 + 0.5));
	enc_u8(&e, res->output_truncated ? 1 : 0);
	enc_str(&e, res->message);
	int rc = send_frame(s, &e, MSG_JOB_END, s->req);
	if (rc && !s->send_err)
		s->send_err = rc;
	pthread_mutex_unlock(&s->send_lock);
}

/* The next job number of this root (kept in SEQ_PATH; the caller holds the
 * job lock). Numbers only name jobs for people: a lost file restarts at 1. */
static uint64_t next_number(const char *root)
{
	char text[32] = "", path[PATH_MAX];
	uint64_t n = 0;
	snprintf(path, sizeof(path), "%s/%s", root, SEQ_PATH);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return 1;
	ssize_t got = pread(fd, text, sizeof(text) - 1, 0);
	if (got > 0)
		n = strtoull(text, NULL, 10);
	n++;
	int len = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)n);
	if (ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)len, 0) != len)
		log_warn("%s: cannot record the job number", path);
	close(fd);
	return n;
}

/* The lock file says whether its holder's job is still wanted: "ending"
 * once its client is gone and the job is being cancelled and removed. */
static void lock_note(int fd, const char *state)
{
	if (ftruncate(fd, 0) < 0 || pwrite(fd, state, strlen(state), 0) < 0)
		log_warn("%s: cannot note the job's state: %s", LOCK_PATH, strerror(errno));
}

static bool holder_ending(int fd)
{
	char state[16] = "";
	return pread(fd, state, sizeof(state) - 1, 0) > 0 && !strncmp(state, "ending", 6);
}

/* Lock the root for one job: EBUSY when another client's job runs here.
 * A job whose client went away (a dropped connection, a remount) is waited
 * for while it is cleaned up, so the client's next job is not refused. */
static int lock_root(const char *root, int *lock_fd, struct buf *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/.hermes/agent", root);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		int e = errno;
		buf_printf(err, "cannot create %s: %s", path, strerror(e));
		return -e;
	}
	snprintf(path, sizeof(path), "%s/%s", root, LOCK_PATH);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		buf_printf(err, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	int rc;
	for (int waited_ms = 0; (rc = flock(fd, LOCK_EX | LOCK_NB)) < 0 && errno == EWOULDBLOCK &&
				 holder_ending(fd) && waited_ms < ENDING_WAIT_MS;
	     waited_ms += 50)
		usleep(50 * 1000);
	if (rc < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK) {
			buf_printf(err, "a job is already running in %s (from another client)", root);
			return -EBUSY;
		}
		buf_printf(err, "cannot lock %s: %s", path, strerror(e));
		return -e;
	}
	lock_note(fd, "running\n");
	*lock_fd = fd;
	return 0;
}

static void gpu_list(struct buf *out, const struct job_spec *spec)
{
	for (size_t i = 0; i < spec->ngpus; i++)
		buf_printf(out, "%s%s", i ? "," : "", spec->gpus[i]);
	buf_append(out, "", 1);
	out->len--;
}

/* Run the command to its end; errors before the start become MSG_ERROR. */
static void run_job(struct jobserver *s)
{
	const struct jobs_options *o = s->o;
	struct buf err = BUF_INIT;
	struct hermes_conf conf;
	struct job_spec spec;
	struct job_result res = { .state = JOB_FAILED };
	struct run r = { .s = s };
	int lock_fd = -1;
	char conf_path[PATH_MAX], name[64];

	conf_init(&conf);
	snprintf(conf_path, sizeof(conf_path), "%s/%s", o->root, CONF_FILE);
	int rc = lock_root(o->root, &lock_fd, &err);
	pthread_mutex_lock(&s->send_lock);
	s->lock_fd = lock_fd;
	pthread_mutex_unlock(&s->send_lock);
	if (!rc)
		rc = conf_load(&conf, conf_path, &err);
	memset(&spec, 0, sizeof(spec));
	spec.workspace = o->root;
	if (!rc)
		rc = conf_to_spec(&conf, &spec, &err);
	if (!rc && spec.ngpus)
		rc = job_check_gpus(spec.gpus, spec.ngpus, &err);
	if (!rc) {
		r.number = next_number(o->root);
		snprintf(name, sizeof(name), "hermes-job-%d-%llu", (int)getpid(),
			 (unsigned long long)r.number);
		spec.podman_socket = o->podman_socket;
		spec.name = name;
		spec.owner = "hermes-agent";
		spec.command = s->command;
		r.image = spec.image ? spec.image : spec.rootfs;
		gpu_list(&r.gpus, &spec);
		struct job_callbacks cb = { .started = on_started, .output = on_output, .ctx = &r };
		rc = job_run(s->job, &spec, &cb, &res, &err);
	}
	if (!r.started)
		send_error(s, s->req, rc ? -rc : EIO,
			   err.len ? (const char *)err.data : "the job ended before it started");
	else
		send_end(s, &res);
	pthread_mutex_lock(&s->send_lock);
	s->lock_fd = -1;
	pthread_mutex_unlock(&s->send_lock);
	if (lock_fd >= 0)
		close(lock_fd);
	conf_free(&conf);
	buf_free(&r.gpus);
	buf_free(&err);
}

static void *job_thread(void *arg)
{
	struct jobserver *s = arg;
	run_job(s);
	atomic_store(&s->running, false);
	return NULL;
}

/* ------------------------------------------------------------ requests --- */

static void reap(struct jobserver *s)
{
	if (!s->thread_live)
		return;
	pthread_join(s->thread, NULL);
	s->thread_live = false;
	job_free(s->job);
	s->job = NULL;
	free(s->command);
	s->command = NULL;
}

static int handle_run(struct jobserver *s, const struct frame *f)
{
	struct dec d;
	char command[8192];
	dec_init(&d, f);
	dec_str(&d, command, sizeof(command));
	if (d.err)
		return -EPROTO;
	if (atomic_load(&s->running))
		return send_error(s, f->id, EBUSY, "a job is already running (cancel it first)");
	reap(s);
	s->command = strdup(command);
	s->job = job_new();
	if (!s->command || !s->job) {
		free(s->command);
		s->command = NULL;
		job_free(s->job);
		s->job = NULL;
		return send_error(s, f->id, ENOMEM, "out of memory");
	}
	s->req = f->id;
	atomic_store(&s->running, true);
	int rc = pthread_create(&s->thread, NULL, job_thread, s);
	if (rc) {
		atomic_store(&s->running, false);
		return send_error(s, f->id, rc, "cannot start a thread for the job");
	}
	s->thread_live = true;
	return 0;
}

static int dispatch(struct jobserver *s, const struct frame *f)
{
	switch (f->type) {
	case MSG_HELLO:
		return 0;
	case MSG_JOB_RUN:
		return handle_run(s, f);
	case MSG_JOB_CANCEL:
		if (atomic_load(&s->running) && f->id == s->req)
			job_cancel(s->job);
		return 0;
	default:
		return -EPROTO;
	}
}

int jobs_serve(struct wire *w, const struct jobs_options *o)
{
	struct jobserver s = { .w = w, .o = o, .lock_fd = -1 };
	int rc = 0;
	pthread_mutex_init(&s.send_lock, NULL);
	for (;;) {
		struct frame f;
		rc = wire_recv(w, &f, -1);
		if (rc <= 0)
			break; /* 0: the client is done */
		rc = dispatch(&s, &f);
		if (rc == -EPROTO)
			log_error("protocol error on a %s message from the client", msg_name(f.type));
		if (rc)
			break;
	}
	/* A lost client leaves nothing running behind it. */
	if (atomic_load(&s.running)) {
		pthread_mutex_lock(&s.send_lock);
		if (s.lock_fd >= 0)
			lock_note(s.lock_fd, "ending\n");
		pthread_mutex_unlock(&s.send_lock);
		job_cancel(s.job);
	}
	reap(&s);
	pthread_mutex_destroy(&s.send_lock);
	return rc;
}
