/* backend: runs one job to its end on the executor named in the config.
 *
 * podman: the local Podman REST service through src/exec (job.h); output
 *         goes to req->log_fd as it arrives.
 * slurm:  sbatch of a script that runs the container on the allocated node
 *         (slurm.h); Slurm writes the output to req->log_path.
 *
 * Thread model: backend_job_run blocks its caller; backend_job_cancel may be
 * called from any thread, before or during the run (the run then ends as
 * JOB_CANCELLED). One backend_job per run.
 */
#ifndef HERMES_API_BACKEND_H
#define HERMES_API_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "job.h"
#include "jobspec.h"

struct run_req {
	int64_t id;
	const char *job_dir;   /* holds ws/ (the workspace) and log */
	const char *workspace;
	const char *log_path;
	int log_fd;            /* open for appending to log_path */
	const struct jobspec *spec;
	const char *const *gpus; /* GPU indices given to this job */
	size_t ngpus;
};

/* Called once the job runs: container id or Slurm job id, and host. */
typedef void (*backend_placed_fn)(void *ctx, const char *backend_id, const char *host);

struct backend_job;

struct backend_job *backend_job_new(const struct config *cfg);
/* Fills res on every path; 0 when the job ran, -errno when it could not
 * start (res->message says why). */
int backend_job_run(struct backend_job *bj, const struct run_req *req, backend_placed_fn placed,
		    void *ctx, struct job_result *res);
void backend_job_cancel(struct backend_job *bj);
void backend_job_free(struct backend_job *bj);

/* Before the scheduler starts: remove what a killed hermesd left running
 * (Podman containers labelled hermes.owner=hermesd). */
int backend_sweep(const struct config *cfg, struct buf *err);

/* After a crash: stop the run known as backend_id (a job the store had as
 * running). Slurm: scancel it; Podman: nothing (backend_sweep does it). */
int backend_abandon(const struct config *cfg, const char *backend_id, struct buf *err);

#define BACKEND_OWNER "hermesd"

#endif
