/* Unit tests for src/sync/delta.c: sizing rules, checksums, and round trips
 * (signature -> delta -> rebuild with delta_copy_blocks) over edited data.
 *
 * All data comes from a fixed-seed xorshift generator so that a failure
 * reproduces exactly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "delta.h"

/* ---- helpers ---------------------------------------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t x = r->s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	r->s = x;
	return x;
}

static void rng_fill(struct rng *r, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rng_next(r) >> 56);
}

static uint8_t *rand_buf(uint64_t seed, size_t n)
{
	struct rng r = { seed };
	uint8_t *p = malloc(n ? n : 1);

	assert_non_null(p);
	rng_fill(&r, p, n);
	return p;
}

/* A recorded op stream; literal bytes are copied out of the callback since
 * op->data is only valid during it. */
struct rec_op {
	enum delta_op_kind kind;
	uint64_t block, nblocks;
	size_t off, len;
};

struct rec {
	struct rec_op *ops;
	size_t nops, cap;
	uint8_t *lit;
	size_t nlit, litcap;
	uint64_t lit_bytes;
	size_t fail_at;	/* return fail_rc on this op (1-based), 0: never */
	int fail_rc;
};

static int rec_emit(void *ctx, const struct delta_op *op)
{
	struct rec *r = ctx;
	struct rec_op *o;

	if (r->fail_at && r->nops + 1 == r->fail_at)
		return r->fail_rc;
	if (r->nops == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 16;
		r->ops = realloc(r->ops, r->cap * sizeof(*r->ops));
		if (!r->ops)
			return -ENOMEM;
	}
	o = &r->ops[r->nops++];
	memset(o, 0, sizeof(*o));
	o->kind = op->kind;
	if (op->kind == DELTA_COPY) {
		o->block = op->block;
		o->nblocks = op->nblocks;
		return 0;
	}
	if (r->nlit + op->len > r->litcap) {
		r->litcap = 2 * (r->nlit + op->len);
		r->lit = realloc(r->lit, r->litcap);
		if (!r->lit)
			return -ENOMEM;
	}
	o->off = r->nlit;
	o->len = op->len;
	if (op->len)
		memcpy(r->lit + r->nlit, op->data, op->len);
	r->nlit += op->len;
	r->lit_bytes += op->len;
	return 0;
}

static void rec_free(struct rec *r)
{
	free(r->ops);
	free(r->lit);
	memset(r, 0, sizeof(*r));
}

/* Feed modes for gen_ops(): the whole buffer at once, fixed-size pieces, or
 * pseudo-random piece sizes. */
#define FEED_WHOLE SIZE_MAX
#define FEED_RANDOM 0

static void gen_ops(const struct delta_sig *sig, const uint8_t *p, size_t n,
		    size_t chunk, struct rec *r)
{
	struct delta_gen *g = delta_gen_new(sig);
	struct rng rng = { 0x1234567 };
	size_t off = 0;

	assert_non_null(g);
	while (off < n) {
		size_t k = chunk;

		if (chunk == FEED_RANDOM)
			k = 1 + rng_next(&rng) % (3 * sig->block_len + 7);
		if (k > n - off)
			k = n - off;
		assert_int_equal(delta_gen_feed(g, p + off, k, rec_emit, r), 0);
		off += k;
	}
	assert_int_equal(delta_gen_finish(g, rec_emit, r), 0);
	assert_int_equal(delta_gen_literal(g), r->lit_bytes);
	assert_int_equal(delta_gen_matched(g) + delta_gen_literal(g), n);
	delta_gen_free(g);
}

/* The stream obeys the header's promises: bounded non-empty literals,
 * in-range copies, and no two adjacent COPY ops left unmerged. */
static void check_stream(const struct rec *r, const struct delta_sig *sig)
{
	for (size_t i = 0; i < r->nops; i++) {
		const struct rec_op *o = &r->ops[i];

		if (o->kind == DELTA_LITERAL) {
			assert_true(o->len >= 1);
			assert_true(o->len <= DELTA_MAX_LITERAL);
			continue;
		}
		assert_int_equal(o->kind, DELTA_COPY);
		assert_true(o->nblocks >= 1);
		assert_true(o->block + o->nblocks <= sig->count);
		if (i > 0 && r->ops[i - 1].kind == DELTA_COPY)
			assert_true(r->ops[i - 1].block + r->ops[i - 1].nblocks
				    != o->block);
	}
}

