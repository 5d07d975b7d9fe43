/* A hostile hermes-agent for tests: it completes the handshake, then lies
 * in the way HOSTILE_MODE says. The client must fail with a clear protocol
 * error, never crash, and never touch anything because of what it was told.
 *   traversal  an entry named "../../escape"
 *   nul        an entry whose name hides a NUL
 *   badsig     a signature whose block count does not match its size
 *   garbage    bytes that are not a zstd stream
 *   oversize   a frame longer than the protocol allows */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "transport.h"
#include "wire.h"

static void send_frame(struct wire *w, uint8_t type, const struct buf *b)
{
	struct enc e;
	wire_begin(w, &e);
	if (b)
		enc_fixed(&e, b->data, b->len);
	wire_end(w, &e, type, 0);
}

static void entry(struct buf *b, const char *path, size_t len, uint64_t size)
{
	struct enc e = { .b = b };
	uint8_t hash[16];
	memset(hash, 0x5a, sizeof(hash));
	enc_blob(&e, path, len);
	enc_u8(&e, 1); /* file */
	enc_u8(&e, 1); /* tracked */
	enc_uvar(&e, 0644);
	enc_uvar(&e, size);
	enc_svar(&e, 0);
	enc_fixed(&e, hash, 16);
}

static void opened(struct wire *w, const char *path, size_t len, uint64_t size)
{
	struct buf b = BUF_INIT;
	struct enc e = { .b = &b };
	uint8_t id[16] = { 1 };
	enc_fixed(&e, id, 16);
	enc_uvar(&e, 7);
	enc_u8(&e, OPENED_FULL);
	send_frame(w, MSG_OPENED, &b);
	buf_reset(&b);
	entry(&b, path, len, size);
	send_frame(w, MSG_ENTRY, &b);
	send_frame(w, MSG_END, NULL);
	buf_free(&b);
}

int main(void)
{
	const char *mode = getenv("HOSTILE_MODE");
	struct transport *t = transport_fd_new(0, 1);
	struct wire w;
	struct buf err = BUF_INIT;
	if (!mode || !t || wire_init(&w, t, 1) || wire_handshake(&w, 5000, &err))
		return 3;
	if (!strcmp(mode, "garbage")) {
		const char junk[] = "definitely not zstd, definitely not frames";
		transport_write(t, junk, sizeof(junk));
		return 0;
	}
	if (!strcmp(mode, "oversize")) {
		uint8_t h[PROTO_HDR_LEN] = { 0x7f, 0xff, 0xff, 0xff, MSG_HELLO };
		buf_append(&w.out, h, sizeof(h));
		wire_flush(&w);
		sleep(1);
		return 0;
	}
	send_frame(&w, MSG_HELLO, NULL);
	if (!strcmp(mode, "traversal"))
		opened(&w, "../../escape", 12, 3);
	else if (!strcmp(mode, "nul"))
		opened(&w, "a\0/../../b", 10, 3);
	else if (!strcmp(mode, "badsig"))
		opened(&w, "big.bin", 7, 5000);
	wire_flush(&w);
	struct frame f;
	while (wire_recv(&w, &f, 5000) == 1) {
		if (f.type != MSG_SIGREQ)
			continue;
		/* 5000 bytes in blocks of 512 are 10 blocks, not 2. */
		struct buf b = BUF_INIT;
		struct enc e = { .b = &b };
		enc_uvar(&e, 5000);
		enc_uvar(&e, 512);
		enc_uvar(&e, 2);
		enc_uvar(&e, 2);
		uint8_t junk[12] = { 0 };
		enc_fixed(&e, junk, sizeof(junk));
		struct enc fe;
		wire_begin(&w, &fe);
		enc_fixed(&fe, b.data, b.len);
		wire_end(&w, &fe, MSG_SIG, f.id);
		wire_flush(&w);
		buf_free(&b);
	}
	return 0;
}
