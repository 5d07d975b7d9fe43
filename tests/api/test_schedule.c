/* The scheduler's choice (src/api/schedule.c): round robin across tokens,
 * oldest fitting job within a token, one job per GPU, CPU slots, quotas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "schedule.h"

static bool all_ok(void *ctx, const char *token)
{
	(void)ctx;
	(void)token;
	return true;
}

static bool not_bob(void *ctx, const char *token)
{
	(void)ctx;
	return strcmp(token, "bob") != 0;
}

static const struct sched_job jobs[] = {
	{ 1, "alice", 0 }, { 2, "alice", 0 }, { 3, "alice", 1 },
	{ 4, "bob", 0 }, { 5, "carol", 2 }, { 6, "carol", 0 },
};
#define N (sizeof(jobs) / sizeof(jobs[0]))

static void round_robin(void **state)
{
	(void)state;
	struct sched_free f = { 2, 4 };
	/* No previous token: the first by name, its oldest job. */
	assert_int_equal(sched_pick(jobs, N, &f, NULL, all_ok, NULL), 0);
	/* After alice comes bob, after bob carol, after carol alice again. */
	assert_int_equal(sched_pick(jobs, N, &f, "alice", all_ok, NULL), 3);
	assert_int_equal(sched_pick(jobs, N, &f, "bob", all_ok, NULL), 4);
	assert_int_equal(sched_pick(jobs, N, &f, "carol", all_ok, NULL), 0);
	/* A token that left the queue still orders the turn. */
	assert_int_equal(sched_pick(jobs, N, &f, "bert", all_ok, NULL), 3);
}

static void resources(void **state)
{
	(void)state;
	/* One free GPU, no CPU slot: only a 1-GPU job fits (alice's job 3). */
	struct sched_free f = { 1, 0 };
	assert_int_equal(sched_pick(jobs, N, &f, "bob", all_ok, NULL), 2);
	/* Carol's 2-GPU job waits for two GPUs; her CPU job passes it. */
	struct sched_free f2 = { 1, 1 };
	assert_int_equal(sched_pick(jobs, N, &f2, "bob", all_ok, NULL), 5);
	struct sched_free f3 = { 2, 0 };
	assert_int_equal(sched_pick(jobs, N, &f3, "bob", all_ok, NULL), 4);
	/* Nothing free: nothing starts. */
	struct sched_free none = { 0, 0 };
	assert_int_equal(sched_pick(jobs, N, &none, NULL, all_ok, NULL), -1);
	/* No GPU on the host: GPU jobs never start, CPU jobs do. */
	struct sched_free cpu = { 0, 1 };
	assert_int_equal(sched_pick(jobs, N, &cpu, "carol", all_ok, NULL), 0);
}

static void quotas(void **state)
{
	(void)state;
	struct sched_free f = { 2, 4 };
	/* bob is at his max_running: his turn goes to carol. */
	assert_int_equal(sched_pick(jobs, N, &f, "alice", not_bob, NULL), 4);
	const struct sched_job only_bob[] = { { 7, "bob", 0 } };
	assert_int_equal(sched_pick(only_bob, 1, &f, NULL, not_bob, NULL), -1);
	assert_int_equal(sched_pick(NULL, 0, &f, NULL, all_ok, NULL), -1);
}

/* Fairness over a whole drain: 3 tokens with 4 jobs each and one slot
 * interleave a, b, c, a, b, c ... whatever order they were queued in. */
static void drain_is_fair(void **state)
{
	(void)state;
	struct sched_job q[12];
	const char *names[] = { "a", "b", "c" };
	for (int i = 0; i < 12; i++)
		q[i] = (struct sched_job){ i + 1, names[i / 4], 0 }; /* a a a a b b b b c c c c */
	size_t n = 12;
	const char *last = NULL;
	struct sched_free f = { 0, 1 };
	for (int k = 0; k < 12; k++) {
		long i = sched_pick(q, n, &f, last, all_ok, NULL);
		assert_true(i >= 0);
		assert_string_equal(q[i].token, names[k % 3]);
		last = q[i].token;
		memmove(&q[i], &q[i + 1], (n - (size_t)i - 1) * sizeof(q[0]));
		n--;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_robin),
		cmocka_unit_test(resources),
		cmocka_unit_test(quotas),
		cmocka_unit_test(drain_is_fair),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