static void assert_streams_equal(const struct rec *a, const struct rec *b)
{
	assert_int_equal(a->nops, b->nops);
	for (size_t i = 0; i < a->nops; i++) {
		assert_int_equal(a->ops[i].kind, b->ops[i].kind);
		assert_int_equal(a->ops[i].block, b->ops[i].block);
		assert_int_equal(a->ops[i].nblocks, b->ops[i].nblocks);
		assert_int_equal(a->ops[i].len, b->ops[i].len);
	}
	assert_int_equal(a->nlit, b->nlit);
	if (a->nlit)
		assert_memory_equal(a->lit, b->lit, a->nlit);
}

static int mem_fd(const uint8_t *p, size_t n)
{
	int fd = memfd_create("test_delta", 0);
	size_t off = 0;

	assert_true(fd >= 0);
	while (off < n) {
		ssize_t w = write(fd, p + off, n - off);

		assert_true(w > 0);
		off += (size_t)w;
	}
	return fd;
}

/* Rebuild the new file the way the receiver does and compare it with want. */
static void reconstruct(const struct rec *r, const uint8_t *old, size_t oldn,
			uint32_t block_len, const uint8_t *want, size_t wantn)
{
	int basis = mem_fd(old, oldn);
	int out = memfd_create("test_delta_out", 0);
	uint64_t total = 0;
	uint8_t *got;

	assert_true(out >= 0);
	for (size_t i = 0; i < r->nops; i++) {
		const struct rec_op *o = &r->ops[i];

		if (o->kind == DELTA_COPY) {
			int64_t n = delta_copy_blocks(basis, oldn, block_len,
						      o->block, o->nblocks, out, NULL);
			uint64_t end = (o->block + o->nblocks) * block_len;

			if (end > oldn)
				end = oldn;
			assert_int_equal(n, end - o->block * block_len);
			total += (uint64_t)n;
		} else {
			assert_int_equal(write(out, r->lit + o->off, o->len),
					 o->len);
			total += o->len;
		}
	}
	assert_int_equal(total, wantn);
	got = malloc(wantn ? wantn : 1);
	assert_non_null(got);
	if (wantn)
		assert_int_equal(pread(out, got, wantn, 0), wantn);
	assert_int_equal(lseek(out, 0, SEEK_END), wantn);
	if (wantn)
		assert_memory_equal(got, want, wantn);
	free(got);
	close(basis);
	close(out);
}

/* Signature of old, delta of new fed in several ways (all must agree), and
 * a byte-exact rebuild. Returns the literal byte count. */
static uint64_t roundtrip(const uint8_t *old, size_t oldn, const uint8_t *neu,
			  size_t newn, uint32_t block_len, bool slow_feeds,
			  struct rec *out)
{
	static const size_t feeds[] = { FEED_RANDOM, 1, 7, 4093 };
	struct delta_sig sig;
	struct rec whole = { 0 };
	uint64_t lit;

	assert_int_equal(delta_sig_from_mem(old, oldn, block_len, 0, &sig), 0);
	gen_ops(&sig, neu, newn, FEED_WHOLE, &whole);
	check_stream(&whole, &sig);
	reconstruct(&whole, old, oldn, sig.block_len, neu, newn);
	for (size_t i = 0; i < sizeof(feeds) / sizeof(feeds[0]); i++) {
		struct rec r = { 0 };

		if (!slow_feeds && feeds[i] < 4093 && feeds[i] != FEED_RANDOM)
			continue;
		gen_ops(&sig, neu, newn, feeds[i], &r);
		assert_streams_equal(&whole, &r);
		rec_free(&r);
	}
	lit = whole.lit_bytes;
	if (out)
		*out = whole;
	else
		rec_free(&whole);
	delta_sig_free(&sig);
	return lit;
}

/* ---- sizing rules ----------------------------------------------------- */

