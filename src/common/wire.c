#include "wire.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "transport.h"

#define WIRE_INFLATE_STEP (128u * 1024u)
#define WIRE_READ_STEP (256u * 1024u)

int wire_init(struct wire *w, struct transport *t, int zstd_level)
{
	memset(w, 0, sizeof(*w));
	w->t = t;
	w->cctx = ZSTD_createCCtx();
	w->dctx = ZSTD_createDCtx();
	if (!w->cctx || !w->dctx) {
		wire_free(w);
		return -ENOMEM;
	}
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, zstd_level);
	/* Bound the window a peer can make us keep. */
	ZSTD_DCtx_setParameter(w->dctx, ZSTD_d_windowLogMax, 23);
	return 0;
}

void wire_free(struct wire *w)
{
	ZSTD_freeCCtx(w->cctx);
	ZSTD_freeDCtx(w->dctx);
	buf_free(&w->out);
	buf_free(&w->zout);
	buf_free(&w->zin);
	buf_free(&w->in);
	w->cctx = NULL;
	w->dctx = NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Describe unexpected bytes from the peer: printable text as is, else hex. */
static void describe_garbage(struct buf *err, const uint8_t *p, size_t n)
{
	bool text = true;
	for (size_t i = 0; i < n; i++)
		if (!isprint(p[i]) && !isspace(p[i]))
			text = false;
	if (text) {
		buf_printf(err, "\"%.*s\"", (int)n, (const char *)p);
		return;
	}
	for (size_t i = 0; i < n && i < 16; i++)
		buf_printf(err, "%02x", p[i]);
}

int wire_handshake(struct wire *w, int timeout_ms, struct buf *err)
{
	uint8_t mine[PROTO_PREAMBLE_LEN] = PROTO_PREAMBLE;
	mine[PROTO_PREAMBLE_LEN - 1] = PROTO_VERSION;
	int rc = transport_write(w->t, mine, sizeof(mine));
	if (rc)
		return rc;
	w->bytes_sent += sizeof(mine);

	uint8_t got[256];
	size_t n = 0;
	int64_t deadline = now_ms() + timeout_ms;
	while (n < PROTO_PREAMBLE_LEN) {
		int left = (int)(deadline - now_ms());
		ssize_t r = transport_read(w->t, got + n, PROTO_PREAMBLE_LEN - n, left > 0 ? left : 0);
		if (r == 0 || r == -EAGAIN)
			break;
		if (r < 0)
			return (int)r;
		n += (size_t)r;
	}
	w->bytes_recv += n;
	if (n == PROTO_PREAMBLE_LEN && memcmp(got, mine, PROTO_PREAMBLE_LEN - 1) == 0) {
		if (got[PROTO_PREAMBLE_LEN - 1] == PROTO_VERSION)
			return 0;
		buf_printf(err, "protocol version mismatch: this side speaks %d, the peer %d",
			   PROTO_VERSION, got[PROTO_PREAMBLE_LEN - 1]);
		return -EPROTO;
	}
	if (n == 0) {
		buf_printf(err, "the peer closed the connection before the handshake");
		return -EPIPE;
	}
	/* Whatever the peer printed instead (a shell banner, an error) helps the user. */
	ssize_t r = transport_read(w->t, got + n, sizeof(got) - n, 200);
	if (r > 0)
		n += (size_t)r;
	buf_printf(err, "the peer is not a hermes agent (it sent ");
	describe_garbage(err, got, n);
	buf_printf(err, ")");
	return -EPROTO;
}

void wire_begin(struct wire *w, struct enc *e)
{
	enc_frame_begin(e, &w->out);
}

int wire_end(struct wire *w, struct enc *e, uint8_t type, uint32_t id)
{
	int rc = enc_frame_end(e, type, id);
	if (rc)
		return rc;
	if (w->out.len >= WIRE_FLUSH_AT)
		return wire_flush(w);
	return 0;
}

int wire_flush(struct wire *w)
{
	ZSTD_inBuffer in = { w->out.data, w->out.len, 0 };
	size_t ret;
	do {
		int rc = buf_reserve(&w->zout, ZSTD_CStreamOutSize());
		if (rc)
			return rc;
		ZSTD_outBuffer out = { w->zout.data + w->zout.len, w->zout.cap - w->zout.len, 0 };
		ret = ZSTD_compressStream2(w->cctx, &out, &in, ZSTD_e_flush);
		if (ZSTD_isError(ret))
			return -EIO;
		w->zout.len += out.pos;
		if (w->zout.len >= WIRE_FLUSH_AT || ret == 0) {
			rc = transport_write(w->t, w->zout.data, w->zout.len);
			if (rc)
				return rc;
			w->bytes_sent += w->zout.len;
			buf_reset(&w->zout);
		}
	} while (ret != 0 || in.pos < in.size);
	buf_reset(&w->out);
	return 0;
}

/* Inflate up to WIRE_INFLATE_STEP more bytes into `in`. Returns bytes made. */
static int wire_inflate(struct wire *w, size_t *made)
{
	*made = 0;
	if (w->in_off > 0) { /* drop consumed frames before growing */
		buf_consume(&w->in, w->in_off);
		w->in_off = 0;
	}
	int rc = buf_reserve(&w->in, WIRE_INFLATE_STEP);
	if (rc)
		return rc;
	ZSTD_inBuffer in = { w->zin.data, w->zin.len, w->zin_off };
	ZSTD_outBuffer out = { w->in.data + w->in.len, WIRE_INFLATE_STEP, 0 };
	size_t ret = ZSTD_decompressStream(w->dctx, &out, &in);
	if (ZSTD_isError(ret))
		return -EPROTO;
	w->zin_off = in.pos;
	if (w->zin_off == w->zin.len) {
		buf_reset(&w->zin);
		w->zin_off = 0;
	}
	w->in.len += out.pos;
	*made = out.pos;
	/* A full output buffer may leave inflated bytes inside zstd. */
	w->inflate_pending = out.pos == WIRE_INFLATE_STEP;
	return 0;
}

static int wire_fill(struct wire *w, int timeout_ms)
{
	if (w->zin_off > 0) {
		buf_consume(&w->zin, w->zin_off);
		w->zin_off = 0;
	}
	int rc = buf_reserve(&w->zin, WIRE_READ_STEP);
	if (rc)
		return rc;
	ssize_t r = transport_read(w->t, w->zin.data + w->zin.len, WIRE_READ_STEP, timeout_ms);
	if (r < 0)
		return (int)r;
	if (r == 0) {
		w->eof = true;
		return 0;
	}
	w->zin.len += (size_t)r;
	w->bytes_recv += (uint64_t)r;
	return 1;
}

int wire_recv(struct wire *w, struct frame *f, int timeout_ms)
{
	for (;;) {
		long n = proto_frame_parse(w->in.data + w->in_off, w->in.len - w->in_off, f);
		if (n < 0)
			return (int)n;
		if (n > 0) {
			w->in_off += (size_t)n;
			return 1;
		}
		if (w->zin.len > w->zin_off || w->inflate_pending) {
			size_t made = 0;
			int rc = wire_inflate(w, &made);
			if (rc)
				return rc;
			if (made > 0)
				continue;
		}
		if (w->eof)
			return w->in.len > w->in_off ? -EPROTO : 0;
		int rc = wire_fill(w, timeout_ms);
		if (rc < 0)
			return rc;
	}
}
