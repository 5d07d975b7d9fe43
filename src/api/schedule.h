/* schedule: which queued job starts next (a pure function, no I/O, no locks).
 *
 * Fair order across tokens: tokens are taken round robin by name, starting
 * after the token that started the last job; within a token, its oldest job
 * that fits the free resources starts. A job asking for N > 0 GPUs needs N
 * free GPUs (each GPU runs one job at a time); a CPU-only job needs one free
 * CPU slot. A token over its quota (token_ok false) is skipped.
 */
#ifndef HERMES_API_SCHEDULE_H
#define HERMES_API_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sched_job {
	int64_t id;
	const char *token;
	unsigned gpus;
};

struct sched_free {
	unsigned gpus;
	unsigned cpu_slots;
};

/* jobs: the queued jobs, oldest first. last_token: the token that started the
 * previous job, or NULL. Returns the index of the job to start, or -1. */
long sched_pick(const struct sched_job *jobs, size_t n, const struct sched_free *free_res,
		const char *last_token, bool (*token_ok)(void *ctx, const char *token), void *ctx);

#endif
