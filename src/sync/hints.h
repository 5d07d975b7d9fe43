/* hints: which byte ranges of which files changed, as the mount saw the
 * writes pass (dirty tracking), so a push can send those bytes of a file
 * instead of asking the host for a signature of all of it.
 *
 * A path in the book is either "whole" (anything about it may have changed)
 * or a list of sorted, disjoint, non-touching byte ranges. A path absent from
 * the book has no hint, which also means whole. Ranges that overlap or touch
 * are merged; a path past HINTS_MAX_RANGES ranges degrades to whole. Whole is
 * sticky until the path is dropped: a write after a truncate must not make
 * the truncate look like a partial change.
 *
 * Hints are advice: a push that trusts a wrong one costs a resend (the host
 * verifies every rebuilt file against its whole-file hash), never a wrong
 * file. So an allocation failure just leaves a path without a hint.
 * Not thread-safe: the owner (the mirror) locks around it.
 */
#ifndef HERMES_HINTS_H
#define HERMES_HINTS_H

#include <stddef.h>
#include <stdint.h>

#define HINTS_MAX_RANGES 64

struct hint_range {
	uint64_t off, len;
};

struct hint_node; /* one path's hint (hints.c) */

struct hints {
	struct hint_node **slots; /* nslots hash chains */
	size_t nslots;            /* 0 or a power of two */
	size_t count;             /* paths in the book */
};

#define HINTS_INIT { NULL, 0, 0 }

void hints_init(struct hints *h);
void hints_free(struct hints *h);
/* Bytes [off, off + len) of path changed (len 0: only its attributes).
 * 0 or -ENOMEM (the path then has no hint, i.e. whole). */
int hints_add(struct hints *h, const char *path, uint64_t off, uint64_t len);
/* Anything about path may have changed. 0 or -ENOMEM (as above). */
int hints_whole(struct hints *h, const char *path);
/* The ranges of path, sorted (possibly none: only attributes changed), or
 * NULL when it is whole or absent. Valid until the book changes. */
const struct hint_range *hints_get(const struct hints *h, const char *path, size_t *n);

#endif
