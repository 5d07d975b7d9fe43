/* wire: framed, zstd-compressed messages over a transport.
 *
 * Each direction is one zstd stream. Frames are collected in `out` and
 * compressed + written when wire_flush() is called or `out` grows past
 * WIRE_FLUSH_AT, so many small messages share one compressed block (this is
 * how small files are batched). Received bytes are decompressed only as far
 * as needed to complete the next frame, so a peer cannot make us inflate more
 * than one frame (PROTO_MAX_FRAME) ahead.
 *
 * The frame returned by wire_recv() points into the wire's buffer and is
 * valid until the next wire_recv() call.
 */
#ifndef HERMES_WIRE_H
#define HERMES_WIRE_H

#include <stdbool.h>
#include <stdint.h>
#include <zstd.h>

#include "buf.h"
#include "proto.h"

struct transport;

#define WIRE_FLUSH_AT (256u * 1024u)

struct wire {
	struct transport *t; /* not owned */
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	struct buf out;  /* plain frames waiting to be compressed */
	struct buf zout; /* compressed bytes being written */
	struct buf zin;  /* compressed bytes received, not yet inflated */
	size_t zin_off;  /* bytes of zin already fed to the decompressor */
	struct buf in;   /* inflated bytes not yet returned as frames */
	size_t in_off;   /* start of the next frame in `in` */
	bool inflate_pending; /* zstd may hold inflated bytes not yet returned */
	bool eof;
	uint64_t bytes_sent; /* on the transport, both counts include the preamble */
	uint64_t bytes_recv;
};

int wire_init(struct wire *w, struct transport *t, int zstd_level);
void wire_free(struct wire *w);

/* Exchange preambles. On failure returns -EPROTO (or the transport's error)
 * and describes what the peer sent instead into err. */
int wire_handshake(struct wire *w, int timeout_ms, struct buf *err);

/* Start a message in w->out; finish it with wire_end(), which may flush. */
void wire_begin(struct wire *w, struct enc *e);
int wire_end(struct wire *w, struct enc *e, uint8_t type, uint32_t id);
/* Compress and write everything pending. */
int wire_flush(struct wire *w);

/* Receive the next frame. Returns 1 with f filled, 0 at a clean end of
 * stream, -EAGAIN if nothing complete arrived within timeout_ms, -EPROTO on
 * malformed input, or the transport's -errno. */
int wire_recv(struct wire *w, struct frame *f, int timeout_ms);

#endif
