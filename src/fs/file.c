/* file.c: operations on open files (fi->fh is a struct hfs_file, or a
 * virtual file's handle, told apart by the inode's kind).
 *
 * With the writeback cache the kernel owns the file size and does O_APPEND
 * itself (it sends writes at the end it knows of), and may read pages of a
 * file opened write-only; so backing files are opened O_RDWR without
 * O_APPEND then. Data moves between /dev/fuse and the backing file with
 * splice where the kernel offers it.
 */
#include "hfs.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

static _Thread_local bool hfs_umask_cleared;

void hfs_thread_umask(void)
{
	static atomic_bool warned;

	if (hfs_umask_cleared)
		return;
	hfs_umask_cleared = true;
	/* The kernel already applied the caller's umask to the mode. */
	if (unshare(CLONE_FS) && !atomic_exchange(&warned, true))
		fuse_log(FUSE_LOG_WARNING,
			 "hermes: unshare(CLONE_FS) failed (%s): the process umask is cleared\n",
			 strerror(errno));
	umask(0);
}

static struct hfs_file *hfs_fh(struct fuse_file_info *fi)
{
	return (struct hfs_file *)(uintptr_t)fi->fh;
}

static bool hfs_virtual_fh(fuse_req_t req, fuse_ino_t ino)
{
	return hfs_inode_of(req, ino)->kind != HFS_REAL;
}

static int hfs_backing_flags(struct hfs *h, int flags)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_DIRECT);
	flags |= O_CLOEXEC;
	if (atomic_load_explicit(&h->writeback, memory_order_relaxed)) {
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return flags;
}

/* Open the backing file of IN: a descriptor or -errno. */
static int hfs_open_backing(struct hfs *h, struct hfs_inode *in, int flags)
{
	char proc[32];
	int want = hfs_backing_flags(h, flags);

	hfs_proc_path(in->fd, proc, sizeof(proc));
	int fd = open(proc, want);
	if (fd < 0 && errno == EACCES && (want & O_ACCMODE) != (flags & O_ACCMODE)) {
		/* A write-only file we may not read: open it as asked. */
		fd = open(proc, (want & ~O_ACCMODE) | (flags & O_ACCMODE));
	}
	return fd < 0 ? -errno : fd;
}

static void hfs_set_open_flags(struct fuse_file_info *fi, int flags)
{
	/* Only this process changes the backing tree: cached pages stay valid
	 * across opens. O_DIRECT keeps its meaning on the mount (no page
	 * cache); the backing file is opened without it (alignment). */
	fi->keep_cache = 1;
	fi->direct_io = (flags & O_DIRECT) ? 1 : 0;
	/* Nothing to flush on close of a read-only open. */
	fi->noflush = (flags & O_ACCMODE) == O_RDONLY;
}

static struct hfs_file *hfs_file_new(struct hfs *h, int fd, struct hfs_inode *in)
{
	struct hfs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->fd = fd;
	f->inode = in;
	pthread_mutex_init(&f->lock, NULL);
	hfs_inode_ref(h, in);
	pthread_mutex_lock(&h->files_lock);
	f->next = h->files;
	if (h->files)
		h->files->prev = f;
	h->files = f;
	pthread_mutex_unlock(&h->files_lock);
	return f;
}

static void hfs_file_free(struct hfs *h, struct hfs_file *f)
{
	pthread_mutex_lock(&h->files_lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		h->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	pthread_mutex_unlock(&h->files_lock);
	close(f->fd);
	hfs_inode_unref(h, f->inode, 1);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* Bytes [off, off + len) reached the backing file through f. They are
 * reported when the file is flushed (close), fsynced or released, not now:
 * a report sends the sync to read the file, and a file still being written
 * would be read and sent again and again (measured: ~58 times per GiB
 * written). One bounding range per handle: the sync sends the blocks it
 * covers, and an editor's or a build's writes are mostly contiguous. */
static void hfs_file_wrote(struct hfs_file *f, uint64_t off, uint64_t len)
{
	uint64_t end = off + len < off ? UINT64_MAX : off + len;

	pthread_mutex_lock(&f->lock);
	struct hfs_dirt *d = &f->dirt;
	if (d->lo == d->hi) {
		d->lo = off;
		d->hi = end;
	} else if (len) {
		d->lo = off < d->lo ? off : d->lo;
		d->hi = end > d->hi ? end : d->hi;
	}
	d->dirty = true;
	pthread_mutex_unlock(&f->lock);
}

/* A change that is not a plain write (truncate, fallocate, a new file):
 * the sync looks at the whole file. Reported as hfs_file_wrote's are. */
static void hfs_file_whole(struct hfs_file *f)
{
	pthread_mutex_lock(&f->lock);
	f->dirt.dirty = f->dirt.whole = true;
	pthread_mutex_unlock(&f->lock);
}

void hfs_file_mark_times(struct fuse_file_info *fi)
{
	struct hfs_file *f = hfs_fh(fi);

	pthread_mutex_lock(&f->lock);
	f->dirt.dirty = true;
	pthread_mutex_unlock(&f->lock);
}

/* What f changed since its last report; f starts afresh. */
static struct hfs_dirt hfs_file_take(struct hfs_file *f)
{
	pthread_mutex_lock(&f->lock);
	struct hfs_dirt d = f->dirt;
	memset(&f->dirt, 0, sizeof(f->dirt));
	pthread_mutex_unlock(&f->lock);
	return d;
}

static bool hfs_file_dirty(struct hfs_file *f)
{
	pthread_mutex_lock(&f->lock);
	bool dirty = f->dirt.dirty;
	pthread_mutex_unlock(&f->lock);
	return dirty;
}

struct hfs_report {
	struct hfs_inode *in;    /* holds a reference */
	struct hfs_dirt dirt;
};

/* The open files that are dirty (all == false) or all of them, a reference
 * to each inode taken, their dirt taken too when take is set. Taken under
 * files_lock; acted on outside it: a write-back is served by other
 * workers, which may need the lock to release files meanwhile. A failed
 * allocation leaves the rest to be reported at their close. */
static size_t hfs_collect(struct hfs *h, bool take, struct hfs_report **out)
{
	struct hfs_report *v = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&h->files_lock);
	for (struct hfs_file *f = h->files; f; f = f->next) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct hfs_report *nv = realloc(v, ncap * sizeof(*nv));
			if (!nv)
				break;
			v = nv;
			cap = ncap;
		}
		if (take)
			v[n].dirt = hfs_file_take(f);
		else
			v[n].dirt.dirty = hfs_file_dirty(f);
		if (!v[n].dirt.dirty)
			continue;
		hfs_inode_ref(h, f->inode);
		v[n++].in = f->inode;
	}
	pthread_mutex_unlock(&h->files_lock);
	*out = v;
	return n;
}

