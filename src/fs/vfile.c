/* vfile.c: the virtual ".hermes" directory at the mount root.
 *
 * It exists only in the mount (a real LOCALDIR/.hermes is hidden by it). Its
 * files are served with direct_io: a read sees the bytes open_fn produced
 * when that file was opened, whatever size getattr reported (0).
 */
#include "hfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Inode numbers shown for the virtual entries (st_ino); far from real ones. */
#define HFS_VINO_BASE 0x7fffffffff000000ULL

/* A handle on a virtual file: fi->fh. */
struct hfs_vhandle {
	const struct fs_vfile *vf; /* immutable */
	struct buf content;        /* produced at open; immutable after */
	pthread_mutex_t lock;
	struct buf pending;        /* written, not handed to write_fn yet; protected by lock */
};

static struct hfs_vhandle *hfs_vh(struct fuse_file_info *fi)
{
	return (struct hfs_vhandle *)(uintptr_t)fi->fh;
}

void hfs_vinit(struct hfs *h, const struct fs_vfile *vf, size_t n,
	       struct hfs_inode *nodes)
{
	h->vdir = (struct hfs_inode){
		.kind = HFS_VDIR, .ino = (ino_t)HFS_VINO_BASE, .fd = -1,
	};
	for (size_t i = 0; i < n; i++) {
		nodes[i] = (struct hfs_inode){
			.kind = HFS_VFILE, .ino = (ino_t)(HFS_VINO_BASE + 1 + i),
			.fd = -1, .vfile = &vf[i],
		};
	}
	h->vfiles = nodes;
	h->nvfiles = n;
}

void hfs_vattr(const struct hfs *h, const struct hfs_inode *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_uid = h->uid;
	st->st_gid = h->gid;
	st->st_atim = st->st_mtim = st->st_ctim = h->started;
	st->st_blksize = 4096;
	if (in->kind == HFS_VDIR) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | (in->vfile->write_fn ? 0644 : 0444);
		st->st_nlink = 1;
	}
}

int hfs_vlookup(struct hfs *h, struct hfs_inode *dir, const char *name,
		struct fuse_entry_param *e)
{
	struct hfs_inode *in = NULL;

	memset(e, 0, sizeof(*e));
	if (dir->kind == HFS_VFILE)
		return ENOTDIR;
	if (dir->kind == HFS_REAL) {
		in = &h->vdir; /* hfs_is_vname(h, dir, name) held */
	} else {
		for (size_t i = 0; i < h->nvfiles && !in; i++)
			if (!strcmp(h->vfiles[i].vfile->name, name))
				in = &h->vfiles[i];
	}
	if (!in)
		return ENOENT;
	hfs_vattr(h, in, &e->attr);
	e->ino = hfs_id(h, in);
	e->entry_timeout = h->timeout;
	e->attr_timeout = in->kind == HFS_VFILE ? 0 : h->timeout;
	return 0;
}

/* Truncation and times of a writable virtual file are accepted (and do
 * nothing): `echo cmd > .hermes/run` and touch work. Nothing else changes. */
void hfs_vsetattr(fuse_req_t req, struct hfs_inode *in, int valid)
{
	const int allowed = FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
			    FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			    FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME;
	struct stat st;

	if (in->kind != HFS_VFILE || !in->vfile->write_fn || (valid & ~allowed)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	hfs_vattr(hfs_of(req), in, &st);
	fuse_reply_attr(req, &st, 0);
}

static void hfs_vh_free(struct hfs_vhandle *vh)
{
	buf_free(&vh->content);
	buf_free(&vh->pending);
	pthread_mutex_destroy(&vh->lock);
	free(vh);
}

void hfs_vopen(fuse_req_t req, struct hfs_inode *in, struct fuse_file_info *fi)
{
	const struct fs_vfile *vf = in->vfile;
	int acc = fi->flags & O_ACCMODE;

	if (acc != O_RDONLY && !vf->write_fn) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct hfs_vhandle *vh = calloc(1, sizeof(*vh));
	if (!vh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	vh->vf = vf;
	pthread_mutex_init(&vh->lock, NULL);
	if (acc != O_WRONLY && vf->open_fn) {
		int rc = vf->open_fn(vf->ctx, &vh->content);
		if (rc) {
			hfs_vh_free(vh);
			fuse_reply_err(req, rc < 0 ? -rc : rc);
			return;
		}
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->fh = (uintptr_t)vh;
	if (fuse_reply_open(req, fi))
		hfs_vh_free(vh);
}

void hfs_vread(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct hfs_vhandle *vh = hfs_vh(fi);

	if (off < 0 || (size_t)off >= vh->content.len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = vh->content.len - (size_t)off;
	fuse_reply_buf(req, (const char *)vh->content.data + off, n < size ? n : size);
}

void hfs_vwrite(fuse_req_t req, struct fuse_bufvec *in, struct fuse_file_info *fi)
{
	struct hfs_vhandle *vh = hfs_vh(fi);
	size_t size = fuse_buf_size(in);
	ssize_t n;

	pthread_mutex_lock(&vh->lock);
	int rc = buf_reserve(&vh->pending, size);
	if (rc) {
		pthread_mutex_unlock(&vh->lock);
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
	out.buf[0].mem = vh->pending.data + vh->pending.len;
	n = fuse_buf_copy(&out, in, 0);
	if (n > 0)
		vh->pending.len += (size_t)n;
	pthread_mutex_unlock(&vh->lock);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* Hand what was written since the last call to write_fn: 0 or -errno. */
static int hfs_vdeliver(struct hfs_vhandle *vh)
{
	struct buf data = BUF_INIT;

	pthread_mutex_lock(&vh->lock);
	data = vh->pending;
	vh->pending = (struct buf)BUF_INIT;
	pthread_mutex_unlock(&vh->lock);
	int rc = 0;
	if (data.len && vh->vf->write_fn)
		rc = vh->vf->write_fn(vh->vf->ctx, data.data, data.len);
	buf_free(&data);
	return rc > 0 ? -rc : rc;
}

void hfs_vflush(fuse_req_t req, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -hfs_vdeliver(hfs_vh(fi)));
}

void hfs_vrelease(fuse_req_t req, struct fuse_file_info *fi)
{
	struct hfs_vhandle *vh = hfs_vh(fi);
	int rc = hfs_vdeliver(vh);

	if (rc)
		fuse_log(FUSE_LOG_ERR, "hermes: %s/%s: %s\n", FS_VIRTUAL_DIR,
			 vh->vf->name, strerror(-rc));
	hfs_vh_free(vh);
	fuse_reply_err(req, 0);
}

void hfs_vlseek(fuse_req_t req, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t len = (off_t)hfs_vh(fi)->content.len;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off < 0 || off >= len) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	fuse_reply_lseek(req, whence == SEEK_DATA ? off : len);
}
