/* delta: rsync-style block signatures, streaming delta generation, patching.
 *
 * The weak sum is rsync's rolling checksum: over a window p[0..n),
 *	s1 = sum p[i],  s2 = sum (n - i) * p[i]   (both mod 2^16)
 * so sliding the window one byte (drop a, take c) is
 *	s1' = s1 - a + c,  s2' = s2 - n * a + s1'.
 * We keep s1 and s2 as plain uint32_t and let them wrap: arithmetic mod 2^32
 * is also correct mod 2^16, and masking only when the sum is read keeps the
 * inner loop to a few adds.
 *
 * The generator buffers the new file in a window buffer that holds the
 * pending literal (at most DELTA_MAX_LITERAL bytes) plus one block, so memory
 * is O(count + block_len + DELTA_MAX_LITERAL) whatever the file size. Every
 * decision depends only on bytes already buffered, never on how the caller
 * split its feeds, so any chunking yields the same op stream.
 */
#include "delta.h"
#include "fdio.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <xxhash.h>

/* pread/write granularity: amortises syscalls, still fits in L2 while the
 * freshly read chunk is hashed. */
#define DELTA_IO_CHUNK (1u << 20)

/* The hash table uses 32-bit block indices and a table of 2 * count slots
 * addressed by at most 31 hash bits; this caps count far above any real file
 * (2^30 blocks of 128 KiB is 128 TiB). */
#define DELTA_MAX_COUNT (1ull << 30)

static inline size_t min_size(size_t a, uint64_t b)
{
	return b < a ? (size_t)b : a;
}

static uint64_t block_count(uint64_t size, uint32_t block_len)
{
	return size / block_len + (size % block_len != 0);
}

/* ---- I/O helpers ---------------------------------------------------- */

/* Read exactly n bytes at off. A premature EOF means the file shrank since
 * its size was taken: report -ESTALE so the caller can rescan it. */