void hfs_report_open_files(struct hfs *h)
{
	struct hfs_report *v;
	size_t n;

	/* First the kernel writes back what it caches of the dirty files, so
	 * the byte ranges taken next include those writes. */
	if (atomic_load_explicit(&h->writeback, memory_order_relaxed)) {
		n = hfs_collect(h, false, &v);
		for (size_t i = 0; i < n; i++) {
			fuse_lowlevel_notify_inval_inode(h->se, hfs_id(h, v[i].in), 0, 0);
			hfs_inode_unref(h, v[i].in, 1);
		}
		free(v);
	}
	n = hfs_collect(h, true, &v);
	for (size_t i = 0; i < n; i++) {
		hfs_notify_dirt(h, v[i].in, &v[i].dirt);
		hfs_inode_unref(h, v[i].in, 1);
	}
	free(v);
}

/* Report f's writes since the last report, if any. */
static void hfs_file_report(struct hfs *h, struct hfs_file *f)
{
	struct hfs_dirt d = hfs_file_take(f);

	if (d.dirty)
		hfs_notify_dirt(h, f->inode, &d);
}

void hfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hfs *h = hfs_of(req);
	struct hfs_inode *in = hfs_inode_of(req, ino);

	if (in->kind == HFS_VFILE) {
		hfs_vopen(req, in, fi);
		return;
	}
	if (in->kind == HFS_VDIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	int fd = hfs_open_backing(h, in, fi->flags);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	struct hfs_file *f = hfs_file_new(h, fd, in);
	if (!f) {
		close(fd);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	hfs_set_open_flags(fi, fi->flags);
	fi->fh = (uintptr_t)f;
	/* Truncated: reported at close, with what is written meanwhile (a
	 * report now would send the empty file, then the new content). */
	if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY)
		hfs_file_whole(f);
	if (fuse_reply_open(req, fi))
		hfs_file_free(h, f);
}

/* The create half of hfs_create: the descriptor or -errno. */
static int hfs_create_backing(struct hfs *h, struct hfs_inode *dir, const char *name,
			      int flags, mode_t mode)
{
	/* O_NOFOLLOW: the kernel saw no entry here; never follow a symlink
	 * that appeared in the backing tree meanwhile. */
	int want = hfs_backing_flags(h, flags) | O_CREAT | O_NOFOLLOW | (flags & O_EXCL);

	hfs_thread_umask();
	int fd = openat(dir->fd, name, want, mode);
	if (fd < 0 && errno == EACCES && (want & O_ACCMODE) != (flags & O_ACCMODE))
		fd = openat(dir->fd, name, (want & ~O_ACCMODE) | (flags & O_ACCMODE), mode);
	return fd < 0 ? -errno : fd;
}

void hfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, struct fuse_file_info *fi)
{
	struct hfs *h = hfs_of(req);
	struct hfs_inode *dir = hfs_inode_of(req, parent);
	struct fuse_entry_param e;
	int err;

	if (dir->kind != HFS_REAL || hfs_is_vname(h, dir, name)) {
		fuse_reply_err(req, dir->kind == HFS_REAL ? EEXIST : EPERM);
		return;
	}
	int fd = hfs_create_backing(h, dir, name, fi->flags, mode);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	err = hfs_lookup_entry(h, dir, name, &e);
	if (err) {
		close(fd);
		fuse_reply_err(req, err);
		return;
	}
	struct hfs_inode *in = hfs_inode_of(req, e.ino);
	struct hfs_file *f = hfs_file_new(h, fd, in);
	if (!f) {
		close(fd);
		hfs_inode_unref(h, in, 1);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	hfs_set_open_flags(fi, fi->flags);
	fi->fh = (uintptr_t)f;
	/* Reported at close, written or not: an editor's temp file is
	 * usually renamed over its target right after, in the same batch. */
	hfs_file_whole(f);
	if (fuse_reply_create(req, &e, fi)) {
		hfs_file_free(h, f);
		hfs_inode_unref(h, in, 1);
	}
}

void hfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	      struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	if (hfs_virtual_fh(req, ino)) {
		hfs_vread(req, size, off, fi);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = hfs_fh(fi)->fd;
	buf.buf[0].pos = off;
	/* Spliced when the kernel allows (no SPLICE_MOVE: stealing pages
	 * would empty the backing file's cache). Replies the error itself if
	 * the read fails. */
	fuse_reply_data(req, &buf, 0);
}

void hfs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
		   off_t off, struct fuse_file_info *fi)
{
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));

	if (hfs_virtual_fh(req, ino)) {
		hfs_vwrite(req, in, off, fi);
		return;
	}
	struct hfs_file *f = hfs_fh(fi);
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = f->fd;
	out.buf[0].pos = off;
	ssize_t n = fuse_buf_copy(&out, in, 0);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	/* A backing file opened O_APPEND (no writeback cache) takes writes at
	 * its own end, whatever off says: count everything from off on. */
	bool append = (fi->flags & O_APPEND) &&
		      !atomic_load_explicit(&hfs_of(req)->writeback, memory_order_relaxed);
	hfs_file_wrote(f, (uint64_t)off, append ? UINT64_MAX : (uint64_t)n);
	fuse_reply_write(req, (size_t)n);
}

void hfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hfs *h = hfs_of(req);
	int err = 0;

	if (hfs_virtual_fh(req, ino)) {
		hfs_vflush(req, fi);
		return;
	}
	struct hfs_file *f = hfs_fh(fi);
	/* Closing a duplicate reports deferred write errors of file systems
	 * that have them (NFS); without a spare descriptor, skip it. */
	int dup_fd = dup(f->fd);
	if (dup_fd >= 0 && close(dup_fd))
		err = errno;
	hfs_file_report(h, f);
	fuse_reply_err(req, err);
}

void hfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hfs *h = hfs_of(req);

	if (hfs_virtual_fh(req, ino)) {
		hfs_vrelease(req, fi);
		return;
	}
	struct hfs_file *f = hfs_fh(fi);
	hfs_file_report(h, f);
	hfs_file_free(h, f);
	fuse_reply_err(req, 0);
}

void hfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	       struct fuse_file_info *fi)
{
	if (hfs_virtual_fh(req, ino)) {
		fuse_reply_err(req, 0);
		return;
	}
	struct hfs_file *f = hfs_fh(fi);
	int rc = datasync ? fdatasync(f->fd) : fsync(f->fd);
	if (!rc)
		hfs_file_report(hfs_of(req), f);
	fuse_reply_err(req, rc ? errno : 0);
}

void hfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		   off_t len, struct fuse_file_info *fi)
{
	if (hfs_virtual_fh(req, ino)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	struct hfs_file *f = hfs_fh(fi);
	if (fallocate(f->fd, mode, off, len)) {
		fuse_reply_err(req, errno);
		return;
	}
	hfs_file_whole(f);
	fuse_reply_err(req, 0);
}

void hfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			 struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			 off_t off_out, struct fuse_file_info *fi_out,
			 size_t len, int flags)
{
	if (hfs_virtual_fh(req, ino_in) || hfs_virtual_fh(req, ino_out)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	struct hfs_file *out = hfs_fh(fi_out);
	ssize_t n = copy_file_range(hfs_fh(fi_in)->fd, &off_in, out->fd, &off_out,
				    len, (unsigned int)flags);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	hfs_file_whole(out);
	fuse_reply_write(req, (size_t)n);
}

void hfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
	       struct fuse_file_info *fi)
{
	if (hfs_virtual_fh(req, ino)) {
		hfs_vlseek(req, off, whence, fi);
		return;
	}
	struct hfs *h = hfs_of(req);
	/* With the writeback cache, data written through the mount may still
	 * be in the kernel's dirty pages, where the backing file cannot see
	 * it (a SEEK_DATA would answer ENXIO and make cp skip real data).
	 * Invalidating the range writes those pages back first (the kernel
	 * launders dirty pages, served by other workers). Not a related
	 * operation of lseek in the kernel's sense: no deadlock. */
	if ((whence == SEEK_DATA || whence == SEEK_HOLE) &&
	    atomic_load_explicit(&h->writeback, memory_order_relaxed))
		fuse_lowlevel_notify_inval_inode(h->se, ino, off, 0);
	off_t res = lseek(hfs_fh(fi)->fd, off, whence);
	if (res < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}