static uint64_t ref_isqrt(uint64_t x)
{
	uint64_t r = 0;

	/* Binary search: slow but obviously right. */
	for (uint64_t lo = 0, hi = 1ull << 32; lo < hi;) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (mid * mid <= x) {
			r = mid;
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return r;
}

static void test_block_len(void **state)
{
	struct rng rng = { 77 };

	(void)state;
	assert_int_equal(delta_block_len(0), DELTA_MIN_BLOCK);
	assert_int_equal(delta_block_len(1), DELTA_MIN_BLOCK);
	assert_int_equal(delta_block_len(511), DELTA_MIN_BLOCK);
	assert_int_equal(delta_block_len(4096), DELTA_MIN_BLOCK);
	assert_int_equal(delta_block_len(300000), 544);
	assert_int_equal(delta_block_len(1000000), 1000);
	assert_int_equal(delta_block_len(1u << 20), 1024);
	assert_int_equal(delta_block_len(100ull << 20), 10240);
	assert_int_equal(delta_block_len(100000000ull), 10000);
	assert_int_equal(delta_block_len(100ull << 30), DELTA_MAX_BLOCK);
	assert_int_equal(delta_block_len(UINT64_MAX), DELTA_MAX_BLOCK);

	for (int i = 0; i < 2000; i++) {
		uint64_t size = rng_next(&rng);
		uint32_t bl;

		size >>= rng_next(&rng) % 64;
		bl = delta_block_len(size);
		uint64_t root = ref_isqrt(size);

		assert_int_equal(bl % 8, 0);
		assert_true(bl >= DELTA_MIN_BLOCK && bl <= DELTA_MAX_BLOCK);
		if (root >= DELTA_MIN_BLOCK && root < DELTA_MAX_BLOCK)
			assert_true(bl <= root && root < bl + 8);
	}
}

/* rsync 3.x generator.c sum_sizes_sqroot(), transcribed. */
static uint32_t ref_strong_len(uint64_t len, uint32_t blength)
{
	int64_t l;
	int32_t c;
	int b = 10, s2length;

	for (l = (int64_t)len; l >>= 1; b += 2)
		;
	for (c = (int32_t)blength; (c >>= 1) && b; b--)
		;
	s2length = (b + 1 - 32 + 7) / 8;
	if (s2length < 2)
		s2length = 2;
	if (s2length > 8)
		s2length = 8;
	return (uint32_t)s2length;
}

static void test_strong_len(void **state)
{
	struct rng rng = { 99 };

	(void)state;
	assert_int_equal(delta_strong_len(1000, 512), 2);
	assert_int_equal(delta_strong_len(1u << 20, 1024), 2);
	assert_int_equal(delta_strong_len(100ull << 20, 10240), 3);
	assert_int_equal(delta_strong_len(100ull << 30, DELTA_MAX_BLOCK), 5);
	assert_int_equal(delta_strong_len(1ull << 40, DELTA_MAX_BLOCK), 6);
	assert_int_equal(delta_strong_len(1ull << 62, 8), 8);
	assert_int_equal(delta_strong_len(0, DELTA_MIN_BLOCK), 2);

	for (int i = 0; i < 5000; i++) {
		uint64_t size = rng_next(&rng);
		uint32_t bl;

		size >>= 1 + rng_next(&rng) % 63;
		bl = i & 1 ? delta_block_len(size)
			   : 1 + (uint32_t)(rng_next(&rng) % DELTA_MAX_BLOCK);

		assert_int_equal(delta_strong_len(size, bl),
				 ref_strong_len(size, bl));
	}
	/* 100 MiB: 4 + 3 bytes per block, as rsync sends. */
	assert_int_equal(delta_strong_len(100ull << 20,
					  delta_block_len(100ull << 20)), 3);
}

/* ---- checksums -------------------------------------------------------- */

static uint32_t ref_weak(const uint8_t *p, size_t n)
{
	uint32_t s1 = 0, s2 = 0;

	for (size_t i = 0; i < n; i++) {
		s1 = (s1 + p[i]) & 0xffff;
		s2 = (s2 + s1) & 0xffff;
	}
	return s1 | s2 << 16;
}

static void test_weak_known(void **state)
{
	(void)state;
	/* s1 = 97+98+99 = 294, s2 = 97 + 195 + 294 = 586 */
	assert_int_equal(delta_weak((const uint8_t *)"abc", 3),
			 294u | 586u << 16);
	assert_int_equal(delta_weak(NULL, 0), 0);
}

static void test_weak_rolling(void **state)
{
	static const size_t lens[] = { 1, 3, 4, 5, 8, 544, 4096 };
	const size_t n = 20000;
	uint8_t *p = rand_buf(5, n);

	(void)state;
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t w = lens[li];
		uint32_t v = delta_weak(p, w);
		uint32_t s1 = v & 0xffff, s2 = v >> 16;

		assert_int_equal(v, ref_weak(p, w));
		for (size_t i = 1; i + w <= n; i++) {
			/* Roll out p[i-1], roll in p[i+w-1]. */
			s1 = (s1 - p[i - 1] + p[i + w - 1]) & 0xffff;
			s2 = (s2 - (uint32_t)w * p[i - 1] + s1) & 0xffff;
			assert_int_equal(s1 | s2 << 16, delta_weak(p + i, w));
			if (i % 97 == 0)
				assert_int_equal(delta_weak(p + i, w),
						 ref_weak(p + i, w));
		}
	}
	free(p);
}

