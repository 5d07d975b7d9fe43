/* The live mirror against the real agent: changes noted, a flush barrier,
 * and a killed agent mid-session (the mirror reconnects and converges). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirror.h"
#include "testutil.h"
#include "transport.h"

static char dir[64], src[128], dst[128];
static int connects;

static int connect_local(void *ctx, struct transport **t, struct buf *err)
{
	(void)ctx;
	char *argv[] = { getenv("HERMES_AGENT"), "--stdio", "--root", dst, NULL };
	connects++;
	return transport_local_open(argv, t, err);
}

static void same_trees(void)
{
	sh("diff -r --no-dereference -x .hermes '%s' '%s'", src, dst);
}

static void test_mirror(void **state)
{
	(void)state;
	if (!getenv("HERMES_AGENT"))
		skip();
	snprintf(dir, sizeof(dir), "/tmp/hermes-mirror-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	sh("mkdir -p %s/d && echo one > %s/d/f", src, src);

	struct mirror_config cfg = {
		.so = { .local_dir = src, .dest_key = "t", .peer = "local agent", .zstd_level = 1 },
		.dest = dst,
		.connect = connect_local,
	};
	struct mirror *m;
	assert_int_equal(mirror_start(&cfg, &m), 0);
	assert_true(mirror_flush(m, 10000) >= 0); /* the first reconcile */
	same_trees();

	/* A burst of changes, then the barrier: all of it is there. */
	for (int i = 0; i < 50; i++) {
		sh("echo %d > %s/d/n%d", i, src, i);
		char p[32];
		snprintf(p, sizeof(p), "d/n%d", i);
		mirror_changed(m, p);
	}
	sh("mv %s/d/f %s/d/g", src, src);
	mirror_changed(m, "d/f");
	mirror_changed(m, "d/g");
	assert_true(mirror_flush(m, 10000) > 0);
	same_trees();

	struct buf st = BUF_INIT;
	mirror_status(m, &st);
	assert_non_null(memmem(st.data, st.len, "state: idle", 11));
	buf_free(&st);

	/* The agent dies; edits go on; the mirror reconnects and catches up. */
	sh("pkill -9 -f '[h]ermes-agent --stdio --root %s' || true", dst);
	sh("echo after > %s/d/after && rm %s/d/n3", src, src);
	mirror_changed(m, "d/after");
	mirror_changed(m, "d/n3");
	assert_true(mirror_flush(m, 20000) > 0);
	same_trees();
	assert_true(connects >= 2);

	assert_int_equal(mirror_stop(m, 5000), 0);
	sh("rm -rf %s", dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mirror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
