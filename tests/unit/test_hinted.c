/* Pushes from byte-range hints (what hermes mount's dirty tracking feeds
 * the sync) against the real agent: only the hinted blocks travel, no
 * signature is asked for, and a hint that lies (the host's copy or the file
 * changed elsewhere) still converges, through the agent's whole-file check
 * and a resend. Needs HERMES_AGENT (meson sets it). */
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
#include "hints.h"
#include "testutil.h"
#include "transport.h"

#define BIG 300000

static char dir[64], src[128], dst[128];

static void same_trees(void)
{
	sh("diff -r --no-dereference -x .hermes '%s' '%s'", src, dst);
}

/* Push path "big" with the given ranges (n pairs off, len; n 0: times only). */
static void push_ranges(struct sync_session *s, const uint64_t *r, size_t n)
{
	struct hints h = HINTS_INIT;
	char *paths[1] = { strdup("big") };
	struct buf err = BUF_INIT;
	assert_int_equal(hints_whole(&h, "other"), 0);
	assert_int_equal(hints_add(&h, "big", 0, 0), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(hints_add(&h, "big", r[2 * i], r[2 * i + 1]), 0);
	int rc = sync_session_push_hinted(s, paths, 1, &h, &err);
	if (rc)
		fprintf(stderr, "push: %.*s\n", (int)err.len, err.data ? (char *)err.data : "");
	assert_int_equal(rc, 0);
	hints_free(&h);
	buf_free(&err);
	free(paths[0]);
}

static void poke(const char *root, const char *what, uint64_t off)
{
	sh("printf %s | dd of=%s/big bs=1 seek=%llu conv=notrunc status=none", what, root,
	   (unsigned long long)off);
}

static int64_t mtime_of(const char *root)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s/big", root);
	assert_int_equal(stat(p, &st), 0);
	return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

static void test_hinted(void **state)
{
	(void)state;
	const char *agent = getenv("HERMES_AGENT");
	assert_non_null(agent);
	snprintf(dir, sizeof(dir), "/tmp/hermes-hinted-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	sh("mkdir -p %s && head -c %d /dev/urandom > %s/big", src, BIG, src);

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

	/* Two bytes far apart, one range each: two blocks travel. */
	poke(src, "X", 150000);
	poke(src, "Y", 4096 * 3 + 7);
	uint64_t lit = st.literal_bytes, sent = st.bytes_sent;
	push_ranges(s, (uint64_t[]){ 4096 * 3 + 7, 1, 150000, 1 }, 2);
	same_trees();
	assert_int_equal(st.sig_requests, 0);
	assert_int_equal(st.hinted_files, 1);
	/* (and the short last block, which is never copied) */
	assert_int_equal(st.literal_bytes - lit, 2 * 4096 + BIG % 4096);
	assert_true(st.bytes_sent - sent < 12000);

	/* The file grows: the changed block and the new tail travel. */
	sh("head -c 10000 /dev/urandom >> %s/big", src);
	poke(src, "Z", 1);
	lit = st.literal_bytes;
	push_ranges(s, (uint64_t[]){ 0, 2, BIG, 10000 }, 2);
	same_trees();
	assert_int_equal(st.hinted_files, 2);
	assert_true(st.literal_bytes - lit < 4096 + 10000 + 4096);

	/* Times only: no content, the host's mtime follows. */
	sh("touch -d '2001-02-03 04:05:06' %s/big", src);
	push_ranges(s, NULL, 0);
	same_trees();
	assert_true(mtime_of(src) == mtime_of(dst));

	/* A hint that lies: the change is elsewhere. The agent's check fails
	 * and the file is resent whole; the trees converge all the same. */
	poke(src, "Q", 200000);
	uint64_t files = st.files_sent;
	push_ranges(s, (uint64_t[]){ 100, 1 }, 1);
	same_trees();
	assert_int_equal(st.files_sent - files, 2);

	/* The host's copy changed behind our back: local wins. */
	poke(dst, "H", 50000);
	poke(src, "L", 70000);
	push_ranges(s, (uint64_t[]){ 70000, 1 }, 1);
	same_trees();
	assert_int_equal(st.sig_requests, 0);

	sync_session_close(s);
	assert_int_equal(transport_close(t, NULL), 0);
	buf_free(&err);
	sh("rm -rf %s", dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hinted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