static void test_sig_format(void **state)
{
	const size_t n = 5000;
	uint8_t *p = rand_buf(6, n);
	struct delta_sig sig;

	(void)state;
	assert_int_equal(delta_sig_from_mem(p, n, 0, 0, &sig), 0);
	assert_int_equal(sig.file_size, n);
	assert_int_equal(sig.block_len, 512);
	assert_int_equal(sig.strong_len, delta_strong_len(n, 512));
	assert_int_equal(sig.count, 10); /* 9 full blocks + 392 bytes */
	for (uint64_t i = 0; i < sig.count; i++) {
		size_t len = i + 1 < sig.count ? 512 : n - 9 * 512;
		uint64_t h = XXH3_64bits(p + i * 512, len);

		assert_int_equal(sig.weak[i], ref_weak(p + i * 512, len));
		for (uint32_t k = 0; k < sig.strong_len; k++)
			assert_int_equal(sig.strong[i * sig.strong_len + k],
					 (uint8_t)(h >> (8 * k)));
	}
	delta_sig_free(&sig);
	assert_null(sig.weak);

	/* Explicit sizes are honoured; nonsense is refused. */
	assert_int_equal(delta_sig_from_mem(p, n, 100, 8, &sig), 0);
	assert_int_equal(sig.count, 50);
	assert_int_equal(sig.strong_len, 8);
	delta_sig_free(&sig);
	assert_int_equal(delta_sig_from_mem(p, n, DELTA_MAX_BLOCK + 8, 0, &sig),
			 -EINVAL);
	assert_int_equal(delta_sig_from_mem(p, n, 0, DELTA_MAX_STRONG + 1, &sig),
			 -EINVAL);
	free(p);
}

static void test_sig_fd_matches_mem(void **state)
{
	static const size_t sizes[] = { 0, 1, 512, 3u << 20, (3u << 20) + 1234 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		uint8_t *p = rand_buf(7 + i, n);
		int fd = mem_fd(p, n);
		struct delta_sig a, b;

		assert_int_equal(delta_sig_from_mem(p, n, 0, 0, &a), 0);
		assert_int_equal(delta_sig_from_fd(fd, n, 0, 0, &b), 0);
		assert_int_equal(a.count, b.count);
		assert_int_equal(a.block_len, b.block_len);
		assert_int_equal(a.strong_len, b.strong_len);
		if (a.count) {
			assert_memory_equal(a.weak, b.weak, a.count * 4);
			assert_memory_equal(a.strong, b.strong,
					    a.count * a.strong_len);
		}
		delta_sig_free(&a);
		delta_sig_free(&b);
		close(fd);
		free(p);
	}
}

/* ---- round trips over edits ------------------------------------------- */

#define OLD_N 300000u	/* 551 blocks of 544 + a 256-byte tail */

struct edit {
	uint8_t *old, *neu;
	size_t oldn, newn;
};

static void edit_free(struct edit *e)
{
	free(e->old);
	free(e->neu);
}

/* new = old[0..at) + ins random bytes + old[at + del..) */
static struct edit splice(size_t oldn, size_t at, size_t del, size_t ins)
{
	struct edit e = { .oldn = oldn };
	struct rng r = { 0xabcdef };

	e.old = rand_buf(11, oldn);
	e.newn = oldn - del + ins;
	e.neu = malloc(e.newn ? e.newn : 1);
	assert_non_null(e.neu);
	memcpy(e.neu, e.old, at);
	rng_fill(&r, e.neu + at, ins);
	memcpy(e.neu + at + ins, e.old + at + del, oldn - at - del);
	return e;
}

