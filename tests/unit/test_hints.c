/* The mount's byte-range book (src/sync/hints.c): merging, the cap, whole. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "hints.h"

static void expect_ranges(struct hints *h, const char *path, const uint64_t *want, size_t n)
{
	size_t got = 99;
	const struct hint_range *r = hints_get(h, path, &got);
	assert_non_null(r);
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].off, want[2 * i]);
		assert_int_equal(r[i].len, want[2 * i + 1]);
	}
}

static void test_merge(void **state)
{
	(void)state;
	struct hints h = HINTS_INIT;
	assert_int_equal(hints_add(&h, "f", 100, 10), 0);
	assert_int_equal(hints_add(&h, "f", 0, 10), 0);
	assert_int_equal(hints_add(&h, "f", 200, 10), 0);
	expect_ranges(&h, "f", (uint64_t[]){ 0, 10, 100, 10, 200, 10 }, 3);
	/* Touching ranges merge; so do overlapping ones. */
	assert_int_equal(hints_add(&h, "f", 10, 5), 0);
	expect_ranges(&h, "f", (uint64_t[]){ 0, 15, 100, 10, 200, 10 }, 3);
	assert_int_equal(hints_add(&h, "f", 105, 100), 0);
	expect_ranges(&h, "f", (uint64_t[]){ 0, 15, 100, 110 }, 2);
	/* One range swallowing several. */
	assert_int_equal(hints_add(&h, "f", 14, 1000), 0);
	expect_ranges(&h, "f", (uint64_t[]){ 0, 1014 }, 1);
	/* A zero-length write: the path is hinted, with no bytes. */
	assert_int_equal(hints_add(&h, "g", 5, 0), 0);
	expect_ranges(&h, "g", NULL, 0);
	/* Offsets near the top do not wrap. */
	assert_int_equal(hints_add(&h, "top", UINT64_MAX - 4, 100), 0);
	expect_ranges(&h, "top", (uint64_t[]){ UINT64_MAX - 4, 4 }, 1);
	size_t n;
	assert_null(hints_get(&h, "absent", &n));
	hints_free(&h);
}

static void test_whole(void **state)
{
	(void)state;
	struct hints h = HINTS_INIT;
	size_t n;
	/* A write then a truncate: whole. */
	assert_int_equal(hints_add(&h, "a", 0, 10), 0);
	assert_int_equal(hints_whole(&h, "a"), 0);
	assert_null(hints_get(&h, "a", &n));
	/* A truncate then a write: still whole (sticky). */
	assert_int_equal(hints_whole(&h, "b"), 0);
	assert_int_equal(hints_add(&h, "b", 0, 10), 0);
	assert_null(hints_get(&h, "b", &n));
	/* Past the cap: whole. */
	for (uint64_t i = 0; i < HINTS_MAX_RANGES; i++)
		assert_int_equal(hints_add(&h, "c", i * 100, 1), 0);
	assert_non_null(hints_get(&h, "c", &n));
	assert_int_equal(n, HINTS_MAX_RANGES);
	/* Merging into an existing range never counts against the cap. */
	assert_int_equal(hints_add(&h, "c", 1, 1), 0);
	assert_non_null(hints_get(&h, "c", &n));
	assert_int_equal(hints_add(&h, "c", 100000, 1), 0);
	assert_null(hints_get(&h, "c", &n));
	hints_free(&h);
}

static void test_many_paths(void **state)
{
	(void)state;
	struct hints h = HINTS_INIT;
	char p[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(p, sizeof(p), "d/%d", i);
		assert_int_equal(hints_add(&h, p, (uint64_t)i, 1), 0);
	}
	for (int i = 0; i < 5000; i++) {
		size_t n;
		snprintf(p, sizeof(p), "d/%d", i);
		const struct hint_range *r = hints_get(&h, p, &n);
		assert_non_null(r);
		assert_int_equal(n, 1);
		assert_int_equal(r[0].off, (uint64_t)i);
	}
	assert_int_equal(h.count, 5000);
	hints_free(&h);
	assert_int_equal(h.count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_many_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
