#include "fsops.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "manifest.h"
#include "path.h"

int open_beneath_walk(int root_fd, const char *path, int flags)
{
	char comp[NAME_MAX + 1];
	int dirfd = root_fd;
	const char *p = path;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || n > NAME_MAX || (comp[0] = p[0]) == '\0')
			return -EINVAL;
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (!strcmp(comp, ".") || !strcmp(comp, "..")) {
			if (dirfd != root_fd)
				close(dirfd);
			return -EXDEV; /* what openat2 says for an escape */
		}
		/* O_NOFOLLOW on every step: a symlink is never crossed. */
		int fd = slash ? openat(dirfd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
			       : openat(dirfd, comp, flags | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		if (dirfd != root_fd)
			close(dirfd);
		if (fd < 0)
			return -(e == ENOTDIR && slash ? ELOOP : e);
		if (!slash)
			return fd;
		dirfd = fd;
		p = slash + 1;
	}
}

int open_beneath(int root_fd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
	if (fd >= 0)
		return (int)fd;
	/* Kernels before 5.6 (and some sandboxes) have no openat2. */
	if (errno == ENOSYS || errno == EPERM)
		return open_beneath_walk(root_fd, path, flags);
	return -errno;
}

static atomic_uint dircache_generation;

void dircache_invalidate_all(void)
{
	atomic_fetch_add(&dircache_generation, 1);
}

void dircache_init(struct dircache *dc)
{
	dc->fd = -1;
	dc->path[0] = '\0';
}

void dircache_drop(struct dircache *dc)
{
	if (dc->fd >= 0)
		close(dc->fd);
	dircache_init(dc);
}

int dircache_parent(struct dircache *dc, int root_fd, const char *path, const char **base)
{
	size_t dlen = path_dir_len(path);
	*base = path_base(path);
	if (dlen == 0)
		return root_fd;
	/* Changes arrive sorted, so consecutive paths mostly share it. */
	unsigned gen = atomic_load(&dircache_generation);
	if (dc->fd >= 0 && dc->gen == gen && strlen(dc->path) == dlen &&
	    memcmp(dc->path, path, dlen) == 0)
		return dc->fd;
	dircache_drop(dc);
	char dir[PATH_MAX];
	memcpy(dir, path, dlen);
	dir[dlen] = '\0';
	int fd = open_beneath(root_fd, dir, O_PATH | O_DIRECTORY);
	if (fd < 0)
		return fd;
	dc->fd = fd;
	dc->gen = gen;
	memcpy(dc->path, dir, dlen + 1);
	return fd;
}

int tmpnames_init(struct tmpnames *t)
{
	atomic_init(&t->seq, 0);
	return getrandom(&t->base, sizeof(t->base), 0) == sizeof(t->base) ? 0 : -errno;
}

int make_temp(struct tmpnames *t, int dirfd, char name[64],
	      int (*create)(int dirfd, const char *name, void *arg), void *arg)
{
	for (int tries = 0; tries < 16; tries++) {
		unsigned seq = atomic_fetch_add(&t->seq, 1);
		snprintf(name, 64, "%s%08x%08x", AGENT_TMP_PREFIX, t->base, seq);
		int rc = create(dirfd, name, arg);
		if (rc != -EEXIST)
			return rc;
	}
	return -EEXIST;
}

void mtime_spec(struct timespec ts[2], int64_t mtime_ns)
{
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = mtime_ns / 1000000000LL;
	ts[1].tv_nsec = mtime_ns % 1000000000LL;
	if (ts[1].tv_nsec < 0) {
		ts[1].tv_sec--;
		ts[1].tv_nsec += 1000000000LL;
	}
}
