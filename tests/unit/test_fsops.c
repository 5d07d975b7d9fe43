/* Confined path resolution: openat2 and the component-by-component
 * fallback for older kernels must refuse the same escapes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsops.h"

struct fixture {
	char dir[64];
	int root;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/hermes-fsops-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	char p[128];
	snprintf(p, sizeof(p), "%s/root", f->dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/outside", f->dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/root", f->dir);
	f->root = open(p, O_RDONLY | O_DIRECTORY);
	mkdirat(f->root, "a", 0755);
	mkdirat(f->root, "a/b", 0755);
	close(openat(f->root, "a/b/file", O_WRONLY | O_CREAT, 0644));
	snprintf(p, sizeof(p), "%s/outside", f->dir);
	symlinkat(p, f->root, "escape");           /* absolute, out */
	symlinkat("../../..", f->root, "a/up");     /* relative, out */
	symlinkat("b", f->root, "a/inside");        /* relative, in */
	symlinkat("b/file", f->root, "a/filelink"); /* to a file */
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	close(f->root);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(f);
	return rc;
}

typedef int (*opener)(int, const char *, int);

static void check_both(struct fixture *f, const char *path, int flags, bool ok)
{
	opener fns[] = { open_beneath, open_beneath_walk };
	for (int i = 0; i < 2; i++) {
		int fd = fns[i](f->root, path, flags);
		if (ok) {
			assert_true(fd >= 0);
			close(fd);
		} else {
			assert_true(fd < 0);
		}
	}
}

static void test_confined(void **state)
{
	struct fixture *f = *state;
	check_both(f, "a", O_PATH | O_DIRECTORY, true);
	check_both(f, "a/b", O_PATH | O_DIRECTORY, true);
	check_both(f, "a/b/file", O_RDONLY, true);
	/* Symlinks are never followed, inside or out, middle or end. */
	check_both(f, "escape", O_PATH | O_DIRECTORY, false);
	check_both(f, "escape/x", O_RDONLY, false);
	check_both(f, "a/up/etc", O_PATH | O_DIRECTORY, false);
	check_both(f, "a/inside/file", O_RDONLY, false);
	check_both(f, "a/filelink", O_RDONLY, false);
	/* Lexical escapes. */
	check_both(f, "..", O_PATH | O_DIRECTORY, false);
	check_both(f, "a/../../outside", O_PATH | O_DIRECTORY, false);
	check_both(f, "/etc", O_PATH | O_DIRECTORY, false);
	assert_int_equal(open_beneath_walk(f->root, "a/inside/file", O_RDONLY), -ELOOP);
	assert_int_equal(open_beneath_walk(f->root, "a/missing/file", O_RDONLY), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_confined, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
