/* proto: the Hermes wire format, in one place.
 *
 * A session starts with an 8-byte preamble each way, sent raw: "HERMES\0"
 * and the protocol version. Everything after it is a zstd stream per
 * direction (see wire.h) carrying frames:
 *
 *     u32 length (big-endian, of what follows: type + id + payload)
 *     u8  type   (enum msg_type)
 *     u32 id     (request id; 0 when unused)
 *     payload    (length - 5 bytes)
 *
 * A frame longer than PROTO_MAX_FRAME or shorter than 5 is a protocol
 * error. Payload fields are varints (LEB128), zigzag varints for signed
 * values, fixed byte strings, and length-prefixed blobs. Decoders never
 * read past the end: a short or malformed payload sets dec.err, and every
 * path is checked with path_check() as it is decoded.
 */
#ifndef HERMES_PROTO_H
#define HERMES_PROTO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PROTO_VERSION 1
#define PROTO_PREAMBLE "HERMES"
#define PROTO_PREAMBLE_LEN 8
#define PROTO_HDR_LEN 9
#define PROTO_MAX_FRAME (16u << 20)

enum msg_type {
	MSG_HELLO = 1,   /* both: varint flags, str software version */
	MSG_OPEN,        /* C->A: u8 flags, fixed16 root id, varint generation */
	MSG_OPENED,      /* A->C: fixed16 root id, varint generation, u8 mode; ENTRY* END follow */
	MSG_ENTRY,       /* A->C: an entry (see manifest.h) */
	MSG_END,         /* A->C: end of a list */
	MSG_SIGREQ,      /* C->A (id): path */
	MSG_SIG,         /* A->C (id): varint size, block_len, strong_len, count; weak[] u32le; strong[] */
	MSG_MKDIR,       /* C->A: path, varint mode */
	MSG_SYMLINK,     /* C->A: path, str target, svarint mtime */
	MSG_FILE,        /* C->A: path, mode, size, mtime, u8 kind, then DELTA: block_len;
			    INLINE: fixed16 hash and the content */
	MSG_DATA,        /* C->A: literal bytes of the current file */
	MSG_COPY,        /* C->A: varint first block, varint count (delta files) */
	MSG_FEND,        /* C->A: fixed16 hash of the whole file: end of it */
	MSG_SETATTR,     /* C->A: path, varint mode, svarint mtime (also marks it tracked) */
	MSG_DELETE,      /* C->A: path */
	MSG_RENAME,      /* C->A: path from, path to */
	MSG_UNTRACK,     /* C->A: path (stop tracking, leave the file) */
	MSG_COMMIT,      /* C->A: end of a batch of changes */
	MSG_COMMITTED,   /* A->C: varint generation, varint errors */
	MSG_ERROR,       /* A->C: varint errno, u8 flags, path-or-empty, str message */
	/* Jobs (agent started with --jobs; one job at a time per connection;
	 * id = the client's request id of the JOB_RUN). */
	MSG_JOB_RUN,     /* C->A (id): str command */
	MSG_JOB_STARTED, /* A->C (id): varint job number, str image, str gpus ("" = none) */
	MSG_JOB_OUTPUT,  /* A->C (id): u8 stream (1 stdout, 2 stderr), blob data */
	MSG_JOB_END,     /* A->C (id): u8 state (enum job_state), svarint exit code,
			    varint duration ms, u8 output truncated, str message */
	MSG_JOB_CANCEL,  /* C->A (id) */
	/* A JOB_RUN that cannot start is answered by MSG_ERROR (id) instead. */
	MSG_TYPE_MAX
};

/* MSG_OPEN flags */
#define OPEN_INCLUDE_VCS 0x1
/* MSG_OPENED modes */
#define OPENED_FULL 0        /* entries: every file under the root */
#define OPENED_INCREMENTAL 1 /* entries: tracked entries that drifted since the generation */
/* MSG_FILE kinds */
#define FILE_WHOLE 0  /* DATA* FEND follow */
#define FILE_DELTA 1  /* varint block_len; (DATA|COPY)* FEND follow */
#define FILE_INLINE 2 /* the rest of the payload is the whole content; nothing follows */
/* MSG_ERROR flags */
#define ERROR_FATAL 0x1 /* the agent stopped applying changes */
#define ERROR_RETRY 0x2 /* delta did not verify: send the file whole */

const char *msg_name(uint8_t type);

struct frame {
	uint8_t type;
	uint32_t id;
	const uint8_t *payload;
	uint32_t len;
};

/* Parse one frame at p[0..n). Returns its total length (header included)
 * and fills f, 0 if more bytes are needed, -EPROTO if malformed. */
long proto_frame_parse(const uint8_t *p, size_t n, struct frame *f);

/* Encoder appending to a buf; the first failure sticks in err. */
struct enc {
	struct buf *b;
	int err;
	size_t frame_start;
};
/* Start a frame at the end of b; enc_frame_end fills in its header. */
void enc_frame_begin(struct enc *e, struct buf *b);
int enc_frame_end(struct enc *e, uint8_t type, uint32_t id);
void enc_u8(struct enc *e, uint8_t v);
void enc_uvar(struct enc *e, uint64_t v);
void enc_svar(struct enc *e, int64_t v);
void enc_fixed(struct enc *e, const void *p, size_t n);
void enc_blob(struct enc *e, const void *p, size_t n);
void enc_str(struct enc *e, const char *s);

struct dec {
	const uint8_t *p;
	const uint8_t *end;
	int err; /* 0 or -EPROTO */
};
static inline void dec_init(struct dec *d, const struct frame *f)
{
	d->p = f->payload;
	d->end = f->payload + f->len;
	d->err = 0;
}
uint8_t dec_u8(struct dec *d);
uint64_t dec_uvar(struct dec *d);
int64_t dec_svar(struct dec *d);
void dec_fixed(struct dec *d, void *out, size_t n);
/* A blob: returns a pointer into the payload and its length. */
const uint8_t *dec_blob(struct dec *d, size_t *len);
/* A NUL-free string copied into out (cap bytes, NUL-terminated). */
void dec_str(struct dec *d, char *out, size_t cap);
/* A path, validated with path_check, into out[PATH_MAX]. */
void dec_path(struct dec *d, char *out);
/* Remaining bytes of the payload (consumes them). */
const uint8_t *dec_rest(struct dec *d, size_t *len);

#endif
