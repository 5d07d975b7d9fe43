/* job: one command run in a Podman container, start to end.
 *
 * job_run creates a container from the spec (workspace bind-mounted
 * read-write at JOB_WORKDIR and used as the working directory, command run
 * with /bin/sh -c), starts it, streams its output to the callbacks, enforces
 * the wall-time and output limits, waits for it to end, and removes it. The
 * container is removed on every path: exit, failure, cancel, timeout.
 *
 * Thread model: job_run blocks its caller; job_cancel may be called from any
 * other thread while job_run runs (or before: then job_run ends at once with
 * JOB_CANCELLED). One struct job per run.
 *
 * Errors that stop a job before it runs (Podman unreachable, unknown image,
 * no GPU for a GPU request) are returned as -errno with one line in err
 * naming the socket, image or device, and result->state = JOB_FAILED.
 *
 * Containment (src/exec/podman.c): the root is read-only with private tmpfs
 * /tmp and /var/tmp, no capabilities, no_new_privileges, netns none unless
 * spec->network, HOME=/tmp unless spec->env sets it, memory (+swap) and pids
 * limits, and a conmon-side kill at wall_time + 30 s should this process die.
 * Output past output_bytes is dropped; output past twice the limit (at
 * least the limit + 8 MiB) kills the job (state EXITED, exit code 137,
 * message says so). A SIGKILL under a memory limit is reported in message
 * as out of memory.
 *
 * Callbacks run on job_run's thread or one it creates, never two at once;
 * started() comes before any output().
 */
#ifndef HERMES_JOB_H
#define HERMES_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define JOB_WORKDIR "/workspace"

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_EXITED,    /* ran to its end; exit_code says how */
	JOB_FAILED,    /* could not run (see message) */
	JOB_CANCELLED,
	JOB_TIMED_OUT,
};
const char *job_state_name(enum job_state s); /* "queued", "running", "exited", ... "timed-out" */

struct job_mount {
	const char *src; /* host path */
	const char *dst; /* path in the container */
	bool readonly;
};

/* What to run and under which limits. Strings are borrowed for the duration
 * of job_run. Zero limits mean "no limit". */
struct job_spec {
	const char *podman_socket; /* unix socket of the Podman REST API */
	const char *name;          /* container name prefix, e.g. "hermes-job-42" (unique) */
	const char *owner;         /* value of the container label hermes.owner (for job_sweep) */
	const char *image;         /* image reference, or NULL with rootfs */
	const char *rootfs;        /* host dir used as rootfs (overlay, read-only below), or NULL */
	const char *workspace;     /* host dir mounted at JOB_WORKDIR */
	const char *command;       /* run as /bin/sh -c COMMAND */
	const char *const *gpus;   /* CDI device names ("nvidia.com/gpu=all", "nvidia.com/gpu=0") */
	size_t ngpus;
	const char *const *env;    /* "NAME=value" */
	size_t nenv;
	const struct job_mount *mounts;
	size_t nmounts;
	const char *user;          /* "uid[:gid]" inside, or NULL for the image's default */
	bool network;              /* false: no network at all */
	unsigned wall_time_s;
	uint64_t memory_bytes;
	unsigned pids;
	uint64_t output_bytes;     /* stdout+stderr beyond this are dropped (result->output_truncated) */
};

struct job_result {
	enum job_state state;
	int exit_code;          /* valid for JOB_EXITED; 128+signal when killed */
	double duration_s;      /* start to end */
	bool output_truncated;
	char container_id[72];
	char message[512];      /* one line for FAILED/CANCELLED/TIMED_OUT, else "" */
};

struct job_callbacks {
	/* The container runs (state now JOB_RUNNING). May be NULL. */
	void (*started)(void *ctx, const char *container_id);
	/* Output as it arrives; stream 1 = stdout, 2 = stderr. May be NULL. */
	void (*output)(void *ctx, int stream, const void *data, size_t len);
	void *ctx;
};

struct job;

struct job *job_new(void);
/* Run spec to its end; see the file comment. Returns 0 when the container
 * ran (whatever its exit code, also when cancelled or timed out), -errno
 * when it could not run (err names why), or when the container could not
 * be removed afterwards (err names it; result still says how the job
 * ended). result is always filled. */
int job_run(struct job *j, const struct job_spec *spec, const struct job_callbacks *cb,
	    struct job_result *result, struct buf *err);
/* Thread-safe; async: kills the container, job_run then returns JOB_CANCELLED. */
void job_cancel(struct job *j);
void job_free(struct job *j);

/* GPU check before a run: 0 when every CDI device in gpus can be given
 * (a CDI spec names it and the device nodes exist), else -ENODEV with one
 * line in err naming what is missing ("no CDI spec for nvidia.com/gpu in
 * /etc/cdi or /var/run/cdi", "no nvidia device: /dev/nvidia0 missing"). */
int job_check_gpus(const char *const *gpus, size_t ngpus, struct buf *err);

/* Remove containers left by an earlier process (label hermes.owner=owner),
 * e.g. after a crash. Returns the number removed or -errno. */
int job_sweep(const char *podman_socket, const char *owner, struct buf *err);

#endif
