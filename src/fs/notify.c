/* notify.c: names of backing files relative to the root, and the observer
 * calls made with them.
 *
 * The path of a real inode is read from its O_PATH descriptor
 * (/proc/self/fd/N), so it follows renames of the file and of its parents;
 * the backing root's own path is taken once at mount time.
 */
#include "hfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

const char *hfs_proc_path(int fd, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
	return buf;
}

static void hfs_warn_long(struct hfs *h)
{
	if (!atomic_exchange(&h->warned_long, true))
		fuse_log(FUSE_LOG_WARNING,
			 "hermes: a path under %s is longer than %d bytes: "
			 "its changes are not reported to the sync\n",
			 h->backing, PATH_MAX);
}

static bool hfs_deleted(int fd, const char *link, size_t len)
{
	static const char mark[] = " (deleted)";
	struct stat st;

	if (len < sizeof(mark) - 1 || strcmp(link + len - (sizeof(mark) - 1), mark))
		return false;
	return fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_nlink == 0;
}

/* The path of IN relative to the backing root ("" for the root) into out.
 * Returns 0, or -1 when it has none (deleted, outside, too long). */
static int hfs_relpath(struct hfs *h, struct hfs_inode *in, char *out, size_t size)
{
	char proc[32];

	if (in == &h->root) {
		out[0] = '\0';
		return 0;
	}
	if (in->kind != HFS_REAL)
		return -1;
	ssize_t n = readlink(hfs_proc_path(in->fd, proc, sizeof(proc)), out, size);
	if (n < 0 || (size_t)n >= size) {
		if (n >= 0 || errno == ENAMETOOLONG)
			hfs_warn_long(h);
		return -1;
	}
	out[n] = '\0';
	if (hfs_deleted(in->fd, out, (size_t)n))
		return -1;

	const char *rel;
	size_t blen = h->backing_len;
	if (blen == 1)
		rel = out + 1; /* the root is "/" */
	else if (!strncmp(out, h->backing, blen) && out[blen] == '/')
		rel = out + blen + 1;
	else if (!strcmp(out, h->backing))
		rel = "";
	else
		return -1;
	memmove(out, rel, strlen(rel) + 1);
	return 0;
}

static bool hfs_hidden(const char *rel)
{
	size_t n = strlen(FS_VIRTUAL_DIR);

	if (!rel[0])
		return true; /* the root itself: not nameable */
	return !strncmp(rel, FS_VIRTUAL_DIR, n) && (rel[n] == '\0' || rel[n] == '/');
}

/* DIR's path + "/" + NAME into out; -1 if none or too long. */
static int hfs_child_path(struct hfs *h, struct hfs_inode *dir, const char *name,
			  char *out, size_t size)
{
	if (hfs_relpath(h, dir, out, size))
		return -1;
	size_t dl = strlen(out);
	size_t nl = strlen(name);
	if (dl + 1 + nl + 1 > size) {
		hfs_warn_long(h);
		return -1;
	}
	if (dl)
		out[dl++] = '/';
	memcpy(out + dl, name, nl + 1);
	return hfs_hidden(out) ? -1 : 0;
}

static void hfs_call_changed(struct hfs *h, const char *path)
{
	if (h->debug)
		fuse_log(FUSE_LOG_DEBUG, "hermes: changed %s\n", path);
	if (h->obs.changed)
		h->obs.changed(h->obs.ctx, path);
}

void hfs_notify_changed(struct hfs *h, struct hfs_inode *dir, const char *name)
{
	char path[PATH_MAX];

	if (!h->obs.changed && !h->debug)
		return;
	if (!hfs_child_path(h, dir, name, path, sizeof(path)))
		hfs_call_changed(h, path);
}

void hfs_notify_inode(struct hfs *h, struct hfs_inode *in)
{
	char path[PATH_MAX];

	if (!h->obs.changed && !h->debug)
		return;
	if (!hfs_relpath(h, in, path, sizeof(path)) && !hfs_hidden(path))
		hfs_call_changed(h, path);
}

void hfs_notify_dirt(struct hfs *h, struct hfs_inode *in, const struct hfs_dirt *d)
{
	char path[PATH_MAX];

	if (d->whole || !h->obs.written) {
		hfs_notify_inode(h, in);
		return;
	}
	if (hfs_relpath(h, in, path, sizeof(path)) || hfs_hidden(path))
		return;
	if (h->debug)
		fuse_log(FUSE_LOG_DEBUG, "hermes: written %s [%llu, %llu)\n", path,
			 (unsigned long long)d->lo, (unsigned long long)d->hi);
	h->obs.written(h->obs.ctx, path, d->lo, d->hi - d->lo);
}

void hfs_notify_removed(struct hfs *h, struct hfs_inode *dir, const char *name)
{
	char path[PATH_MAX];

	if (!h->obs.removed && !h->debug)
		return;
	if (hfs_child_path(h, dir, name, path, sizeof(path)))
		return;
	if (h->debug)
		fuse_log(FUSE_LOG_DEBUG, "hermes: removed %s\n", path);
	if (h->obs.removed)
		h->obs.removed(h->obs.ctx, path);
}

void hfs_notify_renamed(struct hfs *h, struct hfs_inode *odir, const char *oname,
			struct hfs_inode *ndir, const char *nname)
{
	char from[PATH_MAX], to[PATH_MAX];

	bool have_from = !hfs_child_path(h, odir, oname, from, sizeof(from));
	bool have_to = !hfs_child_path(h, ndir, nname, to, sizeof(to));

	/* A side that cannot be named degrades to a removal or a change. */
	if (!have_to) {
		if (have_from)
			hfs_notify_removed(h, odir, oname);
		return;
	}
	if (!have_from) {
		hfs_call_changed(h, to);
		return;
	}
	if (h->debug)
		fuse_log(FUSE_LOG_DEBUG, "hermes: renamed %s %s\n", from, to);
	if (h->obs.renamed)
		h->obs.renamed(h->obs.ctx, from, to);
}
