/* seqio: sequential write or read of one file, timed, for bench/mount-bench.sh.
 *
 *   seqio write FILE MIB   write MIB MiB in 1 MiB writes, fsync, close
 *   seqio read FILE        read the whole file in 1 MiB reads
 *
 * Prints the elapsed seconds (open to close, fsync included) on stdout.
 * Written data is pseudo-random (xorshift) and differs per block, so neither
 * compression nor deduplication below makes it cheaper than real data.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1u << 20)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, const char *path)
{
	fprintf(stderr, "seqio: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

static void fill(uint64_t *buf, size_t words)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < words; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = x;
	}
}

static int do_write(const char *path, long mib)
{
	uint64_t *buf = malloc(BLOCK);
	if (!buf)
		return die("allocating for", path);
	fill(buf, BLOCK / sizeof(*buf));
	double t0 = now();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return die("cannot create", path);
	for (long i = 0; i < mib; i++) {
		buf[0] = (uint64_t)i; /* every block differs */
		for (size_t off = 0; off < BLOCK;) {
			ssize_t n = write(fd, (char *)buf + off, BLOCK - off);
			if (n < 0)
				return die("cannot write", path);
			off += (size_t)n;
		}
	}
	if (fsync(fd) || close(fd))
		return die("cannot fsync/close", path);
	printf("%.3f\n", now() - t0);
	free(buf);
	return 0;
}

static int do_read(const char *path)
{
	char *buf = malloc(BLOCK);
	if (!buf)
		return die("allocating for", path);
	double t0 = now();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return die("cannot open", path);
	ssize_t n;
	while ((n = read(fd, buf, BLOCK)) > 0)
		;
	if (n < 0)
		return die("cannot read", path);
	close(fd);
	printf("%.3f\n", now() - t0);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "write"))
		return do_write(argv[2], strtol(argv[3], NULL, 10));
	if (argc == 3 && !strcmp(argv[1], "read"))
		return do_read(argv[2]);
	fprintf(stderr, "usage: seqio write FILE MIB | seqio read FILE\n");
	return 2;
}
