/* jobclient: the mount's side of job mode. It owns one connection to the
 * agent started with --jobs (opened at the first run, reopened after a
 * drop), runs one job at a time, and records every job under
 * STATE_DIR/ID/: command, stdout, stderr (appended as output arrives) and
 * status (written when the job ends). The last JOBCLIENT_KEPT jobs are kept.
 *
 * Threads: one I/O thread does all network I/O (libssh sessions are not
 * thread-safe); the functions below may be called from any thread.
 * cfg.changed is called (from the I/O thread) whenever output arrives or a
 * job changes state, so blocked readers can look again.
 */
#ifndef HERMES_JOBCLIENT_H
#define HERMES_JOBCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "job.h"

#define JOBCLIENT_KEPT 20

struct transport;

struct jobclient_config {
	const char *state_dir; /* LOCALDIR/.hermes/jobs; created if missing; copied */
	const char *host;      /* for messages: "local agent" or the host name */
	int (*connect)(void *ctx, struct transport **t, struct buf *err);
	void (*changed)(void *ctx);
	void *ctx;
};

struct jobinfo {
	uint64_t id;
	enum job_state state;
	int exit_code;
	double duration_s;     /* so far, while running */
	bool output_truncated;
	time_t started;        /* wall clock, for people */
	char command[1024];
	char image[256];
	char gpus[256];
	char message[512];
};

struct jobclient;

int jobclient_start(const struct jobclient_config *cfg, struct jobclient **out, struct buf *err);
void jobclient_stop(struct jobclient *jc);

/* Send command as a new job and wait until the host accepted it (the
 * container runs). 0 with *id set, or -errno with one line in err (EBUSY:
 * a job runs; ENOTCONN/EHOSTUNREACH: no agent; others as the host said). */
int jobclient_run(struct jobclient *jc, const char *command, uint64_t *id, struct buf *err);
/* Cancel the running job, if any. 0, or -ESRCH when none runs. */
int jobclient_cancel(struct jobclient *jc);

/* Job id, or with id 0 the latest run: a job, or a run that could not
 * start (id 0, state failed, the reason in message). 0, or -ENOENT. */
int jobclient_info(struct jobclient *jc, uint64_t id, struct jobinfo *out);
/* The kept job ids, oldest first; returns how many (at most max). */
size_t jobclient_list(struct jobclient *jc, uint64_t *ids, size_t max);
/* Path of one of a job's files ("stdout", "stderr", "command", "status"). */
void jobclient_path(struct jobclient *jc, uint64_t id, const char *file, char *out, size_t n);
/* Status as text ("key: value" lines) into out, and back (0, or -EINVAL
 * when text holds no such line). */
void jobinfo_format(const struct jobinfo *ji, struct buf *out);
int jobinfo_parse(const char *text, struct jobinfo *ji);

static inline bool job_state_final(enum job_state s)
{
	return s != JOB_QUEUED && s != JOB_RUNNING;
}

#endif
