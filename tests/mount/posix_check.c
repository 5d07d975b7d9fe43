/* posix_check: a POSIX behaviour suite for a directory.
 *
 *   posix_check DIR
 *
 * Runs the operations editors, git, make and compilers rely on inside DIR
 * (which must exist and be empty) and prints one line per observation:
 * return values, errno names, sizes, contents, times. Nothing printed
 * depends on where DIR is (no inode numbers, no absolute paths), so the
 * output for a directory inside a mount and for a plain directory can be
 * compared with diff: a passthrough must behave exactly as the disk below.
 *
 * Each check also asserts what POSIX (Linux) promises; a broken promise
 * prints "FAIL: ..." and makes the exit status 1. Files that would be
 * expensive to mirror (the sparse > 4 GiB file) go under DIR/ignored/,
 * which the caller's ignore rules keep out of the sync.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static int root = -1;   /* DIR, the base of every *at call */
static int failures;

static void out(const char *check, const char *fmt, ...)
{
	va_list ap;

	printf("%s: ", check);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

#define EXPECT(check, cond)                                                   \
	do {                                                                  \
		if (!(cond)) {                                                \
			printf("FAIL: %s: %s (line %d)\n", check, #cond,      \
			       __LINE__);                                     \
			failures++;                                           \
		}                                                             \
	} while (0)

/* The errno name of a failed call, "ok" for success. */
static const char *res(int rc)
{
	if (rc >= 0)
		return "ok";
	switch (errno) {
	case EEXIST: return "EEXIST";
	case ENOENT: return "ENOENT";
	case ENOTEMPTY: return "ENOTEMPTY";
	case EISDIR: return "EISDIR";
	case ENOTDIR: return "ENOTDIR";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case ENODATA: return "ENODATA";
	case EBADF: return "EBADF";
	case ELOOP: return "ELOOP";
	case EXDEV: return "EXDEV";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENXIO: return "ENXIO";
	case ERANGE: return "ERANGE";
	default: return strerror(errno);
	}
}

static int put(const char *path, const char *data)
{
	int fd = openat(root, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, data, strlen(data));
	int rc = (n == (ssize_t)strlen(data)) ? 0 : -1;
	if (close(fd))
		rc = -1;
	return rc;
}

/* The whole content of PATH (at most size-1 bytes) into buf; "<errno>" on failure. */
static const char *get(const char *path, char *buf, size_t size)
{
	int fd = openat(root, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(buf, size, "<%s>", res(-1));
		return buf;
	}
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

static off_t size_of(const char *path)
{
	struct stat st;
	return fstatat(root, path, &st, AT_SYMLINK_NOFOLLOW) ? -1 : st.st_size;
}

/* FNV-1a of a descriptor's bytes from offset 0 (for contents too big to print). */
static uint64_t fd_hash(int fd, off_t len)
{
	uint64_t h = 1469598103934665603ULL;
	char b[65536];
	off_t off = 0;

	while (off < len) {
		ssize_t n = pread(fd, b, sizeof(b), off);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ (unsigned char)b[i]) * 1099511628211ULL;
		off += n;
	}
	return h;
}

/* --- the checks ------------------------------------------------------------ */

static void check_rename_over(void)
{
	const char *c = "rename-over";
	char b[64];

	EXPECT(c, put("save.txt", "old\n") == 0);
	int keep = openat(root, "save.txt", O_RDONLY | O_CLOEXEC);
	EXPECT(c, put(".save.txt.swp", "new content\n") == 0);
	int fd = openat(root, ".save.txt.swp", O_RDONLY | O_CLOEXEC);
	EXPECT(c, fd >= 0 && fsync(fd) == 0);
	close(fd);
	int rc = renameat(root, ".save.txt.swp", root, "save.txt");
	out(c, "rename %s, now \"%s\"", res(rc), get("save.txt", b, sizeof(b)));
	EXPECT(c, !strcmp(b, "new content\n"));
	ssize_t n = pread(keep, b, sizeof(b) - 1, 0);
	b[n < 0 ? 0 : n] = '\0';
	out(c, "descriptor opened before still reads \"%s\"", b);
	EXPECT(c, !strcmp(b, "old\n"));
	close(keep);
	out(c, "swap file gone: %s", res(faccessat(root, ".save.txt.swp", F_OK, 0)));
	/* RENAME_NOREPLACE and RENAME_EXCHANGE */
	EXPECT(c, put("other.txt", "other\n") == 0);
	rc = renameat2(root, "other.txt", root, "save.txt", RENAME_NOREPLACE);
	out(c, "noreplace onto an existing name: %s", res(rc));
	rc = renameat2(root, "other.txt", root, "save.txt", RENAME_EXCHANGE);
	out(c, "exchange %s: save.txt=\"%s\"", res(rc), get("save.txt", b, sizeof(b)));
	EXPECT(c, !strcmp(b, "other\n"));
	out(c, "other.txt=\"%s\"", get("other.txt", b, sizeof(b)));
}

static void check_hard_links(void)
{
	const char *c = "hard-links";
	struct stat a, l;
	char b[64];

	EXPECT(c, put("h1", "one\n") == 0);
	int rc = linkat(root, "h1", root, "h2", 0);
	fstatat(root, "h1", &a, 0);
	fstatat(root, "h2", &l, 0);
	out(c, "link %s, nlink %ju/%ju, same inode %d", res(rc), (uintmax_t)a.st_nlink,
	    (uintmax_t)l.st_nlink, a.st_ino == l.st_ino);
	EXPECT(c, a.st_nlink == 2 && a.st_ino == l.st_ino);
	int fd = openat(root, "h2", O_WRONLY | O_APPEND | O_CLOEXEC);
	EXPECT(c, fd >= 0 && write(fd, "two\n", 4) == 4);
	close(fd);
	out(c, "write through h2 seen in h1: \"%s\"", get("h1", b, sizeof(b)));
	EXPECT(c, !strcmp(b, "one\ntwo\n"));
	EXPECT(c, unlinkat(root, "h1", 0) == 0);
	fstatat(root, "h2", &l, 0);
	out(c, "after unlink h1: nlink %ju, h2 \"%s\"", (uintmax_t)l.st_nlink,
	    get("h2", b, sizeof(b)));
	EXPECT(c, l.st_nlink == 1);
	out(c, "link onto existing name: %s", res(linkat(root, "h2", root, "save.txt", 0)));
	EXPECT(c, mkdirat(root, "hdir", 0755) == 0);
	out(c, "link of a directory: %s", res(linkat(root, "hdir", root, "hdir2", 0)));
}

static void check_symlinks(void)
{
	const char *c = "symlinks";
	char b[PATH_MAX];
	struct stat st;

	int rc = symlinkat("target/file", root, "dangling");
	ssize_t n = readlinkat(root, "dangling", b, sizeof(b) - 1);
	b[n < 0 ? 0 : n] = '\0';
	out(c, "symlink %s, readlink \"%s\"", res(rc), b);
	EXPECT(c, !strcmp(b, "target/file"));
	rc = fstatat(root, "dangling", &st, AT_SYMLINK_NOFOLLOW);
	out(c, "lstat %s, is link %d, size %jd", res(rc), S_ISLNK(st.st_mode), (intmax_t)st.st_size);
	out(c, "stat through dangling link: %s", res(fstatat(root, "dangling", &st, 0)));
	EXPECT(c, mkdirat(root, "target", 0755) == 0 && put("target/file", "via link\n") == 0);
	out(c, "read through link: \"%s\"", get("dangling", b, sizeof(b)));
	EXPECT(c, !strcmp(b, "via link\n"));
	EXPECT(c, symlinkat("target", root, "dirlink") == 0);
	out(c, "through a directory link: \"%s\"", get("dirlink/file", b, sizeof(b)));
	out(c, "O_NOFOLLOW on a link: %s",
	    res(openat(root, "dangling", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)));
	out(c, "symlink onto existing name: %s", res(symlinkat("x", root, "dangling")));
	out(c, "readlink of a file: %s", res((int)readlinkat(root, "save.txt", b, sizeof(b))));
	EXPECT(c, symlinkat("loop2", root, "loop1") == 0 && symlinkat("loop1", root, "loop2") == 0);
	out(c, "symlink loop: %s", res(openat(root, "loop1", O_RDONLY | O_CLOEXEC)));
	/* utimensat on the link itself (touch -h) */
	struct timespec ts[2] = { { 1600000000, 5 }, { 1600000001, 123456789 } };
	rc = utimensat(root, "dangling", ts, AT_SYMLINK_NOFOLLOW);
	fstatat(root, "dangling", &st, AT_SYMLINK_NOFOLLOW);
	out(c, "lutimes %s: mtime %jd.%09ld", res(rc), (intmax_t)st.st_mtim.tv_sec,
	    st.st_mtim.tv_nsec);
}

static void check_attrs(void)
{
	const char *c = "attributes";
	struct stat st;

	EXPECT(c, put("attr", "attributes\n") == 0);
	int rc = fchmodat(root, "attr", 0640, 0);
	fstatat(root, "attr", &st, 0);
	out(c, "chmod 0640 %s: mode %04o", res(rc), st.st_mode & 07777);
	EXPECT(c, (st.st_mode & 07777) == 0640);
	rc = fchmodat(root, "attr", 01755, 0);
	fstatat(root, "attr", &st, 0);
	out(c, "chmod 01755 %s: mode %04o", res(rc), st.st_mode & 07777);
	int fd = openat(root, "attr", O_RDONLY | O_CLOEXEC);
	rc = fchmod(fd, 0600);
	fstat(fd, &st);
	out(c, "fchmod 0600 %s: mode %04o", res(rc), st.st_mode & 07777);
	close(fd);
	rc = fchownat(root, "attr", 1234, 5678, 0);
	fstatat(root, "attr", &st, 0);
	out(c, "chown 1234:5678 %s: %ju:%ju", res(rc), (uintmax_t)st.st_uid, (uintmax_t)st.st_gid);
	rc = fchownat(root, "attr", getuid(), getgid(), 0);
	out(c, "chown back %s", res(rc));
	/* nanosecond times */
	struct timespec ts[2] = { { 1500000000, 111111111 }, { 1500000002, 987654321 } };
	rc = utimensat(root, "attr", ts, 0);
	fstatat(root, "attr", &st, 0);
	out(c, "utimens %s: atime %jd.%09ld mtime %jd.%09ld", res(rc),
	    (intmax_t)st.st_atim.tv_sec, st.st_atim.tv_nsec,
	    (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	EXPECT(c, st.st_mtim.tv_sec == 1500000002 && st.st_mtim.tv_nsec == 987654321);
	EXPECT(c, st.st_atim.tv_sec == 1500000000 && st.st_atim.tv_nsec == 111111111);
	struct timespec omit[2] = { { 0, UTIME_OMIT }, { 1500000005, 5 } };
	rc = utimensat(root, "attr", omit, 0);
	fstatat(root, "attr", &st, 0);
	out(c, "utimens omit atime %s: atime %jd.%09ld mtime %jd.%09ld", res(rc),
	    (intmax_t)st.st_atim.tv_sec, st.st_atim.tv_nsec,
	    (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	time_t now = time(NULL);
	struct timespec tnow[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };
	rc = utimensat(root, "attr", tnow, 0);
	fstatat(root, "attr", &st, 0);
	out(c, "utimens now %s: within 5 s %d", res(rc), llabs((long long)(st.st_mtim.tv_sec - now)) <= 5);
	/* a write moves mtime forward */
	EXPECT(c, utimensat(root, "attr", ts, 0) == 0);
	fd = openat(root, "attr", O_WRONLY | O_APPEND | O_CLOEXEC);
	EXPECT(c, fd >= 0 && write(fd, "x", 1) == 1);
	close(fd);
	fstatat(root, "attr", &st, 0);
	out(c, "write updates mtime: %d", st.st_mtim.tv_sec > 1500000002);
	EXPECT(c, st.st_mtim.tv_sec > 1500000002);
	/* directories */
	EXPECT(c, mkdirat(root, "adir", 0700) == 0);
	rc = fchmodat(root, "adir", 0750, 0);
	fstatat(root, "adir", &st, 0);
	out(c, "chmod dir %s: mode %04o", res(rc), st.st_mode & 07777);
	rc = utimensat(root, "adir", ts, 0);
	fstatat(root, "adir", &st, 0);
	out(c, "utimens dir %s: mtime %jd.%09ld", res(rc), (intmax_t)st.st_mtim.tv_sec,
	    st.st_mtim.tv_nsec);
}

static void check_truncate(void)
{
	const char *c = "truncate";
	char b[64];

	EXPECT(c, put("trunc", "0123456789") == 0);
	int rc = truncate("trunc", 4);
	out(c, "truncate to 4 %s: size %jd \"%s\"", res(rc), (intmax_t)size_of("trunc"),
	    get("trunc", b, sizeof(b)));
	EXPECT(c, !strcmp(b, "0123"));
	int fd = openat(root, "trunc", O_RDWR | O_CLOEXEC);
	rc = ftruncate(fd, 100000);
	out(c, "ftruncate to 100000 %s: size %jd hash %016" PRIx64, res(rc),
	    (intmax_t)size_of("trunc"), fd_hash(fd, 100000));
	rc = ftruncate(fd, 2);
	ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
	b[n < 0 ? 0 : n] = '\0';
	out(c, "ftruncate to 2 %s: \"%s\"", res(rc), b);
	EXPECT(c, !strcmp(b, "01"));
	/* write past the end after a shrink: the gap reads as zeros */
	EXPECT(c, pwrite(fd, "Z", 1, 10) == 1);
	n = pread(fd, b, sizeof(b), 0);
	out(c, "write at 10: size %zd, byte 5 is %d", n, n > 5 ? b[5] : -1);
	EXPECT(c, n == 11 && b[5] == 0);
	close(fd);
	fd = openat(root, "trunc", O_WRONLY | O_TRUNC | O_CLOEXEC);
	out(c, "O_TRUNC: size %jd", (intmax_t)size_of("trunc"));
	EXPECT(c, size_of("trunc") == 0);
	close(fd);
	out(c, "truncate a directory: %s", res(truncate("adir", 0)));
	out(c, "truncate missing: %s", res(truncate("nothere", 0)));
}

static void check_fallocate(void)
{
	const char *c = "fallocate";
	struct stat st;

	int fd = openat(root, "falloc", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	int rc = fallocate(fd, 0, 0, 1 << 20);
	fstat(fd, &st);
	out(c, "1 MiB %s: size %jd, allocated >= 1 MiB %d", res(rc), (intmax_t)st.st_size,
	    st.st_blocks * 512 >= (1 << 20));
	EXPECT(c, st.st_size == 1 << 20);
	rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20);
	fstat(fd, &st);
	out(c, "keep size %s: size %jd", res(rc), (intmax_t)st.st_size);
	EXPECT(c, st.st_size == 1 << 20);
	char buf[8192];
	memset(buf, 'a', sizeof(buf));
	EXPECT(c, pwrite(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf));
	rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	out(c, "punch hole %s: read %zd, byte 0 is %d, byte 4096 is '%c'", res(rc), n,
	    buf[0], buf[4096]);
	EXPECT(c, rc || (buf[0] == 0 && buf[4096] == 'a'));
	out(c, "fsync %s, fdatasync %s", res(fsync(fd)), res(fdatasync(fd)));
	close(fd);
	int dfd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	out(c, "fsync of a directory %s", res(fsync(dfd)));
	close(dfd);
}

static void check_mmap(void)
{
	const char *c = "mmap";
	const size_t len = 256 * 1024;

	int fd = openat(root, "mapped", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	EXPECT(c, fd >= 0 && ftruncate(fd, (off_t)len) == 0);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT(c, p != MAP_FAILED);
	if (p == MAP_FAILED) {
		close(fd);
		return;
	}
	for (size_t i = 0; i < len; i++)
		p[i] = (char)('a' + i % 26);
	int rc = msync(p, len, MS_SYNC);
	munmap(p, len);
	close(fd);
	fd = openat(root, "mapped", O_RDONLY | O_CLOEXEC);
	uint64_t h = fd_hash(fd, (off_t)len);
	char b[8] = { 0 };
	ssize_t n = pread(fd, b, 4, 30);
	out(c, "shared write, msync %s, read back: %zd \"%s\" hash %016" PRIx64, res(rc), n, b, h);
	EXPECT(c, !strcmp(b, "efgh"));
	close(fd);
	/* a write() seen by an existing mapping */
	fd = openat(root, "mapped", O_RDWR | O_CLOEXEC);
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	EXPECT(c, p != MAP_FAILED && pwrite(fd, "XYZ", 3, 100) == 3);
	if (p != MAP_FAILED) {
		out(c, "write() seen through the mapping: \"%.3s\"", p + 100);
		EXPECT(c, !memcmp(p + 100, "XYZ", 3));
		munmap(p, len);
	}
	/* a write through a mapping, then munmap+close without msync */
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p != MAP_FAILED) {
		memcpy(p, "MAPPED", 6);
		munmap(p, 4096);
	}
	close(fd);
	char r[8];
	fd = openat(root, "mapped", O_RDONLY | O_CLOEXEC);
	n = pread(fd, r, 6, 0);
	r[n < 0 ? 0 : n] = '\0';
	out(c, "after munmap without msync: \"%s\"", r);
	EXPECT(c, !strcmp(r, "MAPPED"));
	close(fd);
	/* a private mapping never reaches the file */
	fd = openat(root, "mapped", O_RDONLY | O_CLOEXEC);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (p != MAP_FAILED) {
		p[0] = 'Q';
		munmap(p, 4096);
	}
	n = pread(fd, r, 1, 0);
	out(c, "private mapping leaves the file: '%c'", n == 1 ? r[0] : '?');
	close(fd);
}

static void check_append(void)
{
	const char *c = "append";
	char b[64];

	EXPECT(c, put("log", "start\n") == 0);
	int a = openat(root, "log", O_WRONLY | O_APPEND | O_CLOEXEC);
	int d = openat(root, "log", O_WRONLY | O_APPEND | O_CLOEXEC);
	EXPECT(c, a >= 0 && d >= 0);
	EXPECT(c, write(a, "a1\n", 3) == 3 && write(d, "d1\n", 3) == 3);
	lseek(a, 0, SEEK_SET);
	EXPECT(c, write(a, "a2\n", 3) == 3);
	off_t pos = lseek(a, 0, SEEK_CUR);
	out(c, "two appenders: \"%s\" (position after %jd)", get("log", b, sizeof(b)), (intmax_t)pos);
	EXPECT(c, !strcmp(b, "start\na1\nd1\na2\n"));
	/* Linux: pwrite on an O_APPEND descriptor appends, whatever the offset */
	EXPECT(c, pwrite(d, "p\n", 2, 0) == 2);
	out(c, "pwrite with O_APPEND: \"%s\"", get("log", b, sizeof(b)));
	close(a);
	close(d);
	/* O_RDWR|O_APPEND reads anywhere, writes at the end */
	int rw = openat(root, "log", O_RDWR | O_APPEND | O_CLOEXEC);
	ssize_t n = pread(rw, b, 5, 0);
	b[n < 0 ? 0 : n] = '\0';
	EXPECT(c, write(rw, "end\n", 4) == 4);
	close(rw);
	out(c, "read+append: read \"%s\" size %jd", b, (intmax_t)size_of("log"));
}

static void check_unlinked(void)
{
	const char *c = "open-unlinked";
	char b[64];
	struct stat st;

	int fd = openat(root, "tmpfile", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	EXPECT(c, fd >= 0 && write(fd, "abc", 3) == 3);
	int rc = unlinkat(root, "tmpfile", 0);
	EXPECT(c, write(fd, "def", 3) == 3);
	ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
	b[n < 0 ? 0 : n] = '\0';
	fstat(fd, &st);
	out(c, "unlink %s, then read \"%s\", nlink %ju, size %jd", res(rc), b,
	    (uintmax_t)st.st_nlink, (intmax_t)st.st_size);
	EXPECT(c, !strcmp(b, "abcdef") && st.st_nlink == 0);
	out(c, "ftruncate %s, fchmod %s, fsync %s", res(ftruncate(fd, 1)), res(fchmod(fd, 0644)),
	    res(fsync(fd)));
	fstat(fd, &st);
	out(c, "after: size %jd mode %04o; name %s", (intmax_t)st.st_size, st.st_mode & 07777,
	    res(faccessat(root, "tmpfile", F_OK, 0)));
	/* a new file under the same name is another file */
	EXPECT(c, put("tmpfile", "second\n") == 0);
	n = pread(fd, b, sizeof(b) - 1, 0);
	b[n < 0 ? 0 : n] = '\0';
	out(c, "old descriptor still reads \"%s\"; name reads \"%s\"", b,
	    get("tmpfile", b + 16, sizeof(b) - 16));
	close(fd);
	/* O_TMPFILE, then linkat into the tree (as the agent does) */
	/* (own check name: FUSE before libfuse 3.17 has no tmpfile operation,
	 * so a mount answers EOPNOTSUPP, and callers filter this line) */
	c = "o-tmpfile";
	fd = openat(root, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	if (fd < 0) {
		out(c, "O_TMPFILE: %s", res(fd));
		return;
	}
	EXPECT(c, write(fd, "nameless", 8) == 8);
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	rc = linkat(AT_FDCWD, proc, root, "linked-tmpfile", AT_SYMLINK_FOLLOW);
	out(c, "O_TMPFILE linked %s: %s", res(rc), get("linked-tmpfile", b, sizeof(b)));
	close(fd);
}

static void check_xattrs(void)
{
	const char *c = "xattrs";
	char b[256];

	EXPECT(c, put("xa", "x\n") == 0);
	int rc = setxattr("xa", "user.hermes", "v1", 2, 0);
	ssize_t n = getxattr("xa", "user.hermes", b, sizeof(b) - 1);
	b[n < 0 ? 0 : n] = '\0';
	out(c, "set %s, get %zd \"%s\"", res(rc), n, b);
	EXPECT(c, rc || !strcmp(b, "v1"));
	out(c, "size query: %zd", getxattr("xa", "user.hermes", NULL, 0));
	out(c, "too small buffer: %s", res((int)getxattr("xa", "user.hermes", b, 1)));
	out(c, "create existing: %s", res(setxattr("xa", "user.hermes", "v2", 2, XATTR_CREATE)));
	out(c, "replace missing: %s", res(setxattr("xa", "user.none", "v", 1, XATTR_REPLACE)));
	EXPECT(c, setxattr("xa", "user.second", "", 0, 0) == 0 || rc);
	n = listxattr("xa", b, sizeof(b));
	/* list order is the file system's: report the names sorted */
	int has1 = 0, has2 = 0;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(b + i) + 1) {
		has1 |= !strcmp(b + i, "user.hermes");
		has2 |= !strcmp(b + i, "user.second");
	}
	out(c, "list: user.hermes %d user.second %d", has1, has2);
	rc = removexattr("xa", "user.hermes");
	out(c, "remove %s, then get %s", res(rc),
	    res((int)getxattr("xa", "user.hermes", b, sizeof(b))));
	out(c, "remove missing: %s", res(removexattr("xa", "user.hermes")));
	out(c, "get on a directory: %s", res((int)getxattr("adir", "user.none", b, sizeof(b))));
}

static void check_large(void)
{
	const char *c = "large-sparse";
	const off_t far = ((off_t)5 << 30) + 17; /* past 4 GiB */
	struct stat st;

	EXPECT(c, mkdirat(root, "ignored", 0755) == 0);
	int fd = openat(root, "ignored/big", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	EXPECT(c, fd >= 0);
	ssize_t w = pwrite(fd, "END", 3, far);
	EXPECT(c, pwrite(fd, "MID", 3, (off_t)1 << 32) == 3);
	fstat(fd, &st);
	out(c, "write at 5 GiB+17: %zd, size %jd, sparse %d", w, (intmax_t)st.st_size,
	    st.st_blocks * 512 < (1 << 20));
	EXPECT(c, st.st_size == far + 3);
	char b[8] = { 0 };
	ssize_t n = pread(fd, b, 3, far);
	out(c, "read back at 5 GiB+17: \"%.*s\"", (int)(n < 0 ? 0 : n), b);
	n = pread(fd, b, 3, (off_t)1 << 32);
	out(c, "read back at 4 GiB: \"%.*s\"", (int)(n < 0 ? 0 : n), b);
	n = pread(fd, b, 4, (off_t)3 << 30);
	out(c, "hole at 3 GiB: %zd bytes, zero %d", n, n == 4 && !memcmp(b, "\0\0\0\0", 4));
	off_t data = lseek(fd, 0, SEEK_DATA);
	off_t hole = lseek(fd, data, SEEK_HOLE);
	out(c, "SEEK_DATA %jd, SEEK_HOLE %jd", (intmax_t)data, (intmax_t)hole);
	EXPECT(c, data >= ((off_t)1 << 32) - 65536 && data <= (off_t)1 << 32);
	EXPECT(c, ftruncate(fd, ((off_t)4 << 30) + 2) == 0);
	fstat(fd, &st);
	out(c, "shrink to 4 GiB+2: size %jd", (intmax_t)st.st_size);
	close(fd);
}

static void check_deep(void)
{
	const char *c = "deep-tree";
	enum { LEVELS = 200 };
	char path[LEVELS * 2 + 16] = "";
	int ok = 1;

	int dfd = dup(root);
	for (int i = 0; i < LEVELS && ok; i++) {
		int next = -1;
		ok = mkdirat(dfd, "d", 0755) == 0 &&
		     (next = openat(dfd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0;
		close(dfd);
		dfd = next;
		strcat(path, i ? "/d" : "d");
	}
	out(c, "%d levels made %d", LEVELS, ok);
	EXPECT(c, ok);
	int fd = openat(dfd, "leaf", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	EXPECT(c, fd >= 0 && write(fd, "bottom\n", 7) == 7);
	close(fd);
	close(dfd);
	strcat(path, "/leaf");
	char b[64];
	out(c, "open by the %zu-byte path: \"%s\"", strlen(path), get(path, b, sizeof(b)));
	EXPECT(c, !strcmp(b, "bottom\n"));
	/* the whole chain moves with a rename of its top */
	EXPECT(c, renameat(root, "d", root, "deep") == 0);
	memmove(path + 4, path + 1, strlen(path + 1) + 1);
	memcpy(path, "deep", 4);
	out(c, "after renaming the top: \"%s\"", get(path, b, sizeof(b)));
	EXPECT(c, !strcmp(b, "bottom\n"));
	out(c, "rmdir of the non-empty top: %s", res(unlinkat(root, "deep", AT_REMOVEDIR)));
}

static void check_rename_dir_open(void)
{
	const char *c = "rename-open-dir";
	char b[64];

	EXPECT(c, mkdirat(root, "r1", 0755) == 0 && mkdirat(root, "r1/sub", 0755) == 0);
	int fd = openat(root, "r1/sub/f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	int dfd = openat(root, "r1/sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	EXPECT(c, fd >= 0 && dfd >= 0 && write(fd, "before ", 7) == 7);
	int rc = renameat(root, "r1", root, "r2");
	EXPECT(c, write(fd, "after\n", 6) == 6);
	close(fd);
	out(c, "rename %s, file via new name: \"%s\"", res(rc), get("r2/sub/f", b, sizeof(b)));
	EXPECT(c, !strcmp(b, "before after\n"));
	out(c, "old name: %s", res(faccessat(root, "r1", F_OK, 0)));
	/* a directory descriptor keeps working after the move */
	fd = openat(dfd, "g", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	EXPECT(c, fd >= 0 && write(fd, "g\n", 2) == 2);
	close(fd);
	out(c, "created through the moved dir's descriptor: \"%s\"", get("r2/sub/g", b, sizeof(b)));
	close(dfd);
	/* a directory renamed into itself, over a non-empty dir, over a file */
	out(c, "into itself: %s", res(renameat(root, "r2", root, "r2/sub/x")));
	EXPECT(c, mkdirat(root, "full", 0755) == 0 && put("full/f", "f") == 0);
	out(c, "dir over non-empty dir: %s", res(renameat(root, "r2", root, "full")));
	out(c, "dir over file: %s", res(renameat(root, "r2", root, "save.txt")));
	out(c, "file over dir: %s", res(renameat(root, "save.txt", root, "full")));
	EXPECT(c, mkdirat(root, "empty", 0755) == 0);
	out(c, "dir over empty dir: %s", res(renameat(root, "r2", root, "empty")));
	out(c, "missing source: %s", res(renameat(root, "nothere", root, "x")));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_readdir(void)
{
	const char *c = "readdir-changes";
	char name[32];
	enum { N = 300 };

	EXPECT(c, mkdirat(root, "rd", 0755) == 0);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "rd/f%03d", i);
		EXPECT(c, put(name, "") == 0);
	}
	int dfd = openat(root, "rd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fdopendir(dfd);
	char *seen[2 * N + 8];
	int nseen = 0, changed = 0;
	struct dirent *e;
	while ((e = readdir(d)) && nseen < 2 * N) {
		seen[nseen++] = strdup(e->d_name);
		if (nseen == N / 3 && !changed) {
			/* Change the directory in the middle of the listing:
			 * odd files go, new ones come. */
			for (int i = 1; i < N; i += 2) {
				snprintf(name, sizeof(name), "rd/f%03d", i);
				unlinkat(root, name, 0);
				snprintf(name, sizeof(name), "rd/n%03d", i);
				put(name, "");
			}
			changed = 1;
		}
	}
	closedir(d);
	qsort(seen, (size_t)nseen, sizeof(*seen), cmp_str);
	/* POSIX: names present throughout appear exactly once; whether the
	 * removed and added ones appear is unspecified. */
	int dup = 0, stable = 0;
	for (int i = 0; i < nseen; i++) {
		if (i && !strcmp(seen[i], seen[i - 1]))
			dup++;
		int k;
		if (sscanf(seen[i], "f%d", &k) == 1 && k % 2 == 0)
			stable++;
	}
	for (int i = 0; i < nseen; i++)
		free(seen[i]);
	out(c, "duplicates %d, names kept throughout seen %d of %d", dup, stable, N / 2);
	EXPECT(c, dup == 0 && stable == N / 2);
	/* after the change a fresh listing is exact */
	d = opendir("rd");
	int files = 0;
	while ((e = readdir(d)))
		files += e->d_name[0] != '.';
	closedir(d);
	out(c, "fresh listing: %d entries", files);
	EXPECT(c, files == N);
	/* seekdir/telldir back to the start */
	d = opendir("rd");
	long start = telldir(d);
	int first = 0, again = 0;
	while ((e = readdir(d)))
		first++;
	seekdir(d, start);
	while ((e = readdir(d)))
		again++;
	closedir(d);
	out(c, "rewind lists the same count: %d", first == again);
}

static void check_errnos(void)
{
	const char *c = "errnos";

	EXPECT(c, put("plain", "p\n") == 0);
	out(c, "O_EXCL on existing: %s",
	    res(openat(root, "plain", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)));
	out(c, "O_EXCL on a dangling symlink: %s",
	    res(openat(root, "loop1", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)));
	int fd = openat(root, "excl-new", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	out(c, "O_EXCL on a new name: %s", res(fd));
	close(fd);
	out(c, "mkdir existing: %s", res(mkdirat(root, "adir", 0755)));
	out(c, "mkdir over a file: %s", res(mkdirat(root, "plain", 0755)));
	out(c, "rmdir non-empty: %s", res(unlinkat(root, "full", AT_REMOVEDIR)));
	out(c, "rmdir a file: %s", res(unlinkat(root, "plain", AT_REMOVEDIR)));
	out(c, "unlink a dir: %s", res(unlinkat(root, "adir", 0)));
	out(c, "open a dir for writing: %s", res(openat(root, "adir", O_WRONLY | O_CLOEXEC)));
	out(c, "open missing: %s", res(openat(root, "missing", O_RDONLY | O_CLOEXEC)));
	out(c, "open below a file: %s", res(openat(root, "plain/x", O_RDONLY | O_CLOEXEC)));
	out(c, "O_DIRECTORY on a file: %s",
	    res(openat(root, "plain", O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
	out(c, "unlink missing: %s", res(unlinkat(root, "missing", 0)));
	out(c, "mkdir below missing: %s", res(mkdirat(root, "missing/x", 0755)));
	fd = openat(root, "plain", O_RDONLY | O_CLOEXEC);
	out(c, "write on a read-only descriptor: %s", res((int)write(fd, "x", 1)));
	close(fd);
	EXPECT(c, mkfifoat(root, "fifo", 0644) == 0);
	struct stat st;
	fstatat(root, "fifo", &st, 0);
	out(c, "mkfifo: is fifo %d", S_ISFIFO(st.st_mode));
	/* (a fifo is not mirrored: leave none behind) */
	EXPECT(c, unlinkat(root, "fifo", 0) == 0);
}

static void check_copy_range(void)
{
	const char *c = "copy-file-range";
	char b[64];

	EXPECT(c, put("src-range", "0123456789abcdef") == 0);
	int in = openat(root, "src-range", O_RDONLY | O_CLOEXEC);
	int outfd = openat(root, "dst-range", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	loff_t oi = 4, oo = 0;
	ssize_t n = copy_file_range(in, &oi, outfd, &oo, 8, 0);
	close(in);
	close(outfd);
	out(c, "copied %zd: \"%s\"", n, get("dst-range", b, sizeof(b)));
	EXPECT(c, n == 8 && !strcmp(b, "456789ab"));
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: posix_check DIR (an empty directory)\n");
		return 2;
	}
	if (chdir(argv[1]) || (root = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "posix_check: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	umask(022);
	setvbuf(stdout, NULL, _IOLBF, 0);
	check_rename_over();
	check_hard_links();
	check_symlinks();
	check_attrs();
	check_truncate();
	check_fallocate();
	check_mmap();
	check_append();
	check_unlinked();
	check_xattrs();
	check_large();
	check_deep();
	check_rename_dir_open();
	check_readdir();
	check_errnos();
	check_copy_range();
	printf("failures: %d\n", failures);
	return failures ? 1 : 0;
}
