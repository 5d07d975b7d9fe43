#include "proto.h"

#include <errno.h>
#include <string.h>

#include "path.h"

static const char *const msg_names[MSG_TYPE_MAX] = {
	[MSG_HELLO] = "HELLO",     [MSG_OPEN] = "OPEN",
	[MSG_OPENED] = "OPENED",   [MSG_ENTRY] = "ENTRY",
	[MSG_END] = "END",         [MSG_SIGREQ] = "SIGREQ",
	[MSG_SIG] = "SIG",         [MSG_MKDIR] = "MKDIR",
	[MSG_SYMLINK] = "SYMLINK", [MSG_FILE] = "FILE",
	[MSG_DATA] = "DATA",       [MSG_COPY] = "COPY",
	[MSG_FEND] = "FEND",       [MSG_SETATTR] = "SETATTR",
	[MSG_DELETE] = "DELETE",   [MSG_RENAME] = "RENAME",
	[MSG_UNTRACK] = "UNTRACK", [MSG_COMMIT] = "COMMIT",
	[MSG_COMMITTED] = "COMMITTED", [MSG_ERROR] = "ERROR",
	[MSG_JOB_RUN] = "JOB_RUN", [MSG_JOB_STARTED] = "JOB_STARTED",
	[MSG_JOB_OUTPUT] = "JOB_OUTPUT", [MSG_JOB_END] = "JOB_END",
	[MSG_JOB_CANCEL] = "JOB_CANCEL",
};

const char *msg_name(uint8_t type)
{
	if (type < MSG_TYPE_MAX && msg_names[type])
		return msg_names[type];
	return "UNKNOWN";
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

long proto_frame_parse(const uint8_t *p, size_t n, struct frame *f)
{
	if (n < 4)
		return 0;
	uint32_t len = get_be32(p);
	if (len < PROTO_HDR_LEN - 4 || len > PROTO_MAX_FRAME)
		return -EPROTO;
	if (n < 4 + (size_t)len)
		return 0;
	f->type = p[4];
	if (f->type == 0 || f->type >= MSG_TYPE_MAX)
		return -EPROTO;
	f->id = get_be32(p + 5);
	f->payload = p + PROTO_HDR_LEN;
	f->len = len - (PROTO_HDR_LEN - 4);
	return 4 + (long)len;
}

void enc_frame_begin(struct enc *e, struct buf *b)
{
	e->b = b;
	e->err = buf_reserve(b, PROTO_HDR_LEN);
	e->frame_start = b->len;
	if (!e->err)
		b->len += PROTO_HDR_LEN;
}

int enc_frame_end(struct enc *e, uint8_t type, uint32_t id)
{
	if (!e->err && e->b->len - e->frame_start - 4 > PROTO_MAX_FRAME)
		e->err = -EMSGSIZE;
	if (e->err) {
		e->b->len = e->frame_start; /* drop the partial frame */
		return e->err;
	}
	uint8_t *h = e->b->data + e->frame_start;
	put_be32(h, (uint32_t)(e->b->len - e->frame_start - 4));
	h[4] = type;
	put_be32(h + 5, id);
	return 0;
}

void enc_fixed(struct enc *e, const void *p, size_t n)
{
	if (!e->err)
		e->err = buf_append(e->b, p, n);
}

void enc_u8(struct enc *e, uint8_t v) { enc_fixed(e, &v, 1); }

void enc_uvar(struct enc *e, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		uint8_t byte = v & 0x7f;
		v >>= 7;
		tmp[n++] = byte | (v ? 0x80 : 0);
	} while (v);
	enc_fixed(e, tmp, n);
}

void enc_svar(struct enc *e, int64_t v)
{
	enc_uvar(e, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void enc_blob(struct enc *e, const void *p, size_t n)
{
	enc_uvar(e, n);
	enc_fixed(e, p, n);
}

void enc_str(struct enc *e, const char *s) { enc_blob(e, s, strlen(s)); }

static void dec_fail(struct dec *d)
{
	d->err = -EPROTO;
	d->p = d->end;
}

uint8_t dec_u8(struct dec *d)
{
	if (d->p >= d->end) {
		dec_fail(d);
		return 0;
	}
	return *d->p++;
}

uint64_t dec_uvar(struct dec *d)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (d->p >= d->end)
			break;
		uint8_t byte = *d->p++;
		if (shift == 63 && byte > 1)
			break; /* more than 64 bits */
		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80))
			return v;
	}
	dec_fail(d);
	return 0;
}

int64_t dec_svar(struct dec *d)
{
	uint64_t u = dec_uvar(d);
	return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

void dec_fixed(struct dec *d, void *out, size_t n)
{
	if ((size_t)(d->end - d->p) < n) {
		dec_fail(d);
		memset(out, 0, n);
		return;
	}
	memcpy(out, d->p, n);
	d->p += n;
}

const uint8_t *dec_blob(struct dec *d, size_t *len)
{
	uint64_t n = dec_uvar(d);
	if (d->err || n > (uint64_t)(d->end - d->p)) {
		dec_fail(d);
		*len = 0;
		return d->p;
	}
	const uint8_t *p = d->p;
	d->p += n;
	*len = (size_t)n;
	return p;
}

void dec_str(struct dec *d, char *out, size_t cap)
{
	size_t n;
	const uint8_t *p = dec_blob(d, &n);
	if (d->err || n >= cap || memchr(p, '\0', n)) {
		dec_fail(d);
		out[0] = '\0';
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

void dec_path(struct dec *d, char *out)
{
	size_t n;
	const uint8_t *p = dec_blob(d, &n);
	if (d->err || path_check((const char *)p, n)) {
		dec_fail(d);
		out[0] = '\0';
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

const uint8_t *dec_rest(struct dec *d, size_t *len)
{
	const uint8_t *p = d->p;
	*len = (size_t)(d->end - d->p);
	d->p = d->end;
	return p;
}
