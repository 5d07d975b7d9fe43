/* queue: hermesd's jobs — the store, the scheduler thread and the runs.
 *
 * queue_open recovers the store (store.h invariant 2), sweeps what a killed
 * hermesd left in the backend, and starts the scheduler thread. The
 * scheduler starts queued jobs in schedule.h order while GPUs and CPU slots are
 * free; each started job runs on its own thread through backend.h, writes
 * its output to STATE/jobs/ID/log and ends with store_finish.
 *
 * With the Slurm backend GPU jobs are not counted against local GPUs:
 * Slurm places them (--gres); CPU-only jobs still take a CPU slot, which
 * bounds how many hermesd has in Slurm at once.
 *
 * Files: STATE/jobs.db, STATE/jobs/ID/{ws/,log}, STATE/tmp/ (uploads).
 *
 * Every function is thread-safe (one lock, `lock` in queue.c, held only for
 * store calls and bookkeeping, never across a run or an unpack). A token
 * only ever sees its own jobs: a job of another token is -ENOENT.
 */
#ifndef HERMES_API_QUEUE_H
#define HERMES_API_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "store.h"

struct queue;

int queue_open(struct queue **out, const struct config *cfg, struct buf *err);
/* Stop the scheduler, cancel running jobs, wait for their threads. Jobs
 * cancelled this way are failed with "hermesd stopped while the job ran". */
void queue_close(struct queue *q);

/* A job from the spec JSON and the uploaded archive (NULL or empty: empty
 * workspace). -EDQUOT: token's max_queued reached; -EPERM: more GPUs than
 * the token may use or than the host has; -EINVAL/-EFBIG/-EIO: spec or
 * archive refused (err says why). */
int queue_submit(struct queue *q, const struct token *t, const char *spec_json,
		 const char *archive_path, int64_t *id, struct buf *err);
int queue_get(struct queue *q, const char *token, int64_t id, struct job_row *out,
	      struct buf *err);
int queue_list(struct queue *q, const char *token, struct job_row **rows, size_t *n,
	       struct buf *err);
/* Cancel a queued or running job; 0 also when it had already ended. */
int queue_cancel(struct queue *q, const char *token, int64_t id, struct buf *err);
/* False once the job reached a terminal state (or does not exist). */
bool queue_job_live(struct queue *q, int64_t id);
/* STATE/jobs/ID/NAME into out (NUL-terminated). */
int queue_job_path(struct queue *q, int64_t id, const char *name, struct buf *out);
/* Prometheus text (queue, running, durations, GPUs) appended to out. */
int queue_metrics(struct queue *q, struct buf *out);
/* JSON array of the GPUs: index, busy job, and nvidia-smi figures. */
int queue_gpus_json(struct queue *q, struct buf *out, struct buf *err);

#endif
