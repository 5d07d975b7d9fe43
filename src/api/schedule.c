#include "schedule.h"

#include <string.h>

static bool fits(const struct sched_job *j, const struct sched_free *f)
{
	return j->gpus ? j->gpus <= f->gpus : f->cpu_slots > 0;
}

/* The oldest fitting job of token, or -1. */
static long oldest_fitting(const struct sched_job *jobs, size_t n, const char *token,
			   const struct sched_free *f)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(jobs[i].token, token) && fits(&jobs[i], f))
			return (long)i;
	return -1;
}

/* The smallest token name with a queued job that sorts after `after` (the
 * smallest of all when NULL): round robin in strcmp order. */
static const char *next_token(const struct sched_job *jobs, size_t n, const char *after)
{
	const char *best = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *t = jobs[i].token;
		if (after && strcmp(t, after) <= 0)
			continue;
		if (!best || strcmp(t, best) < 0)
			best = t;
	}
	return best;
}

long sched_pick(const struct sched_job *jobs, size_t n, const struct sched_free *free_res,
		const char *last_token, bool (*token_ok)(void *ctx, const char *token), void *ctx)
{
	/* Two passes: the tokens after last_token, then from the first one
	 * (which reaches last_token itself last). */
	for (int pass = 0; pass < 2; pass++) {
		const char *t = pass == 0 ? last_token : NULL;
		if (pass == 0 && !last_token)
			continue;
		while ((t = next_token(jobs, n, t))) {
			if (pass == 1 && last_token && strcmp(t, last_token) > 0)
				break;
			if (!token_ok(ctx, t))
				continue;
			long i = oldest_fitting(jobs, n, t, free_res);
			if (i >= 0)
				return i;
		}
	}
	return -1;
}
