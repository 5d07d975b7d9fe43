/* Protocol codec: frames, varints, strings and paths, and the compressed
 * wire over a real socketpair. Truncated, oversized and malformed input
 * must be rejected, never read past. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "transport.h"
#include "wire.h"

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static void test_frame_roundtrip(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct enc e;
	enc_frame_begin(&e, &b);
	enc_uvar(&e, 300);
	enc_svar(&e, -5);
	enc_str(&e, "dir/file");
	assert_int_equal(enc_frame_end(&e, MSG_DELETE, 42), 0);
	struct frame f;
	/* Every proper prefix is "need more", never a frame. */
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(proto_frame_parse(b.data, n, &f), 0);
	assert_int_equal(proto_frame_parse(b.data, b.len, &f), (long)b.len);
	assert_int_equal(f.type, MSG_DELETE);
	assert_int_equal(f.id, 42);
	struct dec d;
	dec_init(&d, &f);
	assert_int_equal(dec_uvar(&d), 300);
	assert_int_equal(dec_svar(&d), -5);
	char path[PATH_MAX];
	dec_path(&d, path);
	assert_int_equal(d.err, 0);
	assert_string_equal(path, "dir/file");
	/* Reading past the end sets the error and returns zeros. */
	assert_int_equal(dec_u8(&d), 0);
	assert_int_equal(d.err, -EPROTO);
	buf_free(&b);
}

static void test_frame_rejects(void **state)
{
	(void)state;
	uint8_t h[PROTO_HDR_LEN] = { 0 };
	struct frame f;
	put_be32(h, PROTO_MAX_FRAME + 1); /* oversized */
	h[4] = MSG_DATA;
	assert_int_equal(proto_frame_parse(h, sizeof(h), &f), -EPROTO);
	put_be32(h, 3); /* shorter than type + id */
	assert_int_equal(proto_frame_parse(h, sizeof(h), &f), -EPROTO);
	put_be32(h, 5);
	h[4] = 0; /* no such type */
	assert_int_equal(proto_frame_parse(h, sizeof(h), &f), -EPROTO);
	h[4] = MSG_TYPE_MAX;
	assert_int_equal(proto_frame_parse(h, sizeof(h), &f), -EPROTO);
	h[4] = MSG_COMMIT;
	assert_int_equal(proto_frame_parse(h, sizeof(h), &f), (long)sizeof(h));
	assert_int_equal(f.len, 0);
}

static struct frame frame_of(const uint8_t *p, size_t n)
{
	struct frame f = { .type = MSG_DATA, .payload = p, .len = (uint32_t)n };
	return f;
}

static void test_varints(void **state)
{
	(void)state;
	uint64_t vals[] = { 0, 1, 127, 128, 16383, 16384, UINT32_MAX, UINT64_MAX };
	int64_t svals[] = { 0, -1, 1, INT64_MIN, INT64_MAX, -1234567 };
	struct buf b = BUF_INIT;
	struct enc e = { .b = &b };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		enc_uvar(&e, vals[i]);
	for (size_t i = 0; i < sizeof(svals) / sizeof(svals[0]); i++)
		enc_svar(&e, svals[i]);
	struct frame f = frame_of(b.data, b.len);
	struct dec d;
	dec_init(&d, &f);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		assert_true(dec_uvar(&d) == vals[i]);
	for (size_t i = 0; i < sizeof(svals) / sizeof(svals[0]); i++)
		assert_true(dec_svar(&d) == svals[i]);
	assert_int_equal(d.err, 0);
	buf_free(&b);

	/* 11 continuation bytes: more than 64 bits. */
	uint8_t over[11];
	memset(over, 0xff, sizeof(over));
	f = frame_of(over, sizeof(over));
	dec_init(&d, &f);
	dec_uvar(&d);
	assert_int_equal(d.err, -EPROTO);
	/* Truncated varint. */
	f = frame_of(over, 3);
	dec_init(&d, &f);
	dec_uvar(&d);
	assert_int_equal(d.err, -EPROTO);
}

static void test_blob_and_paths(void **state)
{
	(void)state;
	/* A blob claiming more bytes than the payload holds. */
	uint8_t p[] = { 0x7f, 'a', 'b' };
	struct frame f = frame_of(p, sizeof(p));
	struct dec d;
	size_t n;
	dec_init(&d, &f);
	dec_blob(&d, &n);
	assert_int_equal(d.err, -EPROTO);

	const char *bad[] = { "../x", "/etc/passwd", "a/../../b", "", "a//b", NULL };
	for (int i = 0; bad[i]; i++) {
		struct buf b = BUF_INIT;
		struct enc e = { .b = &b };
		enc_str(&e, bad[i]);
		f = frame_of(b.data ? b.data : p, b.len);
		char out[PATH_MAX];
		dec_init(&d, &f);
		dec_path(&d, out);
		assert_int_equal(d.err, -EPROTO);
		buf_free(&b);
	}
	/* An embedded NUL in a string or path. */
	uint8_t nul[] = { 4, 'a', 0, 'b', 'c' };
	char out[PATH_MAX];
	f = frame_of(nul, sizeof(nul));
	dec_init(&d, &f);
	dec_path(&d, out);
	assert_int_equal(d.err, -EPROTO);
	dec_init(&d, &f);
	dec_str(&d, out, sizeof(out));
	assert_int_equal(d.err, -EPROTO);
	/* A string longer than the caller's buffer. */
	uint8_t longs[] = { 5, 'a', 'b', 'c', 'd', 'e' };
	f = frame_of(longs, sizeof(longs));
	dec_init(&d, &f);
	dec_str(&d, out, 4);
	assert_int_equal(d.err, -EPROTO);
}

