/* store: the persistent job queue (SQLite, one table).
 *
 * Job states and who moves them (the column `state`):
 *
 *   staging --store_enqueue--> queued --store_start--> running
 *      |                           |                        |
 *      +-> (row deleted when       +-> cancelled            +-> exited | failed |
 *           the upload is refused)     (store_finish)           cancelled | timed-out
 *                                                               (store_finish)
 * Invariants:
 *  1. A job leaves `queued` only through store_start (which counts the start
 *     in `runs`) or store_finish(cancelled); so a job runs at most once.
 *  2. store_recover, called once before the scheduler starts, turns every
 *     `staging` and `running` row into `failed` with a message: a job that ran
 *     when hermesd died is reported, never lost and never run again.
 *  3. Terminal states never change.
 *
 * Thread model: not thread-safe; the caller (queue.c) serialises every call
 * under its lock. Strings in struct job_row are owned by the row
 * (store_row_free).
 */
#ifndef HERMES_API_STORE_H
#define HERMES_API_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct store;

struct job_row {
	int64_t id;
	char *token;   /* token name */
	char *state;
	char *spec;    /* the job's JSON as accepted */
	unsigned gpus; /* GPUs asked for */
	double created, started, ended; /* unix time, 0 when not yet */
	bool has_exit;
	int exit_code;
	char *message;
	char *host;
	char *gpu;        /* GPUs given, "0,1", or "" */
	char *backend_id; /* container or Slurm job id */
	unsigned runs;
};

void store_row_free(struct job_row *r);
void store_rows_free(struct job_row *rows, size_t n);

int store_open(struct store **out, const char *path, struct buf *err);
void store_close(struct store *s);

int store_insert(struct store *s, const char *token, const char *spec, unsigned gpus,
		 int64_t *id, struct buf *err);
int store_delete(struct store *s, int64_t id, struct buf *err);
/* staging -> queued; -ESTALE when the job is no longer staging (cancelled). */
int store_enqueue(struct store *s, int64_t id, struct buf *err);
int store_start(struct store *s, int64_t id, const char *host, const char *gpu,
		struct buf *err);
/* Where the job runs: container or Slurm job id, and host (NULL: unchanged). */
int store_set_placement(struct store *s, int64_t id, const char *backend_id, const char *host,
			struct buf *err);
int store_finish(struct store *s, int64_t id, const char *state, bool has_exit, int exit_code,
		 const char *message, struct buf *err);
/* Row id; -ENOENT when missing. */
int store_get(struct store *s, int64_t id, struct job_row *out, struct buf *err);
/* Rows of token (all tokens when NULL), state filter when not NULL, by id. */
int store_list(struct store *s, const char *token, const char *state,
	       struct job_row **rows, size_t *n, struct buf *err);
/* Number of rows of token in state (any token when NULL). */
int store_count(struct store *s, const char *token, const char *state, int64_t *n,
		struct buf *err);
/* See invariant 2. Returns the number of rows failed, or -errno. */
int store_recover(struct store *s, const char *message, struct buf *err);

double store_now(void);

#endif
