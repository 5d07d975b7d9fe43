/* delta: rsync-style block signatures, delta generation and patching.
 *
 * The receiver (agent) holds an old "basis" file and computes a signature of
 * it: per block, a 32-bit rolling weak checksum and the first strong_len bytes
 * of the block's XXH3-64 (little-endian). The sender (client) slides over its
 * new file, finds blocks of the basis by weak sum (confirmed by the strong sum)
 * and emits a stream of COPY (run of basis blocks) and LITERAL (new bytes) ops.
 * The receiver rebuilds the new file from basis + ops. Truncated strong sums
 * can collide, so the caller verifies the whole rebuilt file against the
 * expected XXH3-128 and falls back to a whole-file transfer on mismatch.
 *
 * Block length grows with the file (about sqrt(size), multiple of 8, between
 * DELTA_MIN_BLOCK and DELTA_MAX_BLOCK); strong_len follows rsync's rule: enough
 * bits that a false match over the whole file is unlikely (2..8 bytes).
 *
 * All state lives in the structs below; nothing is global. Errors are -errno.
 */
#ifndef HERMES_DELTA_H
#define HERMES_DELTA_H

#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#define DELTA_MIN_BLOCK 512u
#define DELTA_MAX_BLOCK (128u * 1024u)
#define DELTA_MAX_STRONG 8u

struct delta_sig {
	uint64_t file_size;  /* size of the basis file */
	uint32_t block_len;  /* every block but the last is this long */
	uint32_t strong_len; /* bytes of strong sum kept per block, 2..8 */
	uint64_t count;      /* number of blocks: ceil(file_size / block_len) */
	uint32_t *weak;      /* [count] weak sums; owned */
	uint8_t *strong;     /* [count * strong_len] truncated XXH3-64 sums; owned */
};

uint32_t delta_block_len(uint64_t file_size);
uint32_t delta_strong_len(uint64_t file_size, uint32_t block_len);

/* Weak (rolling) checksum of a buffer, rsync's s1 | s2 << 16 form. */
uint32_t delta_weak(const uint8_t *p, size_t n);

/* Signature of the first `size` bytes of fd, read sequentially from offset 0
 * with pread. block_len/strong_len of 0 mean "choose from size". */
int delta_sig_from_fd(int fd, uint64_t size, uint32_t block_len,
		      uint32_t strong_len, struct delta_sig *out);
/* Same for a buffer in memory (tests, small files). */
int delta_sig_from_mem(const uint8_t *data, size_t size, uint32_t block_len,
		       uint32_t strong_len, struct delta_sig *out);
/* Allocate weak/strong arrays for `count` blocks (used by the wire decoder). */
int delta_sig_alloc(struct delta_sig *sig, uint64_t count);
void delta_sig_free(struct delta_sig *sig);

enum delta_op_kind { DELTA_COPY = 1, DELTA_LITERAL = 2 };

struct delta_op {
	enum delta_op_kind kind;
	uint64_t block;     /* COPY: first basis block */
	uint64_t nblocks;   /* COPY: number of consecutive basis blocks */
	const uint8_t *data;/* LITERAL: bytes, valid only during the callback */
	size_t len;         /* LITERAL: byte count */
};

/* Called for each op in file order; a non-zero return aborts and is passed up. */
typedef int (*delta_emit_fn)(void *ctx, const struct delta_op *op);

/* Streaming delta generator over the new file. Adjacent COPY runs are merged,
 * and LITERAL ops are at most DELTA_MAX_LITERAL bytes each. The generator keeps
 * a pointer to sig, which must outlive it. */
#define DELTA_MAX_LITERAL (256u * 1024u)
struct delta_gen;
struct delta_gen *delta_gen_new(const struct delta_sig *sig);
int delta_gen_feed(struct delta_gen *g, const void *data, size_t len,
		   delta_emit_fn emit, void *ctx);
int delta_gen_finish(struct delta_gen *g, delta_emit_fn emit, void *ctx);
void delta_gen_free(struct delta_gen *g);
/* Bytes matched (copied) and literal so far. */
uint64_t delta_gen_matched(const struct delta_gen *g);
uint64_t delta_gen_literal(const struct delta_gen *g);

/* Convenience: run the generator over a whole fd of `size` bytes. */
int delta_from_fd(const struct delta_sig *sig, int fd, uint64_t size,
		  delta_emit_fn emit, void *ctx);

/* Receiver side: append basis blocks [block, block + nblocks) to out_fd
 * (the last block of the basis may be short), adding the bytes to `hash`
 * when it is not NULL. Returns bytes written or -errno; -EINVAL if the range
 * lies outside the basis, -ESTALE if the basis is shorter than basis_size. */
int64_t delta_copy_blocks(int basis_fd, uint64_t basis_size, uint32_t block_len,
			  uint64_t block, uint64_t nblocks, int out_fd, XXH3_state_t *hash);

#endif