static void test_insert_start(void **state)
{
	struct edit e = splice(OLD_N, 0, 0, 17);

	(void)state;
	/* Every block is found again after rolling past 17 new bytes. */
	assert_int_equal(roundtrip(e.old, e.oldn, e.neu, e.newn, 0, true, NULL),
			 17);
	edit_free(&e);
}

static void test_insert_middle(void **state)
{
	struct edit e = splice(OLD_N, OLD_N / 2 + 3, 0, 1000);
	uint64_t lit;

	(void)state;
	/* Insertion splits one block: its two parts are literal too. */
	lit = roundtrip(e.old, e.oldn, e.neu, e.newn, 0, true, NULL);
	assert_true(lit >= 1000 && lit <= 1000 + 544);
	edit_free(&e);
}

static void test_insert_end(void **state)
{
	struct edit e = splice(OLD_N, OLD_N, 0, 33);
	uint64_t lit;

	(void)state;
	/* The old short tail block is no longer at the end: 256 + 33. */
	lit = roundtrip(e.old, e.oldn, e.neu, e.newn, 0, true, NULL);
	assert_int_equal(lit, 256 + 33);
	edit_free(&e);
}

static void test_delete_range(void **state)
{
	struct edit e = splice(OLD_N, 100001, 5000, 0);
	uint64_t lit;

	(void)state;
	/* The bytes before the cut in its block and after it up to the next
	 * block boundary of the old file: 449 + 535. */
	lit = roundtrip(e.old, e.oldn, e.neu, e.newn, 0, true, NULL);
	assert_true(lit <= 2 * 544);
	edit_free(&e);
}

static void test_change_one_byte(void **state)
{
	static const size_t at[] = { 0, 543, 544, 123457, OLD_N - 256,
				     OLD_N - 1 };

	(void)state;
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		struct edit e = splice(OLD_N, 0, 0, 0);
		uint64_t lit;

		e.neu[at[i]] ^= 0x40;
		lit = roundtrip(e.old, e.oldn, e.neu, e.newn, 0, i < 2, NULL);
		assert_true(lit >= 1 && lit <= 544);
		edit_free(&e);
	}
}

static void test_append(void **state)
{
	struct edit e = splice(OLD_N, OLD_N, 0, 70000);
	uint64_t lit;

	(void)state;
	lit = roundtrip(e.old, e.oldn, e.neu, e.newn, 0, true, NULL);
	assert_int_equal(lit, 256 + 70000);
	edit_free(&e);
}

static void test_truncate(void **state)
{
	struct edit e = splice(OLD_N, 0, 0, 0);
	uint64_t lit;

	(void)state;
	e.newn = 200001;
	lit = roundtrip(e.old, e.oldn, e.neu, e.newn, 0, true, NULL);
	assert_true(lit <= 544);
	edit_free(&e);
}

static void test_empty_old(void **state)
{
	uint8_t *neu = rand_buf(12, 600000);
	struct rec r;

	(void)state;
	assert_int_equal(roundtrip(NULL, 0, neu, 600000, 0, true, &r), 600000);
	/* 600000 bytes of literal in DELTA_MAX_LITERAL pieces. */
	assert_int_equal(r.nops, 3);
	assert_int_equal(r.ops[0].len, DELTA_MAX_LITERAL);
	rec_free(&r);
	free(neu);
}

static void test_empty_new(void **state)
{
	uint8_t *old = rand_buf(13, OLD_N);
	struct rec r;

	(void)state;
	assert_int_equal(roundtrip(old, OLD_N, NULL, 0, 0, true, &r), 0);
	assert_int_equal(r.nops, 0);
	rec_free(&r);
	assert_int_equal(roundtrip(NULL, 0, NULL, 0, 0, true, &r), 0);
	assert_int_equal(r.nops, 0);
	rec_free(&r);
	free(old);
}

static void test_identical(void **state)
{
	struct edit e = splice(OLD_N, 0, 0, 0);
	struct rec r;

	(void)state;
	assert_int_equal(roundtrip(e.old, e.oldn, e.neu, e.newn, 0, true, &r),
			 0);
	assert_int_equal(r.nops, 1);
	assert_int_equal(r.ops[0].kind, DELTA_COPY);
	assert_int_equal(r.ops[0].block, 0);
	assert_int_equal(r.ops[0].nblocks, OLD_N / 544 + 1);
	rec_free(&r);
	edit_free(&e);
}

