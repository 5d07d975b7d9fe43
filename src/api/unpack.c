#include "unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "path.h"

/* Walk the directories of path[0..dirlen) beneath root_fd, creating missing
 * ones when create is set. Returns a directory fd or -errno. */
static int open_dirs(int root_fd, const char *path, size_t dirlen, bool create)
{
	int fd = dup(root_fd);
	if (fd < 0)
		return -errno;
	size_t i = 0;
	while (i < dirlen) {
		size_t j = i;
		while (j < dirlen && path[j] != '/')
			j++;
		char name[NAME_MAX + 1];
		memcpy(name, path + i, j - i);
		name[j - i] = '\0';
		if (create && mkdirat(fd, name, 0755) < 0 && errno != EEXIST) {
			int e = -errno;
			close(fd);
			return e;
		}
		int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = -errno;
		close(fd);
		if (next < 0)
			return e;
		fd = next;
		i = j + 1;
	}
	return fd;
}

int open_beneath(int root_fd, const char *path, int flags, mode_t mode)
{
	if (path_check(path, strlen(path)) < 0)
		return -EINVAL;
	int dfd = open_dirs(root_fd, path, path_dir_len(path), false);
	if (dfd < 0)
		return dfd;
	int fd = openat(dfd, path_base(path), flags | O_NOFOLLOW | O_CLOEXEC, mode);
	int e = -errno;
	close(dfd);
	return fd < 0 ? e : fd;
}

/* Archive names come as "./a/b", "a/b/" or "a/b": the relative path, or ""
 * for the root itself. */
static int entry_path(const char *raw, char *out, size_t outsz)
{
	if (!raw || raw[0] == '/')
		return -EINVAL;
	while (raw[0] == '.' && raw[1] == '/')
		raw += 2;
	size_t n = strlen(raw);
	while (n > 0 && raw[n - 1] == '/')
		n--;
	if (n >= outsz)
		return -EINVAL;
	memcpy(out, raw, n);
	out[n] = '\0';
	if (n == 0 || !strcmp(out, ".")) {
		out[0] = '\0';
		return 0;
	}
	return path_check(out, n);
}

/* The target of a symlink at `path` stays beneath the root, lexically. */
static bool link_target_ok(const char *path, const char *target)
{
	if (!target || !*target || target[0] == '/')
		return false;
	long depth = 0;
	for (const char *p = path; *p; p++)
		depth += *p == '/';
	const char *c = target;
	while (*c) {
		const char *e = strchrnul(c, '/');
		size_t len = (size_t)(e - c);
		if (len == 2 && !strncmp(c, "..", 2)) {
			if (--depth < 0)
				return false;
		} else if (len && !(len == 1 && *c == '.')) {
			depth++;
		}
		c = *e ? e + 1 : e;
	}
	return true;
}

static int write_file(struct archive *a, int fd, uint64_t *budget, const char *path,
		      struct buf *err)
{
	const void *data;
	size_t size;
	la_int64_t off;
	int rc;
	while ((rc = archive_read_data_block(a, &data, &size, &off)) == ARCHIVE_OK) {
		if (size > *budget) {
			buf_printf(err, "archive unpacks to more than the allowed size (at %s)", path);
			return -EFBIG;
		}
		*budget -= size;
		if (pwrite(fd, data, size, off) != (ssize_t)size) {
			buf_printf(err, "%s: write: %s", path, strerror(errno));
			return -EIO;
		}
	}
	if (rc != ARCHIVE_EOF) {
		buf_printf(err, "malformed archive at %s: %s", path, archive_error_string(a));
		return -EIO;
	}
	return 0;
}

static int make_entry(struct archive *a, struct archive_entry *e, int root_fd, const char *path,
		      uint64_t *budget, struct buf *err)
{
	mode_t type = archive_entry_filetype(e);
	mode_t perm = archive_entry_perm(e) & 0777;
	if (archive_entry_hardlink(e)) {
		buf_printf(err, "archive entry %s: hard links are not accepted", path);
		return -EINVAL;
	}
	if (type == AE_IFDIR) {
		int fd = open_dirs(root_fd, path, strlen(path), true);
		if (fd < 0)
			goto sys_fail;
		fchmod(fd, perm | 0700);
		close(fd);
		return 0;
	}
	if (type != AE_IFREG && type != AE_IFLNK) {
		buf_printf(err, "archive entry %s: only files, directories and symlinks are accepted",
			   path);
		return -EINVAL;
	}
	int dfd = open_dirs(root_fd, path, path_dir_len(path), true);
	if (dfd < 0)
		goto sys_fail;
	int r = 0;
	if (type == AE_IFLNK) {
		const char *target = archive_entry_symlink(e);
		if (!link_target_ok(path, target)) {
			buf_printf(err, "archive entry %s: symlink target %s leaves the workspace",
				   path, target ? target : "(none)");
			r = -EINVAL;
		} else if (symlinkat(target, dfd, path_base(path)) < 0) {
			buf_printf(err, "archive entry %s: symlink: %s", path, strerror(errno));
			r = -EINVAL;
		}
		close(dfd);
		return r;
	}
	int fd = openat(dfd, path_base(path), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
			perm | 0600);
	int e_open = errno;
	close(dfd);
	if (fd < 0) {
		buf_printf(err, "archive entry %s: %s", path, strerror(e_open));
		return -EINVAL;
	}
	r = write_file(a, fd, budget, path, err);
	if (r == 0) {
		struct timespec ts[2] = { { archive_entry_mtime(e), 0 }, { archive_entry_mtime(e), 0 } };
		fchmod(fd, perm);
		futimens(fd, ts);
	}
	close(fd);
	return r;
sys_fail:
	buf_printf(err, "archive entry %s: cannot create its directory (%s)", path, strerror(errno));
	return -EINVAL;
}

int unpack_archive(const char *archive_path, int root_fd, uint64_t max_bytes, struct buf *err)
{
	struct archive *a = archive_read_new();
	if (!a)
		return -ENOMEM;
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_format_tar(a);
	int r = 0;
	if (archive_read_open_filename(a, archive_path, 1 << 16) != ARCHIVE_OK) {
		buf_printf(err, "not a tar, tar.gz or tar.zst archive: %s", archive_error_string(a));
		r = -EIO;
		goto out;
	}
	uint64_t budget = max_bytes;
	struct archive_entry *e;
	int rc;
	while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		char path[PATH_MAX];
		const char *raw = archive_entry_pathname(e);
		if (entry_path(raw, path, sizeof(path)) < 0) {
			buf_printf(err, "archive entry %s: not a relative path inside the workspace",
				   raw ? raw : "(no name)");
			r = -EINVAL;
			goto out;
		}
		if (!path[0])
			continue; /* the root directory itself */
		/* Entries cost their header too, so a million empty files count. */
		if (budget < 512) {
			buf_printf(err, "archive unpacks to more than the allowed size (at %s)", path);
			r = -EFBIG;
			goto out;
		}
		budget -= 512;
		if ((r = make_entry(a, e, root_fd, path, &budget, err)) < 0)
			goto out;
	}
	if (rc != ARCHIVE_EOF) {
		buf_printf(err, "malformed archive: %s", archive_error_string(a));
		r = -EIO;
	}
out:
	archive_read_free(a);
	return r;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

int remove_tree(const char *dir)
{
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 0;
}