static int pread_full(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r;

		if (off > (uint64_t)INT64_MAX - n)
			return -EFBIG;
		r = pread(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ESTALE;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* ---- sizing rules ----------------------------------------------------- */

/* Exact integer square root; avoids libm and float rounding at 2^53+. */
static uint64_t isqrt64(uint64_t x)
{
	uint64_t r = 0, bit = 1ull << 62;

	while (bit > x)
		bit >>= 2;
	while (bit) {
		if (x >= r + bit) {
			x -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
		bit >>= 2;
	}
	return r;
}

/* floor(log2(x)), 0 for x <= 1 (matches rsync's shift loops). */
static int ilog2_64(uint64_t x)
{
	int r = 0;

	while (x >>= 1)
		r++;
	return r;
}

/* sqrt(size) balances signature size (size / block_len entries) against
 * the literal cost of a change (about one block); multiple of 8 like rsync. */
uint32_t delta_block_len(uint64_t file_size)
{
	uint64_t b = isqrt64(file_size) & ~(uint64_t)7;

	if (b < DELTA_MIN_BLOCK)
		b = DELTA_MIN_BLOCK;
	if (b > DELTA_MAX_BLOCK)
		b = DELTA_MAX_BLOCK;
	return (uint32_t)b;
}

/* rsync's sum_sizes_sqroot(): 10 bits of safety, plus enough bits that the
 * (size / block_len) * size candidate pairs are unlikely to collide, minus the
 * 32 bits the weak sum already provides; rounded up to bytes. */
uint32_t delta_strong_len(uint64_t file_size, uint32_t block_len)
{
	int b = 10 + 2 * ilog2_64(file_size);
	int s;

	b -= ilog2_64(block_len);
	if (b < 0)
		b = 0; /* rsync's loop stops decrementing at 0 */
	s = (b + 1 - 32 + 7) / 8;
	if (s < 2)
		s = 2;
	if (s > (int)DELTA_MAX_STRONG)
		s = DELTA_MAX_STRONG;
	return (uint32_t)s;
}

/* ---- checksums -------------------------------------------------------- */

static inline uint32_t weak_pack(uint32_t s1, uint32_t s2)
{
	return (s1 & 0xffff) | (s2 << 16);
}

/* Four bytes per step as in rsync: s2 gains 4*s1 plus the bytes weighted by
 * how many prefix sums they enter, which shortens the s1 -> s2 dependency
 * chain to one add per four bytes. */
static void weak_sums(const uint8_t *p, size_t n, uint32_t *s1p, uint32_t *s2p)
{
	uint32_t s1 = 0, s2 = 0;
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		s2 += 4 * (s1 + p[i]) + 3 * p[i + 1] + 2 * p[i + 2] + p[i + 3];
		s1 += (uint32_t)p[i] + p[i + 1] + p[i + 2] + p[i + 3];
	}
	for (; i < n; i++) {
		s1 += p[i];
		s2 += s1;
	}
	*s1p = s1;
	*s2p = s2;
}

uint32_t delta_weak(const uint8_t *p, size_t n)
{
	uint32_t s1, s2;

	weak_sums(p, n, &s1, &s2);
	return weak_pack(s1, s2);
}

/* First DELTA_MAX_STRONG bytes of XXH3-64, little-endian whatever the host,
 * so signatures mean the same on both ends of the wire. */
static void strong_sum(const uint8_t *p, size_t n, uint8_t out[DELTA_MAX_STRONG])
{
	uint64_t h = XXH3_64bits(p, n);

	for (unsigned i = 0; i < DELTA_MAX_STRONG; i++)
		out[i] = (uint8_t)(h >> (8 * i));
}

/* ---- signatures ------------------------------------------------------- */

int delta_sig_alloc(struct delta_sig *sig, uint64_t count)
{
	/* strong_len decides the strong array's size, so it must be set. */
	if (sig->strong_len < 1 || sig->strong_len > DELTA_MAX_STRONG)
		return -EINVAL;
	if (count > SIZE_MAX / DELTA_MAX_STRONG / sizeof(uint32_t))
		return -ENOMEM;
	sig->weak = NULL;
	sig->strong = NULL;
	sig->count = count;
	if (!count)
		return 0;
	sig->weak = malloc((size_t)count * sizeof(*sig->weak));
	sig->strong = malloc((size_t)count * sig->strong_len);
	if (!sig->weak || !sig->strong) {
		free(sig->weak);
		free(sig->strong);
		sig->weak = NULL;
		sig->strong = NULL;
		sig->count = 0;
		return -ENOMEM;
	}
	return 0;
}

void delta_sig_free(struct delta_sig *sig)
{
	free(sig->weak);
	free(sig->strong);
	memset(sig, 0, sizeof(*sig));
}

/* Fill in the sizes (choosing defaults for 0) and allocate the arrays. */
static int sig_init(struct delta_sig *sig, uint64_t size, uint32_t block_len,
		    uint32_t strong_len)
{
	memset(sig, 0, sizeof(*sig));
	if (!block_len)
		block_len = delta_block_len(size);
	if (!strong_len)
		strong_len = delta_strong_len(size, block_len);
	if (block_len > DELTA_MAX_BLOCK || strong_len > DELTA_MAX_STRONG)
		return -EINVAL;
	sig->file_size = size;
	sig->block_len = block_len;
	sig->strong_len = strong_len;
	return delta_sig_alloc(sig, block_count(size, block_len));
}

/* Sum the blocks in p[0..n), the first being block `first`. n is a whole
 * number of blocks, except that the file's last block may be short. */
static void sig_blocks(struct delta_sig *sig, uint64_t first,
		       const uint8_t *p, size_t n)
{
	uint8_t strong[DELTA_MAX_STRONG];
	uint64_t i = first;

	while (n) {
		size_t len = min_size(n, sig->block_len);

		sig->weak[i] = delta_weak(p, len);
		strong_sum(p, len, strong);
		memcpy(sig->strong + i * sig->strong_len, strong, sig->strong_len);
		p += len;
		n -= len;
		i++;
	}
}

int delta_sig_from_mem(const uint8_t *data, size_t size, uint32_t block_len,
		       uint32_t strong_len, struct delta_sig *out)
{
	int err = sig_init(out, size, block_len, strong_len);

	if (err)
		return err;
	sig_blocks(out, 0, data, size);
	return 0;
}

int delta_sig_from_fd(int fd, uint64_t size, uint32_t block_len,
		      uint32_t strong_len, struct delta_sig *out)
{
	uint64_t off = 0;
	size_t chunk;
	uint8_t *buf;
	int err;

	err = sig_init(out, size, block_len, strong_len);
	if (err)
		return err;
	/* Whole blocks per read, so no block straddles two reads. */
	chunk = DELTA_IO_CHUNK - DELTA_IO_CHUNK % out->block_len;
	buf = malloc(min_size(chunk, size ? size : 1));
	if (!buf) {
		delta_sig_free(out);
		return -ENOMEM;
	}
	while (off < size) {
		size_t n = min_size(chunk, size - off);

		err = pread_full(fd, buf, n, off);
		if (err)
			break;
		sig_blocks(out, off / out->block_len, buf, n);
		off += n;
	}
	free(buf);
	if (err)
		delta_sig_free(out);
	return err;
}

/* ---- generator -------------------------------------------------------- */

struct delta_gen {
	const struct delta_sig *sig;
	size_t bl;		/* sig->block_len */
	uint64_t nfull;		/* blocks of exactly bl bytes */
	size_t tail_len;	/* short last block (index nfull), 0 if none */

	/* Weak-sum hash over the full blocks: head[slot] and next[i] hold
	 * 1 + block index, 0 ends a chain. Index arrays, not nodes: a few
	 * allocations and about 14 bytes per block in all. */
	uint32_t *head;
	uint32_t *next;
	unsigned hash_shift;
	/* Bit filter over the same hash with more bits (16 per block): a set
	 * bit implies a non-empty slot, and at ~6% density random windows are
	 * rejected without touching head[] or mispredicting often. */
	uint64_t *filter;
	unsigned filter_shift;

	/* Window buffer: buf[lit..pos) is the pending literal, buf[pos..end)
	 * the unscanned bytes; the window is buf[pos..pos + bl). */
	uint8_t *buf;
	size_t cap, lit, pos, end;

	/* Weak sum of the window at pos. roll_pending: the window has
	 * advanced past out_byte but the byte entering it had not yet arrived
	 * (the sum still describes the window at pos - 1). */
	uint32_t s1, s2;
	bool weak_valid, roll_pending;
	uint8_t out_byte;

	uint64_t want;		/* block after the last match: tried first */
	uint64_t copy_block;	/* pending COPY run, held back to merge */
	uint64_t copy_n;

	uint64_t matched, literal;
	uint64_t false_alarms;	/* weak hit, strong miss (tuning aid) */
	int err;		/* sticky: first emit/feed failure */
	bool finished;
};

/* Fibonacci hashing: s1's low bits are a plain byte sum and cluster; the
 * multiply spreads every input bit into the top bits that slots use. */
static inline uint32_t weak_mix(uint32_t weak)
{
	return weak * 0x9E3779B1u;
}

static inline size_t hash_slot(const struct delta_gen *g, uint32_t weak)
{
	return weak_mix(weak) >> g->hash_shift;
}

static inline uint32_t filter_bit(const struct delta_gen *g, uint32_t weak)
{
	return weak_mix(weak) >> g->filter_shift;
}

static inline bool filter_hit(const struct delta_gen *g, uint32_t weak)
{
	uint32_t h = filter_bit(g, weak);

	return g->filter[h >> 6] >> (h & 63) & 1;
}

static int gen_check_sig(const struct delta_sig *sig)
{
	if (!sig || !sig->block_len || sig->block_len > DELTA_MAX_BLOCK)
		return -EINVAL;
	if (sig->strong_len < 1 || sig->strong_len > DELTA_MAX_STRONG)
		return -EINVAL;
	if (sig->count != block_count(sig->file_size, sig->block_len))
		return -EINVAL;
	if (sig->count && (!sig->weak || !sig->strong))
		return -EINVAL;
	if (sig->count > DELTA_MAX_COUNT)
		return -EFBIG;
	return 0;
}

/* Chains are built back to front so each lists blocks in ascending order:
 * among equal blocks the earliest wins, which keeps output deterministic. */
static int gen_build_hash(struct delta_gen *g)
{
	const struct delta_sig *sig = g->sig;
	unsigned bits = 1, fbits;
	size_t slots;

	while (((uint64_t)1 << bits) < 2 * g->nfull)
		bits++;
	slots = (size_t)1 << bits;
	g->hash_shift = 32 - bits;
	/* >= 16 filter bits per block; at least one word, at most 2^32. */
	fbits = bits + 3 < 6 ? 6 : bits + 3;
	fbits = fbits > 32 ? 32 : fbits;
	g->filter_shift = 32 - fbits;
	g->head = calloc(slots, sizeof(*g->head));
	g->next = malloc((g->nfull ? g->nfull : 1) * sizeof(*g->next));
	g->filter = calloc(((size_t)1 << fbits) / 64, sizeof(*g->filter));
	if (!g->head || !g->next || !g->filter)
		return -ENOMEM;
	for (uint64_t i = g->nfull; i-- > 0;) {
		size_t s = hash_slot(g, sig->weak[i]);
		uint32_t h = filter_bit(g, sig->weak[i]);

		g->next[i] = g->head[s];
		g->head[s] = (uint32_t)(i + 1);
		g->filter[h >> 6] |= 1ull << (h & 63);
	}
	return 0;
}

/* The header gives no error channel here, so like malloc() we return NULL
 * and leave the reason in errno: EINVAL for an inconsistent signature (it
 * may come off the wire), EFBIG for too many blocks, ENOMEM. */
struct delta_gen *delta_gen_new(const struct delta_sig *sig)
{
	struct delta_gen *g;
	int err = gen_check_sig(sig);

	if (err) {
		errno = -err;
		return NULL;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		errno = ENOMEM;
		return NULL;
	}
	g->sig = sig;
	g->bl = sig->block_len;
	g->nfull = sig->file_size / sig->block_len;
	g->tail_len = (size_t)(sig->file_size % sig->block_len);
	/* Live bytes never exceed DELTA_MAX_LITERAL + bl (see gen_scan), so
	 * twice that guarantees each compaction frees at least as much as it
	 * moves: amortised one extra copy per byte at worst. */
	g->cap = 2 * ((size_t)DELTA_MAX_LITERAL + g->bl);
	g->buf = malloc(g->cap);
	err = g->buf ? gen_build_hash(g) : -ENOMEM;
	if (err) {
		delta_gen_free(g);
		errno = -err;
		return NULL;
	}
	return g;
}

void delta_gen_free(struct delta_gen *g)
{
	if (!g)
		return;
	free(g->head);
	free(g->next);
	free(g->filter);
	free(g->buf);
	free(g);
}

uint64_t delta_gen_matched(const struct delta_gen *g)
{
	return g->matched;
}

uint64_t delta_gen_literal(const struct delta_gen *g)
{
	return g->literal;
}

static int flush_copy(struct delta_gen *g, delta_emit_fn emit, void *ctx)
{
	struct delta_op op = {
		.kind = DELTA_COPY,
		.block = g->copy_block,
		.nblocks = g->copy_n,
	};

	if (!g->copy_n)
		return 0;
	g->copy_n = 0;
	return emit(ctx, &op);
}

/* Emit buf[lit..pos) in pieces of at most DELTA_MAX_LITERAL; any held-back
 * COPY comes first since it precedes these bytes in the file. */
static int flush_literal(struct delta_gen *g, delta_emit_fn emit, void *ctx)
{
	int err;

	if (g->lit == g->pos)
		return 0;
	err = flush_copy(g, emit, ctx);
	while (!err && g->lit < g->pos) {
		struct delta_op op = {
			.kind = DELTA_LITERAL,
			.data = g->buf + g->lit,
			.len = min_size(DELTA_MAX_LITERAL, g->pos - g->lit),
		};

		g->lit += op.len;
		g->literal += op.len;
		err = emit(ctx, &op);
	}
	return err;
}

/* The window at pos (len bytes) is basis block j: extend or start a run. */
static int gen_match(struct delta_gen *g, uint64_t j, size_t len,
		     delta_emit_fn emit, void *ctx)
{
	int err = flush_literal(g, emit, ctx);

	if (err)
		return err;
	if (g->copy_n && g->copy_block + g->copy_n == j) {
		g->copy_n++;
	} else {
		err = flush_copy(g, emit, ctx);
		g->copy_block = j;
		g->copy_n = 1;
	}
	g->matched += len;
	g->want = j + 1;
	/* Jump the whole block and sum the next window afresh: rolling
	 * through bytes we already matched would be wasted work. */
	g->pos += len;
	g->lit = g->pos;
	g->weak_valid = false;
	g->roll_pending = false;
	return err;
}

static bool strong_eq(const struct delta_gen *g, const uint8_t sum[],
		      uint64_t j)
{
	const struct delta_sig *sig = g->sig;

	return !memcmp(sig->strong + j * sig->strong_len, sum, sig->strong_len);
}

/* Which full basis block, if any, is the window p? The block after the last
 * match is tried first so unchanged runs come out as one COPY even when the
 * basis repeats itself. The strong sum is computed at most once, and only
 * after some block's weak sum agrees. Returns the block or -1. */
static int64_t find_match(struct delta_gen *g, const uint8_t *p, uint32_t weak)
{
	const struct delta_sig *sig = g->sig;
	uint8_t sum[DELTA_MAX_STRONG];
	bool have_sum = false;

	if (g->want < g->nfull && sig->weak[g->want] == weak) {
		strong_sum(p, g->bl, sum);
		have_sum = true;
		if (strong_eq(g, sum, g->want))
			return (int64_t)g->want;
	}
	for (uint32_t e = g->head[hash_slot(g, weak)]; e; e = g->next[e - 1]) {
		uint64_t j = e - 1;

		if (sig->weak[j] != weak || j == g->want)
			continue;
		if (!have_sum) {
			strong_sum(p, g->bl, sum);
			have_sum = true;
		}
		if (strong_eq(g, sum, j))
			return (int64_t)j;
	}
	if (have_sum)
		g->false_alarms++;
	return -1;
}

/* The window at pos matched nothing: slide it forward byte by byte while no
 * block can start there (filter bit clear), rolling the weak sum. Stops at a
 * candidate, when the literal reaches DELTA_MAX_LITERAL, or when the byte
 * that would enter the window has not arrived yet. */
static void gen_slide(struct delta_gen *g)
{
	const uint8_t *b = g->buf;
	const size_t bl = g->bl;
	const size_t last = g->end - bl; /* last window start fully present */
	const size_t stop = g->lit + DELTA_MAX_LITERAL;
	uint32_t s1 = g->s1, s2 = g->s2;
	size_t pos = g->pos;

	if (!g->nfull) {
		/* Nothing can match before the end: skip summing. */
		g->pos = stop < last + 1 ? stop : last + 1;
		g->weak_valid = false;
		return;
	}
	for (;;) {
		if (pos == last) {
			g->out_byte = b[pos];
			g->roll_pending = true;
			pos++;
			break;
		}
		s1 = s1 - b[pos] + b[pos + bl];
		s2 = s2 - (uint32_t)bl * b[pos] + s1;
		pos++;
		if (pos == stop || filter_hit(g, weak_pack(s1, s2)))
			break;
	}
	g->s1 = s1;
	g->s2 = s2;
	g->pos = pos;
}

/* Decide every window that is fully buffered. Afterwards
 * end - pos < bl and pos - lit < DELTA_MAX_LITERAL. */
static int gen_scan(struct delta_gen *g, delta_emit_fn emit, void *ctx)
{
	const size_t bl = g->bl;
	int err;

	while (g->end - g->pos >= bl) {
		const uint8_t *win = g->buf + g->pos;
		uint32_t weak;

		if (!g->weak_valid) {
			weak_sums(win, bl, &g->s1, &g->s2);
			g->weak_valid = true;
		} else if (g->roll_pending) {
			g->s1 = g->s1 - g->out_byte + win[bl - 1];
			g->s2 = g->s2 - (uint32_t)bl * g->out_byte + g->s1;
			g->roll_pending = false;
		}
		weak = weak_pack(g->s1, g->s2);
		if (filter_hit(g, weak)) {
			int64_t j = find_match(g, win, weak);

			if (j >= 0) {
				err = gen_match(g, (uint64_t)j, bl, emit, ctx);
				if (err)
					return err;
				continue;
			}
		}
		gen_slide(g);
		if (g->pos - g->lit >= DELTA_MAX_LITERAL) {
			err = flush_literal(g, emit, ctx);
			if (err)
				return err;
		}
	}
	return 0;
}

/* Move the live bytes buf[lit..end) to the front. */
static void gen_compact(struct delta_gen *g)
{
	size_t off = g->lit;

	memmove(g->buf, g->buf + off, g->end - off);
	g->lit -= off;
	g->pos -= off;
	g->end -= off;
}

int delta_gen_feed(struct delta_gen *g, const void *data, size_t len,
		   delta_emit_fn emit, void *ctx)
{
	const uint8_t *p = data;

	if (g->err)
		return g->err;
	if (g->finished)
		return -EINVAL;
	while (len) {
		size_t n;
		int err;

		if (g->end == g->cap)
			gen_compact(g);
		n = min_size(g->cap - g->end, len);
		memcpy(g->buf + g->end, p, n);
		g->end += n;
		p += n;
		len -= n;
		err = gen_scan(g, emit, ctx);
		if (err) {
			g->err = err;
			return err;
		}
	}
	return 0;
}

/* The short last block can only be the very end of the new data, since
 * nothing follows it in the basis: compare the final tail_len bytes once. */
static int gen_tail(struct delta_gen *g, delta_emit_fn emit, void *ctx)
{
	const struct delta_sig *sig = g->sig;
	uint8_t sum[DELTA_MAX_STRONG];
	const uint8_t *p;
	size_t t = g->tail_len;

	if (!t || g->end - g->pos < t)
		return 0;
	p = g->buf + g->end - t;
	if (delta_weak(p, t) != sig->weak[g->nfull])
		return 0;
	strong_sum(p, t, sum);
	if (!strong_eq(g, sum, g->nfull)) {
		g->false_alarms++;
		return 0;
	}
	g->pos = g->end - t; /* bytes before the tail are literal */
	return gen_match(g, g->nfull, t, emit, ctx);
}

int delta_gen_finish(struct delta_gen *g, delta_emit_fn emit, void *ctx)
{
	int err;

	if (g->err)
		return g->err;
	if (g->finished)
		return -EINVAL;
	g->finished = true;
	err = gen_tail(g, emit, ctx);
	if (!err) {
		g->pos = g->end;
		err = flush_literal(g, emit, ctx);
	}
	if (!err)
		err = flush_copy(g, emit, ctx);
	if (err)
		g->err = err;
	return err;
}

int delta_from_fd(const struct delta_sig *sig, int fd, uint64_t size,
		  delta_emit_fn emit, void *ctx)
{
	struct delta_gen *g = delta_gen_new(sig);
	uint64_t off = 0;
	uint8_t *buf;
	int err = 0;

	if (!g)
		return -errno;
	buf = malloc(min_size(DELTA_IO_CHUNK, size ? size : 1));
	if (!buf) {
		delta_gen_free(g);
		return -ENOMEM;
	}
	while (!err && off < size) {
		size_t n = min_size(DELTA_IO_CHUNK, size - off);

		err = pread_full(fd, buf, n, off);
		if (!err)
			err = delta_gen_feed(g, buf, n, emit, ctx);
		off += n;
	}
	if (!err)
		err = delta_gen_finish(g, emit, ctx);
	free(buf);
	delta_gen_free(g);
	return err;
}

/* ---- receiver --------------------------------------------------------- */

int64_t delta_copy_blocks(int basis_fd, uint64_t basis_size, uint32_t block_len,
			  uint64_t block, uint64_t nblocks, int out_fd, XXH3_state_t *hash)
{
	uint64_t count, off, end, total;
	uint8_t *buf;
	int err = 0;

	if (!block_len)
		return -EINVAL;
	count = block_count(basis_size, block_len);
	if (block > count || nblocks > count - block)
		return -EINVAL;
	if (!nblocks)
		return 0;
	/* Only the run's end can be the short last block; computing it this
	 * way also cannot overflow, as (block + nblocks) * block_len could. */
	off = block * block_len;
	end = block + nblocks == count ? basis_size : (block + nblocks) * block_len;
	total = end - off;
	if (total > (uint64_t)INT64_MAX)
		return -EFBIG;
	buf = malloc(min_size(DELTA_IO_CHUNK, total));
	if (!buf)
		return -ENOMEM;
	while (!err && off < end) {
		size_t n = min_size(DELTA_IO_CHUNK, end - off);

		err = pread_full(basis_fd, buf, n, off);
		if (!err && hash)
			XXH3_128bits_update(hash, buf, n);
		if (!err)
			err = write_full(out_fd, buf, n);
		off += n;
	}
	free(buf);
	return err ? err : (int64_t)total;
}