struct pair {
	int fds[2];
	struct transport *ta, *tb;
	struct wire a, b;
};

static void pair_open(struct pair *p)
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fds), 0);
	p->ta = transport_fd_new(p->fds[0], p->fds[0]);
	p->tb = transport_fd_new(p->fds[1], p->fds[1]);
	assert_non_null(p->ta);
	assert_non_null(p->tb);
	assert_int_equal(wire_init(&p->a, p->ta, 1), 0);
	assert_int_equal(wire_init(&p->b, p->tb, 1), 0);
}

static void pair_close(struct pair *p)
{
	wire_free(&p->a);
	wire_free(&p->b);
	transport_close(p->ta, NULL);
	transport_close(p->tb, NULL);
	close(p->fds[0]);
	if (p->fds[1] >= 0)
		close(p->fds[1]);
}

/* Many messages, one of them near the frame limit, survive the round trip
 * through zstd in both directions of a real socket. */
static void test_wire_roundtrip(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	size_t big = 3u << 20;
	uint8_t *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	/* The writer may block on the socket: use a child for it. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct enc e;
		for (uint32_t i = 0; i < 1000; i++) {
			wire_begin(&p.a, &e);
			enc_uvar(&e, i);
			if (wire_end(&p.a, &e, MSG_SETATTR, i))
				_exit(1);
		}
		wire_begin(&p.a, &e);
		enc_fixed(&e, data, big);
		if (wire_end(&p.a, &e, MSG_DATA, 7) || wire_flush(&p.a))
			_exit(1);
		_exit(0);
	}
	struct frame f;
	for (uint32_t i = 0; i < 1000; i++) {
		assert_int_equal(wire_recv(&p.b, &f, 5000), 1);
		assert_int_equal(f.type, MSG_SETATTR);
		assert_int_equal(f.id, i);
	}
	assert_int_equal(wire_recv(&p.b, &f, 5000), 1);
	assert_int_equal(f.type, MSG_DATA);
	assert_int_equal(f.len, big);
	assert_memory_equal(f.payload, data, big);
	int status;
	waitpid(pid, &status, 0);
	assert_int_equal(status, 0);
	/* Nothing more: a timeout, not a frame. */
	assert_int_equal(wire_recv(&p.b, &f, 10), -EAGAIN);
	free(data);
	pair_close(&p);
}

/* Garbage instead of a zstd stream, and a stream cut mid-frame. */
static void test_wire_garbage(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	uint8_t junk[64];
	memset(junk, 0xab, sizeof(junk));
	assert_int_equal(write(p.fds[0], junk, sizeof(junk)), (ssize_t)sizeof(junk));
	struct frame f;
	assert_int_equal(wire_recv(&p.b, &f, 1000), -EPROTO);
	pair_close(&p);

	pair_open(&p);
	struct enc e;
	wire_begin(&p.a, &e);
	enc_fixed(&e, junk, sizeof(junk));
	assert_int_equal(wire_end(&p.a, &e, MSG_DATA, 0), 0);
	/* Compress, then send only part of it and close. */
	assert_int_equal(wire_flush(&p.a), 0);
	struct pair q;
	pair_open(&q);
	uint8_t comp[4096];
	ssize_t n = read(p.fds[1], comp, sizeof(comp));
	assert_true(n > 8);
	assert_int_equal(write(q.fds[0], comp, (size_t)n / 2), n / 2);
	shutdown(q.fds[0], SHUT_WR);
	int rc = wire_recv(&q.b, &f, 1000);
	assert_true(rc == -EPROTO || rc == 0);
	assert_int_not_equal(rc, 1);
	pair_close(&q);
	pair_close(&p);
}

static void test_handshake(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	/* The peer prints a shell error instead of speaking the protocol. */
	const char *msg = "sh: 1: hermes-agent: not found\n";
	assert_int_equal(write(p.fds[0], msg, strlen(msg)), (ssize_t)strlen(msg));
	struct buf err = BUF_INIT;
	assert_int_equal(wire_handshake(&p.b, 1000, &err), -EPROTO);
	assert_non_null(err.data);
	assert_non_null(memmem(err.data, err.len, "hermes-agent: not found", 23));
	buf_free(&err);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_roundtrip),
		cmocka_unit_test(test_frame_rejects),
		cmocka_unit_test(test_varints),
		cmocka_unit_test(test_blob_and_paths),
		cmocka_unit_test(test_wire_roundtrip),
		cmocka_unit_test(test_wire_garbage),
		cmocka_unit_test(test_handshake),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
