/* buf: a growable byte buffer.
 *
 * Invariants: data is NULL only while cap == 0; len <= cap; bytes [0, len) are
 * the contents. The buffer owns data; buf_free() releases it and leaves an
 * empty buffer that can be reused. Functions that grow the buffer return 0 or
 * -ENOMEM and leave the contents untouched on failure.
 */
#ifndef HERMES_BUF_H
#define HERMES_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_free(struct buf *b);
/* Make room for at least `extra` more bytes after len. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
static inline void buf_reset(struct buf *b) { b->len = 0; }

#endif