static void test_all_different(void **state)
{
	uint8_t *old = rand_buf(14, 1u << 20);
	uint8_t *neu = rand_buf(15, 1u << 20);
	struct rec r;

	(void)state;
	assert_int_equal(roundtrip(old, 1u << 20, neu, 1u << 20, 0, true, &r),
			 1u << 20);
	assert_int_equal(r.nops, (1u << 20) / DELTA_MAX_LITERAL);
	for (size_t i = 0; i < r.nops; i++)
		assert_int_equal(r.ops[i].kind, DELTA_LITERAL);
	rec_free(&r);
	free(old);
	free(neu);
}

/* Files below one block: the single (short) block matches only at the end. */
static void test_small_files(void **state)
{
	struct edit e = splice(100, 0, 0, 1);
	struct rec r;

	(void)state;
	assert_int_equal(roundtrip(e.old, 100, e.old, 100, 0, true, &r), 0);
	assert_int_equal(r.nops, 1);
	assert_int_equal(r.ops[0].nblocks, 1);
	rec_free(&r);
	assert_int_equal(roundtrip(e.old, 100, e.neu, 101, 0, true, &r), 1);
	assert_int_equal(r.nops, 2);
	assert_int_equal(r.ops[1].kind, DELTA_COPY);
	rec_free(&r);
	/* A prefix of the only (short) block is not that block. */
	assert_int_equal(roundtrip(e.old, 100, e.old, 50, 0, true, NULL), 50);
	/* Old bytes followed by more: the short block can't match mid-file. */
	assert_int_equal(roundtrip(e.neu + 1, 100, e.neu, 101, 0, true, NULL),
			 0 + 1);
	assert_int_equal(roundtrip(e.old, 100, e.neu + 1, 100, 0, true, NULL), 0);
	edit_free(&e);
}

/* Odd explicit block lengths, including ones that aren't multiples of 8,
 * and sizes that aren't multiples of them. */
static void test_odd_block_lens(void **state)
{
	static const uint32_t bls[] = { 1, 5, 100, 4097 };

	(void)state;
	for (size_t i = 0; i < sizeof(bls) / sizeof(bls[0]); i++) {
		struct edit e = splice(50003, 20011, 77, 1234);
		uint64_t lit;

		lit = roundtrip(e.old, e.oldn, e.neu, e.newn, bls[i], true,
				NULL);
		/* The blocks broken on each side of the splice, at most; with
		 * 1-byte blocks any byte value is found in the basis. */
		assert_true(lit <= 1234 + 2 * bls[i]);
		if (bls[i] == 1)
			assert_int_equal(lit, 0);
		else
			assert_true(lit >= 1234);
		edit_free(&e);
	}
}

/* All-equal blocks: only the "next adjacent block first" rule turns them
 * into one COPY instead of one op per block. */
static void test_prefers_adjacent(void **state)
{
	uint8_t *z = calloc(1, 65536 + 100);
	struct rec r;

	(void)state;
	assert_non_null(z);
	assert_int_equal(roundtrip(z, 65536, z, 65536, 512, true, &r), 0);
	assert_int_equal(r.nops, 1);
	assert_int_equal(r.ops[0].block, 0);
	assert_int_equal(r.ops[0].nblocks, 128);
	rec_free(&r);
	/* Longer new file of zeros: still runs, not single blocks. */
	assert_int_equal(roundtrip(z, 65536, z, 65536 + 100, 512, true, &r), 100);
	assert_true(r.nops <= 3);
	rec_free(&r);
	free(z);
}

/* Blocks in reverse order: each must be found through the hash table. */
static void test_moved_blocks(void **state)
{
	const size_t bl = 544, nfull = OLD_N / bl;
	uint8_t *old = rand_buf(16, OLD_N);
	uint8_t *neu = malloc(OLD_N);
	struct rec r;

	(void)state;
	assert_non_null(neu);
	for (size_t i = 0; i < nfull; i++)
		memcpy(neu + i * bl, old + (nfull - 1 - i) * bl, bl);
	memcpy(neu + nfull * bl, old + nfull * bl, OLD_N - nfull * bl);
	assert_int_equal(roundtrip(old, OLD_N, neu, OLD_N, 0, false, &r), 0);
	assert_int_equal(r.nops, nfull + 1);
	rec_free(&r);
	free(old);
	free(neu);
}

