/* A sync session against the real agent: one full sync, then pushes of
 * changed paths only (what hermes mount does), each checked by comparing
 * the trees. Needs HERMES_AGENT (meson sets it). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "testutil.h"
#include "transport.h"

static char dir[64], src[128], dst[128];

static void same_trees(void)
{
	sh("diff -r --no-dereference -x .hermes -x '*.o' '%s' '%s'", src, dst);
}

static void push(struct sync_session *s, const char *a, const char *b)
{
	char *paths[2] = { strdup(a), b ? strdup(b) : NULL };
	struct buf err = BUF_INIT;
	int rc = sync_session_push(s, paths, b ? 2 : 1, &err);
	if (rc)
		fprintf(stderr, "push: %.*s\n", (int)err.len, err.data ? (char *)err.data : "");
	assert_int_equal(rc, 0);
	buf_free(&err);
	free(paths[0]);
	free(paths[1]);
}

static void test_push(void **state)
{
	(void)state;
	const char *agent = getenv("HERMES_AGENT");
	if (!agent)
		skip();
	snprintf(dir, sizeof(dir), "/tmp/hermes-session-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	sh("mkdir -p %s/a/b && echo one > %s/a/b/f && echo '*.o' > %s/.gitignore", src, src, src);
	sh("head -c 300000 /dev/urandom > %s/a/big", src);

	char *argv[] = { (char *)agent, "--stdio", "--root", dst, NULL };
	struct transport *t;
	struct buf err = BUF_INIT;
	assert_int_equal(transport_local_open(argv, &t, &err), 0);
	struct sync_options o = { .local_dir = src, .dest_key = "test", .peer = "local agent",
				  .zstd_level = 1 };
	struct sync_stats st;
	struct sync_session *s;
	assert_int_equal(sync_session_open(t, &o, &st, &s, &err), 0);
	same_trees();

	/* an edit in place (a delta), a new file, an ignored one */
	sh("printf X | dd of=%s/a/big bs=1 seek=1000 conv=notrunc status=none", src);
	sh("echo new > %s/a/new.txt && echo junk > %s/a/x.o", src, src);
	uint64_t matched = st.matched_bytes;
	push(s, "a/big", "a/new.txt");
	push(s, "a/x.o", NULL);
	same_trees();
	assert_true(st.matched_bytes > matched);
	sh("test ! -e %s/a/x.o", dst);

	/* a directory renamed: both paths reported; a file becomes a dir */
	sh("mv %s/a/b %s/a/c && rm %s/a/new.txt && mkdir %s/a/new.txt", src, src, src, src);
	push(s, "a/b", "a/c");
	push(s, "a/new.txt", NULL);
	same_trees();

	/* a whole tree appears at once (moved in from outside) */
	sh("mkdir -p %s/tree/d1/d2 && echo deep > %s/tree/d1/d2/f && ln -s d1 %s/tree/link", dir, dir, dir);
	sh("mv %s/tree %s/tree", dir, src);
	push(s, "tree", NULL);
	same_trees();

	/* deletions, then a push of a path that never existed */
	sh("rm -rf %s/tree %s/a/big", src, src);
	push(s, "tree", "a/big");
	push(s, "no/such/path", NULL);
	same_trees();

	sync_session_close(s);
	assert_int_equal(transport_close(t, NULL), 0);
	buf_free(&err);
	sh("rm -rf %s", dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
