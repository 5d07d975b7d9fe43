/* A hostile client against the real hermes-agent: traversal paths, symlink
 * escapes, writes into the agent's own state, and malformed frames. Each
 * must get an error back, the agent must exit cleanly (no crash), and
 * nothing outside the root may change. Needs HERMES_AGENT in the
 * environment (meson sets it). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"
#include "transport.h"
#include "wire.h"

struct peer {
	char dir[256];          /* temp dir holding root/ and outside/ */
	char root[300];
	char outside[300];
	struct transport *t;
	struct wire w;
	int errors;             /* MSG_ERROR frames received */
	char last_error[1024];
	bool fatal;
};

static void peer_start(struct peer *p)
{
	const char *agent = getenv("HERMES_AGENT");
	if (!agent)
		skip();
	memset(p, 0, sizeof(*p));
	snprintf(p->dir, sizeof(p->dir), "/tmp/hermes-hostile-XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->root, sizeof(p->root), "%s/root", p->dir);
	snprintf(p->outside, sizeof(p->outside), "%s/outside", p->dir);
	assert_int_equal(mkdir(p->root, 0755), 0);
	assert_int_equal(mkdir(p->outside, 0755), 0);
	char *argv[] = { (char *)agent, "--stdio", "--root", p->root, NULL };
	struct buf err = BUF_INIT;
	assert_int_equal(transport_local_open(argv, &p->t, &err), 0);
	buf_free(&err);
	assert_int_equal(wire_init(&p->w, p->t, 1), 0);
	assert_int_equal(wire_handshake(&p->w, 5000, &err), 0);
	buf_free(&err);
}

static void send_msg(struct peer *p, uint8_t type, const struct buf *payload)
{
	struct enc e;
	wire_begin(&p->w, &e);
	if (payload)
		enc_fixed(&e, payload->data, payload->len);
	assert_int_equal(wire_end(&p->w, &e, type, 0), 0);
}

static void send_open(struct peer *p)
{
	struct buf b = BUF_INIT;
	struct enc e = { .b = &b };
	uint8_t zero[16] = { 0 };
	enc_u8(&e, 0);
	enc_fixed(&e, zero, 16);
	enc_uvar(&e, 0);
	send_msg(p, MSG_OPEN, &b);
	buf_free(&b);
}

/* Read until end of stream or COMMITTED; count error reports. */
static int drain(struct peer *p, bool until_committed)
{
	struct frame f;
	int rc;
	assert_int_equal(wire_flush(&p->w), 0);
	while ((rc = wire_recv(&p->w, &f, 10000)) == 1) {
		if (f.type == MSG_ERROR) {
			struct dec d;
			char path[PATH_MAX];
			dec_init(&d, &f);
			dec_uvar(&d);
			p->fatal |= dec_u8(&d) & ERROR_FATAL;
			dec_str(&d, path, sizeof(path));
			dec_str(&d, p->last_error, sizeof(p->last_error));
			p->errors++;
		}
		if (until_committed && f.type == MSG_COMMITTED)
			return 1;
	}
	return rc;
}

static int outside_entries(const struct peer *p)
{
	DIR *d = opendir(p->outside);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void rm_rf(const char *path)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

/* Returns the agent's exit status. */
static int peer_stop(struct peer *p)
{
	wire_free(&p->w);
	int status = transport_close(p->t, NULL);
	assert_int_equal(outside_entries(p), 0);
	rm_rf(p->dir);
	return status;
}

static void path_payload(struct buf *b, const char *path, size_t len)
{
	struct enc e = { .b = b };
	enc_blob(&e, path, len);
}

/* Paths that fail validation end the session with a protocol error. */
static void test_traversal_paths(void **state)
{
	(void)state;
	const char *bad[] = { "../outside/x", "/tmp/abs", "a/../../outside/y", "..", "a//b", NULL };
	for (int i = 0; bad[i]; i++) {
		struct peer p;
		peer_start(&p);
		send_open(&p);
		struct buf b = BUF_INIT;
		path_payload(&b, bad[i], strlen(bad[i]));
		struct enc e = { .b = &b };
		enc_uvar(&e, 0755);
		send_msg(&p, MSG_MKDIR, &b);
		buf_free(&b);
		drain(&p, false);
		assert_true(p.fatal);
		assert_non_null(strstr(p.last_error, "protocol error"));
		assert_int_equal(peer_stop(&p), 1);
	}
	/* A NUL inside a path (C string functions would stop at it). */
	struct peer p;
	peer_start(&p);
	send_open(&p);
	struct buf b = BUF_INIT;
	path_payload(&b, "x\0/../../outside/z", 18);
	send_msg(&p, MSG_DELETE, &b);
	buf_free(&b);
	drain(&p, false);
	assert_true(p.fatal);
	assert_int_equal(peer_stop(&p), 1);
}

static void file_msg(struct buf *b, const char *path, const char *content)
{
	struct enc e = { .b = b };
	uint8_t hash[16] = { 0 }; /* wrong on purpose for some tests */
	enc_str(&e, path);
	enc_uvar(&e, 0644);
	enc_uvar(&e, strlen(content));
	enc_svar(&e, 0);
	enc_u8(&e, FILE_INLINE);
	enc_fixed(&e, hash, 16);
	enc_fixed(&e, content, strlen(content));
}

/* A symlink that points outside, then writes through it: refused, and the
 * outside directory stays empty. */
static void test_symlink_escape(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p);
	send_open(&p);
	struct buf b = BUF_INIT;
	struct enc e = { .b = &b };
	enc_str(&e, "link");
	enc_str(&e, p.outside);
	enc_svar(&e, 0);
	send_msg(&p, MSG_SYMLINK, &b);
	const char *through[] = { "link/evil", "link/sub/evil", NULL };
	for (int i = 0; through[i]; i++) {
		buf_reset(&b);
		file_msg(&b, through[i], "pwned");
		send_msg(&p, MSG_FILE, &b);
		buf_reset(&b);
		e.b = &b;
		enc_str(&e, through[i]);
		enc_uvar(&e, 0755);
		send_msg(&p, MSG_MKDIR, &b);
	}
	buf_reset(&b);
	enc_str(&e, "link/x");
	enc_uvar(&e, 0777);
	enc_svar(&e, 0);
	send_msg(&p, MSG_SETATTR, &b);
	buf_reset(&b);
	enc_str(&e, "link");
	enc_str(&e, "renamed");
	send_msg(&p, MSG_RENAME, &b);
	/* Our own state directory is off limits too. */
	buf_reset(&b);
	file_msg(&b, ".hermes/agent/manifest", "junk");
	send_msg(&p, MSG_FILE, &b);
	buf_reset(&b);
	file_msg(&b, "dir/.hermes-tmp.1234", "junk");
	send_msg(&p, MSG_FILE, &b);
	send_msg(&p, MSG_COMMIT, NULL);
	buf_free(&b);
	assert_int_equal(drain(&p, true), 1);
	assert_true(p.errors >= 7);
	/* The symlink itself was created inside the root, and is a symlink. */
	char lp[PATH_MAX];
	struct stat st;
	snprintf(lp, sizeof(lp), "%s/link", p.root);
	assert_int_equal(lstat(lp, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* The agent's manifest is still its own. */
	char mp[PATH_MAX];
	snprintf(mp, sizeof(mp), "%s/.hermes/agent/manifest", p.root);
	FILE *f = fopen(mp, "rb");
	assert_non_null(f);
	char head[8] = { 0 };
	assert_int_equal(fread(head, 1, 8, f), 8);
	fclose(f);
	assert_memory_equal(head, "HRMSMAN1", 8);
	assert_int_equal(peer_stop(&p), 0);
}

/* A file whose content does not match its announced hash is not installed. */
static void test_bad_hash(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p);
	send_open(&p);
	struct buf b = BUF_INIT;
	file_msg(&b, "victim", "new content");
	send_msg(&p, MSG_FILE, &b);
	send_msg(&p, MSG_COMMIT, NULL);
	buf_free(&b);
	assert_int_equal(drain(&p, true), 1);
	assert_int_equal(p.errors, 1);
	char vp[PATH_MAX];
	snprintf(vp, sizeof(vp), "%s/victim", p.root);
	assert_int_equal(access(vp, F_OK), -1);
	/* ... and no temp file is left behind. */
	DIR *d = opendir(p.root);
	struct dirent *de;
	while ((de = readdir(d)))
		assert_null(strstr(de->d_name, ".hermes-tmp."));
	closedir(d);
	assert_int_equal(peer_stop(&p), 0);
}

/* Raw bytes instead of frames: the agent says so and exits 1, no crash. */
static void raw_case(const uint8_t *bytes, size_t n, bool compressed)
{
	struct peer p;
	peer_start(&p);
	send_open(&p);
	assert_int_equal(wire_flush(&p.w), 0);
	if (compressed) {
		/* A valid zstd stream carrying a bad frame. */
		buf_append(&p.w.out, bytes, n);
		assert_int_equal(wire_flush(&p.w), 0);
	} else {
		assert_int_equal(transport_write(p.t, bytes, n), 0);
	}
	drain(&p, false);
	assert_true(p.fatal);
	assert_int_equal(peer_stop(&p), 1);
}

static void test_malformed_frames(void **state)
{
	(void)state;
	uint8_t oversized[] = { 0x7f, 0xff, 0xff, 0xff, MSG_DATA, 0, 0, 0, 0 };
	raw_case(oversized, sizeof(oversized), true);
	uint8_t badtype[] = { 0, 0, 0, 5, 0xee, 0, 0, 0, 0 };
	raw_case(badtype, sizeof(badtype), true);
	/* MKDIR whose payload stops inside the path length. */
	uint8_t shortp[] = { 0, 0, 0, 6, MSG_MKDIR, 0, 0, 0, 0, 0x90 };
	raw_case(shortp, sizeof(shortp), true);
	/* DATA with no file open. */
	uint8_t orphan[] = { 0, 0, 0, 6, MSG_DATA, 0, 0, 0, 0, 'x' };
	raw_case(orphan, sizeof(orphan), true);
	/* Not zstd at all. */
	uint8_t junk[] = "this is not a zstd stream at all, just text";
	raw_case(junk, sizeof(junk), false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_traversal_paths),
		cmocka_unit_test(test_symlink_escape),
		cmocka_unit_test(test_bad_hash),
		cmocka_unit_test(test_malformed_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