static void test_identical_10mb(void **state)
{
	const size_t n = 10u << 20;
	uint8_t *p = rand_buf(17, n);
	struct delta_sig sig;
	struct rec r = { 0 }, r2 = { 0 };
	int fd = mem_fd(p, n);

	(void)state;
	assert_int_equal(delta_sig_from_fd(fd, n, 0, 0, &sig), 0);
	assert_int_equal(delta_from_fd(&sig, fd, n, rec_emit, &r), 0);
	assert_int_equal(r.lit_bytes, 0);
	assert_int_equal(r.nops, 1);
	assert_int_equal(r.ops[0].kind, DELTA_COPY);
	assert_int_equal(r.ops[0].block, 0);
	assert_int_equal(r.ops[0].nblocks, sig.count);
	gen_ops(&sig, p, n, FEED_RANDOM, &r2);
	assert_streams_equal(&r, &r2);
	rec_free(&r);
	rec_free(&r2);
	delta_sig_free(&sig);
	close(fd);
	free(p);
}

static void test_one_byte_change_4mb(void **state)
{
	const size_t n = (4u << 20) + 777;
	static const size_t at[] = { 0, 2u << 20, (4u << 20) + 776 };
	uint8_t *old = rand_buf(18, n);
	uint8_t *neu = malloc(n);
	uint32_t bl = delta_block_len(n);

	(void)state;
	assert_non_null(neu);
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		uint64_t lit;

		memcpy(neu, old, n);
		neu[at[i]] ^= 1;
		lit = roundtrip(old, n, neu, n, 0, false, NULL);
		assert_true(lit >= 1 && lit <= bl);
	}
	free(old);
	free(neu);
}

/* ---- receiver and error paths ----------------------------------------- */

static void test_copy_blocks_range(void **state)
{
	uint8_t *p = rand_buf(19, 1000);
	int basis = mem_fd(p, 1000);
	int out = memfd_create("out", 0);
	uint8_t got[1000];

	(void)state;
	assert_true(out >= 0);
	/* 1000 bytes in blocks of 512: blocks 0 and 1 (488 bytes). */
	assert_int_equal(delta_copy_blocks(basis, 1000, 512, 2, 1, out, NULL), -EINVAL);
	assert_int_equal(delta_copy_blocks(basis, 1000, 512, 0, 3, out, NULL), -EINVAL);
	assert_int_equal(delta_copy_blocks(basis, 1000, 512, 1, UINT64_MAX, out, NULL),
			 -EINVAL);
	assert_int_equal(delta_copy_blocks(basis, 1000, 512, UINT64_MAX, 1, out, NULL),
			 -EINVAL);
	assert_int_equal(delta_copy_blocks(basis, 1000, 0, 0, 1, out, NULL), -EINVAL);
	assert_int_equal(delta_copy_blocks(basis, 0, 512, 0, 1, out, NULL), -EINVAL);
	assert_int_equal(lseek(out, 0, SEEK_END), 0);

	assert_int_equal(delta_copy_blocks(basis, 1000, 512, 1, 1, out, NULL), 488);
	assert_int_equal(delta_copy_blocks(basis, 1000, 512, 0, 2, out, NULL), 1000);
	assert_int_equal(pread(out, got, 488, 0), 488);
	assert_memory_equal(got, p + 512, 488);
	assert_int_equal(pread(out, got, 1000, 488), 1000);
	assert_memory_equal(got, p, 1000);
	/* Basis shorter than the caller believes. */
	assert_int_equal(delta_copy_blocks(basis, 2000, 512, 3, 1, out, NULL), -ESTALE);
	close(basis);
	close(out);
	free(p);
}

static void test_short_file_estale(void **state)
{
	uint8_t *p = rand_buf(20, 5000);
	int fd = mem_fd(p, 5000);
	struct delta_sig sig;
	struct rec r = { 0 };

	(void)state;
	assert_int_equal(delta_sig_from_fd(fd, 8000, 0, 0, &sig), -ESTALE);
	assert_null(sig.weak);
	assert_null(sig.strong);
	assert_int_equal(delta_sig_from_fd(fd, 5000, 0, 0, &sig), 0);
	assert_int_equal(delta_from_fd(&sig, fd, 5001, rec_emit, &r), -ESTALE);
	rec_free(&r);
	delta_sig_free(&sig);
	close(fd);
	free(p);
}

