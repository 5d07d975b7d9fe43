/* Path checks: what may travel between client and agent. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <limits.h>
#include <string.h>

#include "path.h"

static int check(const char *p) { return path_check(p, strlen(p)); }

static void test_valid(void **state)
{
	(void)state;
	const char *ok[] = { "a", "a/b", "a/b/c.txt", ".gitignore", "..a", "a..", "a/.b/..c",
			     "with space/x", "ünïcode/файл", "a/...", NULL };
	for (int i = 0; ok[i]; i++)
		assert_int_equal(check(ok[i]), 0);
}

static void test_invalid(void **state)
{
	(void)state;
	const char *bad[] = { "", "/", "/etc/passwd", "..", "../x", "a/../b", "a/..", ".", "./a",
			      "a/./b", "a//b", "a/", "/a", NULL };
	for (int i = 0; bad[i]; i++)
		assert_int_not_equal(check(bad[i]), 0);
	/* An embedded NUL hides the rest of the path from C string functions. */
	assert_int_not_equal(path_check("a\0/../../x", 10), 0);
	char longname[NAME_MAX + 2];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_not_equal(check(longname), 0);
	static char longpath[PATH_MAX + 10];
	for (size_t i = 0; i < sizeof(longpath) - 1; i++)
		longpath[i] = (i % 2) ? '/' : 'a';
	longpath[sizeof(longpath) - 2] = 'a';
	assert_int_not_equal(check(longpath), 0);
}

static void test_parts(void **state)
{
	(void)state;
	assert_int_equal(path_dir_len("a/b/c"), 3);
	assert_int_equal(path_dir_len("c"), 0);
	assert_string_equal(path_base("a/b/c"), "c");
	assert_string_equal(path_base("c"), "c");
	assert_true(path_is_under("a/b", "a"));
	assert_true(path_is_under("a/b/c", "a"));
	assert_false(path_is_under("ab/c", "a"));
	assert_false(path_is_under("a", "a"));
	assert_true(path_is_under("x", ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
