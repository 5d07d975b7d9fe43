/* Fuzz target for the protocol decoders (libFuzzer entry point).
 *
 * The first input byte picks the layer: even -> raw frames, decoded the way
 * the agent and client decode each message type; odd -> a compressed wire
 * stream pushed through wire_recv() over a socketpair. Either way nothing
 * may crash, leak or read out of bounds, whatever the bytes. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "manifest.h"
#include "proto.h"
#include "transport.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_payload(const struct frame *f)
{
	struct dec d;
	char a[PATH_MAX], b[PATH_MAX];
	uint8_t h[16];
	size_t n;
	struct entry en;
	dec_init(&d, f);
	switch (f->type) {
	case MSG_ENTRY:
		if (entry_decode(&d, &en) == 0)
			entry_free(&en);
		break;
	case MSG_OPEN:
		dec_u8(&d);
		dec_fixed(&d, h, 16);
		dec_uvar(&d);
		break;
	case MSG_FILE:
		dec_path(&d, a);
		dec_uvar(&d);
		dec_uvar(&d);
		dec_svar(&d);
		switch (dec_u8(&d)) {
		case FILE_DELTA:
			dec_uvar(&d);
			break;
		case FILE_INLINE:
			dec_fixed(&d, h, 16);
			dec_rest(&d, &n);
			break;
		}
		break;
	case MSG_FEND:
		dec_fixed(&d, h, 16);
		break;
	case MSG_SYMLINK:
		dec_path(&d, a);
		dec_str(&d, b, sizeof(b));
		dec_svar(&d);
		break;
	case MSG_RENAME:
		dec_path(&d, a);
		dec_path(&d, b);
		break;
	case MSG_ERROR:
		dec_uvar(&d);
		dec_u8(&d);
		dec_str(&d, a, sizeof(a));
		dec_str(&d, b, sizeof(b));
		break;
	default:
		dec_path(&d, a);
		dec_uvar(&d);
		dec_svar(&d);
		dec_blob(&d, &n);
		break;
	}
}

static void fuzz_frames(const uint8_t *p, size_t n)
{
	struct frame f;
	long len;
	while ((len = proto_frame_parse(p, n, &f)) > 0) {
		decode_payload(&f);
		p += len;
		n -= (size_t)len;
	}
}

static void fuzz_wire(const uint8_t *p, size_t n)
{
	int fds[2];
	if (n > 60000 || socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
		return;
	if (write(fds[0], p, n) != (ssize_t)n) {
		close(fds[0]);
		close(fds[1]);
		return;
	}
	shutdown(fds[0], SHUT_WR);
	struct transport *t = transport_fd_new(fds[1], fds[1]);
	struct wire w;
	if (t && wire_init(&w, t, 1) == 0) {
		struct frame f;
		while (wire_recv(&w, &f, 0) == 1)
			decode_payload(&f);
		wire_free(&w);
	}
	if (t)
		transport_close(t, NULL);
	close(fds[0]);
	close(fds[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_wire(data + 1, size - 1);
	else
		fuzz_frames(data + 1, size - 1);
	return 0;
}