/* An emit failure stops the generator and sticks. */
static void test_emit_error(void **state)
{
	struct edit e = splice(OLD_N, OLD_N / 2, 0, 10);
	struct delta_sig sig;
	struct delta_gen *g;
	struct rec r = { .fail_at = 2, .fail_rc = -EPIPE };
	int rc, fd;

	(void)state;
	assert_int_equal(delta_sig_from_mem(e.old, e.oldn, 0, 0, &sig), 0);
	g = delta_gen_new(&sig);
	assert_non_null(g);
	rc = delta_gen_feed(g, e.neu, e.newn, rec_emit, &r);
	if (rc == 0)
		rc = delta_gen_finish(g, rec_emit, &r);
	assert_int_equal(rc, -EPIPE);
	assert_int_equal(r.nops, 1);
	assert_int_equal(delta_gen_feed(g, e.neu, 10, rec_emit, &r), -EPIPE);
	assert_int_equal(delta_gen_finish(g, rec_emit, &r), -EPIPE);
	delta_gen_free(g);
	rec_free(&r);

	/* Positive values are passed up unchanged too. */
	fd = mem_fd(e.neu, e.newn);
	r.fail_at = 1;
	r.fail_rc = 7;
	assert_int_equal(delta_from_fd(&sig, fd, e.newn, rec_emit, &r), 7);
	assert_int_equal(r.nops, 0);
	rec_free(&r);
	close(fd);

	/* Feeding after finish is a caller bug. */
	g = delta_gen_new(&sig);
	assert_non_null(g);
	assert_int_equal(delta_gen_finish(g, rec_emit, &r), 0);
	assert_int_equal(delta_gen_feed(g, "x", 1, rec_emit, &r), -EINVAL);
	delta_gen_free(g);
	rec_free(&r);
	delta_sig_free(&sig);
	edit_free(&e);
}

static void test_bad_sig(void **state)
{
	uint8_t *p = rand_buf(21, 2000);
	struct delta_sig sig;

	(void)state;
	assert_int_equal(delta_sig_from_mem(p, 2000, 0, 0, &sig), 0);
	sig.count--;
	errno = 0;
	assert_null(delta_gen_new(&sig));
	assert_int_equal(errno, EINVAL);
	sig.count++;
	sig.block_len = 0;
	assert_null(delta_gen_new(&sig));
	sig.block_len = 512;
	sig.strong_len = 9;
	assert_null(delta_gen_new(&sig));
	sig.strong_len = 2;
	delta_sig_free(&sig);

	/* delta_sig_alloc needs strong_len to size the strong array. */
	memset(&sig, 0, sizeof(sig));
	assert_int_equal(delta_sig_alloc(&sig, 4), -EINVAL);
	sig.strong_len = 3;
	assert_int_equal(delta_sig_alloc(&sig, 4), 0);
	assert_int_equal(sig.count, 4);
	assert_non_null(sig.weak);
	assert_non_null(sig.strong);
	delta_sig_free(&sig);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_len),
		cmocka_unit_test(test_strong_len),
		cmocka_unit_test(test_weak_known),
		cmocka_unit_test(test_weak_rolling),
		cmocka_unit_test(test_sig_format),
		cmocka_unit_test(test_sig_fd_matches_mem),
		cmocka_unit_test(test_insert_start),
		cmocka_unit_test(test_insert_middle),
		cmocka_unit_test(test_insert_end),
		cmocka_unit_test(test_delete_range),
		cmocka_unit_test(test_change_one_byte),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_empty_old),
		cmocka_unit_test(test_empty_new),
		cmocka_unit_test(test_identical),
		cmocka_unit_test(test_all_different),
		cmocka_unit_test(test_small_files),
		cmocka_unit_test(test_odd_block_lens),
		cmocka_unit_test(test_prefers_adjacent),
		cmocka_unit_test(test_moved_blocks),
		cmocka_unit_test(test_identical_10mb),
		cmocka_unit_test(test_one_byte_change_4mb),
		cmocka_unit_test(test_copy_blocks_range),
		cmocka_unit_test(test_short_file_estale),
		cmocka_unit_test(test_emit_error),
		cmocka_unit_test(test_bad_sig),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
