/* delta_bench: time signature and delta generation on a 100 MiB file.
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Isrc/sync src/sync/delta.c \
 *       bench/delta_bench.c -lxxhash -o /tmp/delta_bench && /tmp/delta_bench
 *
 * Data lives in memfds, so this measures CPU cost, not the disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "delta.h"

struct stats {
	uint64_t ops, copies, literals, lit_bytes;
};

static int count_op(void *ctx, const struct delta_op *op)
{
	struct stats *st = ctx;

	st->ops++;
	if (op->kind == DELTA_COPY) {
		st->copies++;
	} else {
		st->literals++;
		st->lit_bytes += op->len;
	}
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int mem_file(const uint8_t *p, size_t n)
{
	int fd = memfd_create("bench", 0);

	if (fd < 0 || write(fd, p, n) != (ssize_t)n) {
		perror("memfd");
		exit(1);
	}
	return fd;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
}

static void run_delta(const char *name, const struct delta_sig *sig,
		      const uint8_t *p, size_t n)
{
	struct stats st = { 0 };
	int fd = mem_file(p, n);
	double best = 1e9;

	for (int rep = 0; rep < 3; rep++) {
		double t0 = now();
		int err;

		memset(&st, 0, sizeof(st));
		err = delta_from_fd(sig, fd, n, count_op, &st);
		if (err) {
			fprintf(stderr, "delta: %s\n", strerror(-err));
			exit(1);
		}
		if (now() - t0 < best)
			best = now() - t0;
	}
	printf("delta %-22s %7.3f s  ops %llu (copy %llu, literal %llu), "
	       "literal bytes %llu\n", name, best,
	       (unsigned long long)st.ops, (unsigned long long)st.copies,
	       (unsigned long long)st.literals,
	       (unsigned long long)st.lit_bytes);
	close(fd);
}

int main(void)
{
	const size_t size = 100u << 20;
	uint8_t *old = malloc(size), *neu = malloc(size + 1);
	struct delta_sig sig;
	double t0, best = 1e9;
	int fd;

	if (!old || !neu)
		return 1;
	fill(old, size, 0x9e3779b97f4a7c15ull);
	fd = mem_file(old, size);
	for (int rep = 0; rep < 3; rep++) {
		t0 = now();
		if (delta_sig_from_fd(fd, size, 0, 0, &sig)) {
			fprintf(stderr, "sig failed\n");
			return 1;
		}
		if (now() - t0 < best)
			best = now() - t0;
		if (rep < 2)
			delta_sig_free(&sig);
	}
	printf("signature 100 MiB          %7.3f s  block_len %u strong_len %u "
	       "count %llu, %llu bytes (weak+strong)\n", best, sig.block_len,
	       sig.strong_len, (unsigned long long)sig.count,
	       (unsigned long long)sig.count * (4 + sig.strong_len));

	memcpy(neu, old, size);
	run_delta("identical", &sig, neu, size);
	neu[size / 2 + 12345] ^= 0x5a;
	run_delta("1 byte changed", &sig, neu, size);
	memcpy(neu + 1, old, size);
	neu[0] = 7;
	run_delta("1 byte inserted at 0", &sig, neu, size + 1);
	fill(neu, size, 42);
	run_delta("all different", &sig, neu, size);

	delta_sig_free(&sig);
	close(fd);
	free(old);
	free(neu);
	return 0;
}
