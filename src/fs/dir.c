/* dir.c: directory listings.
 *
 * Listings are stateless: each readdir request opens the directory (from
 * its inode's O_PATH descriptor), seeks to the offset the kernel passed (the
 * backing file system's own d_off cookie) and reads on. So opendir needs no
 * handle: where the kernel allows it, opendir answers ENOSYS once and the
 * kernel stops sending opendir/releasedir, and it caches listings itself
 * (until the directory changes through the mount, or its mtime changes).
 *
 * The root's listing drops a real ".hermes" and adds the virtual one right
 * after the first entry of the stream, with that entry's cookie: both always
 * go in the same reply (the first one of a listing), so resuming at the
 * cookie continues after both. The virtual directory's own listing uses
 * offsets 1, 2, ...
 *
 * readdirplus looks each entry up as it is sent (a reference per entry sent);
 * an entry removed meanwhile is skipped.
 */
#include "hfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* A reply being built. */
struct hfs_fill {
	fuse_req_t req;
	struct hfs *h;
	struct hfs_inode *dir;
	bool plus;
	char *buf;
	size_t size;
	size_t used;
	fuse_ino_t *looked; /* references taken for entries in buf */
	size_t nlooked;
	size_t maxlooked;
};

static bool hfs_is_dot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

static void hfs_fill_unref_from(struct hfs_fill *f, size_t from)
{
	for (size_t i = from; i < f->nlooked; i++)
		hfs_inode_unref(f->h, hfs_inode_of(f->req, f->looked[i]), 1);
	f->nlooked = from;
}

/* Add one entry. Returns 0, 1 when it does not fit (nothing added), -ENOENT
 * when it vanished (skip it), or another -errno. */
static int hfs_fill_add(struct hfs_fill *f, const char *name, ino_t ino,
			unsigned char type, off_t next)
{
	char *p = f->buf + f->used;
	size_t rem = f->size - f->used, len;

	if (!f->plus) {
		struct stat st = { .st_ino = ino, .st_mode = (mode_t)type << 12 };
		len = fuse_add_direntry(f->req, p, rem, name, &st, next);
		if (len > rem)
			return 1;
		f->used += len;
		return 0;
	}
	struct fuse_entry_param e;
	if (hfs_is_dot(name)) {
		/* The kernel takes no reference for these and ignores attr. */
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = ino;
		e.attr.st_mode = (mode_t)type << 12;
	} else {
		int err = hfs_lookup_entry(f->h, f->dir, name, &e);
		if (err)
			return -err;
	}
	len = fuse_add_direntry_plus(f->req, p, rem, name, &e, next);
	if (len > rem || (e.ino && f->nlooked == f->maxlooked)) {
		if (e.ino)
			hfs_inode_unref(f->h, hfs_inode_of(f->req, e.ino), 1);
		return 1;
	}
	if (e.ino)
		f->looked[f->nlooked++] = e.ino;
	f->used += len;
	return 0;
}

/* The first entry of the root's listing and the virtual directory after
 * it, both or neither: 0, 1 (no room), or -errno. */
static int hfs_fill_first_root(struct hfs_fill *f, struct dirent *de)
{
	size_t used = f->used, nlooked = f->nlooked;

	int rc = hfs_fill_add(f, de->d_name, de->d_ino, de->d_type, de->d_off);
	if (rc)
		return rc;
	rc = hfs_fill_add(f, FS_VIRTUAL_DIR, f->h->vdir->ino, DT_DIR, de->d_off);
	if (rc) {
		hfs_fill_unref_from(f, nlooked);
		f->used = used;
		return rc == 1 ? -ENOBUFS : rc;
	}
	return 0;
}

static int hfs_fill_real(struct hfs_fill *f, off_t off)
{
	bool root = f->dir == &f->h->root;
	bool first = root && off == 0;
	int rc = 0;

	int fd = openat(f->dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *dp = fdopendir(fd);
	if (!dp) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (off)
		seekdir(dp, off);
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(dp);
		if (!de) {
			rc = errno ? -errno : 0;
			break;
		}
		if (root && !strcmp(de->d_name, FS_VIRTUAL_DIR))
			continue; /* hidden by the virtual one */
		if (first) {
			rc = hfs_fill_first_root(f, de);
			first = false;
		} else {
			rc = hfs_fill_add(f, de->d_name, de->d_ino, de->d_type, de->d_off);
		}
		if (rc == -ENOENT)
			continue;
		if (rc)
			break;
	}
	closedir(dp);
	return rc == 1 ? 0 : rc;
}

/* A virtual directory, listed afresh by each request (sorted by name, so
 * offsets are indexes that stay put unless names come or go meanwhile). */
static int hfs_fill_virtual(struct hfs_fill *f, off_t off)
{
	struct hfs_vlisting l;
	int rc = hfs_vlist(f->h, f->dir, &l);

	for (size_t i = (size_t)off; !rc && i < l.n; i++) {
		rc = hfs_fill_add(f, l.v[i].name, l.v[i].ino, l.v[i].type, (off_t)(i + 1));
		if (rc == -ENOENT)
			rc = 0; /* gone since listed */
	}
	hfs_vlisting_free(&l);
	return rc == 1 ? 0 : rc;
}

static void hfs_do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, bool plus)
{
	struct hfs_fill f = {
		.req = req, .h = hfs_of(req), .dir = hfs_inode_of(req, ino),
		.plus = plus, .size = size,
		/* A readdirplus entry takes at least 152 bytes. */
		.maxlooked = plus ? size / 128 + 1 : 0,
	};
	int rc = -ENOMEM;

	f.buf = malloc(size ? size : 1);
	if (plus)
		f.looked = calloc(f.maxlooked, sizeof(*f.looked));
	if (f.buf && (!plus || f.looked)) {
		if (f.dir->kind == HFS_VDIR)
			rc = hfs_fill_virtual(&f, off);
		else if (f.dir->kind == HFS_REAL)
			rc = hfs_fill_real(&f, off);
		else
			rc = -ENOTDIR;
	}
	/* An error is reported only when nothing was gathered: the lookups of
	 * what was must reach the kernel. */
	if (rc && f.used == 0)
		fuse_reply_err(req, -rc);
	else if (fuse_reply_buf(req, f.buf, f.used))
		hfs_fill_unref_from(&f, 0);
	free(f.looked);
	free(f.buf);
}

void hfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hfs *h = hfs_of(req);
	struct hfs_inode *in = hfs_inode_of(req, ino);

	if (in->kind == HFS_VFILE) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	/* Nothing to keep per handle: let the kernel skip opendir/releasedir
	 * from now on (it then keeps listings in its cache by itself). */
	if (atomic_load_explicit(&h->no_opendir, memory_order_relaxed)) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->fh = 0;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

void hfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	(void)fi;
	hfs_do_readdir(req, ino, size, off, false);
}

void hfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)fi;
	hfs_do_readdir(req, ino, size, off, true);
}

void hfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

void hfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi)
{
	struct hfs_inode *in = hfs_inode_of(req, ino);

	(void)fi;
	if (in->kind != HFS_REAL) {
		fuse_reply_err(req, 0);
		return;
	}
	int fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	int rc = datasync ? fdatasync(fd) : fsync(fd);
	int err = rc ? errno : 0;
	close(fd);
	fuse_reply_err(req, err);
}
