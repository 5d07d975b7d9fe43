/* ops.c: entry and attribute operations, and the table of FUSE operations.
 *
 * Every operation works on the backing file through the O_PATH descriptor of
 * its inode (or of its parent directory and a name), and replies with the
 * errno of the failing system call. A successful change is reported to the
 * observer before the reply, so that when a system call on the mount
 * returns, the sync engine already knows.
 */
#include "hfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Creating NAME in DIR: refused inside the virtual directory, and ".hermes"
 * at the root already exists. */
static bool hfs_refuse_create(const struct hfs *h, const struct hfs_inode *dir,
			      const char *name, int *err)
{
	if (dir->kind == HFS_VFILE) {
		*err = ENOTDIR;
		return true;
	}
	if (dir->kind == HFS_VDIR) {
		*err = EPERM;
		return true;
	}
	if (hfs_is_vname(h, dir, name)) {
		*err = EEXIST;
		return true;
	}
	return false;
}

bool hfs_virtual_target(const struct hfs *h, const struct hfs_inode *dir,
			const char *name, int *err)
{
	if (dir->kind != HFS_REAL || hfs_is_vname(h, dir, name)) {
		*err = EPERM;
		return true;
	}
	return false;
}

int hfs_lookup_entry(struct hfs *h, struct hfs_inode *dir, const char *name,
		     struct fuse_entry_param *e)
{
	struct hfs_inode *in;

	memset(e, 0, sizeof(*e));
	if (dir->kind != HFS_REAL || hfs_is_vname(h, dir, name))
		return hfs_vlookup(h, dir, name, e);
	e->attr_timeout = h->timeout;
	e->entry_timeout = h->timeout;
	int fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		int err = errno;
		close(fd);
		return err;
	}
	int rc = hfs_table_intern(&h->table, &e->attr, fd, &in);
	if (rc)
		return -rc;
	e->ino = hfs_id(h, in);
	return 0;
}

void hfs_reply_entry(fuse_req_t req, struct fuse_entry_param *e)
{
	struct hfs *h = hfs_of(req);
	fuse_ino_t ino = e->ino;

	if (fuse_reply_entry(req, e) && ino)
		hfs_inode_unref(h, hfs_inode_of(req, ino), 1);
}

static void hfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct hfs *h = hfs_of(req);
	struct fuse_entry_param e;

	struct hfs_inode *dir = hfs_inode_of(req, parent);
	int err = hfs_lookup_entry(h, dir, name, &e);
	if (err == ENOENT && dir->kind == HFS_REAL) {
		/* A negative entry: compilers and make probe many missing names. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = h->timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	hfs_reply_entry(req, &e);
}

static void hfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	hfs_inode_unref(hfs_of(req), hfs_inode_of(req, ino), nlookup);
	fuse_reply_none(req);
}

static void hfs_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	struct hfs *h = hfs_of(req);

	for (size_t i = 0; i < count; i++)
		hfs_inode_unref(h, hfs_inode_of(req, forgets[i].ino),
				forgets[i].nlookup);
	fuse_reply_none(req);
}

static void hfs_reply_stat(fuse_req_t req, struct hfs_inode *in)
{
	struct hfs *h = hfs_of(req);
	struct stat st;

	if (in->kind != HFS_REAL) { /* uncached: names under .hermes come and go */
		int err = hfs_vattr(h, in, &st);
		if (err)
			fuse_reply_err(req, err);
		else
			fuse_reply_attr(req, &st, 0);
		return;
	}
	if (fstatat(in->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_attr(req, &st, h->timeout);
}

static void hfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	hfs_reply_stat(req, hfs_inode_of(req, ino));
}

static int hfs_fh_fd(struct fuse_file_info *fi)
{
	return ((struct hfs_file *)(uintptr_t)fi->fh)->fd;
}

static int hfs_set_mode(struct hfs_inode *in, struct fuse_file_info *fi, mode_t mode)
{
	char proc[32];

	if (fi)
		return fchmod(hfs_fh_fd(fi), mode) ? errno : 0;
	return chmod(hfs_proc_path(in->fd, proc, sizeof(proc)), mode) ? errno : 0;
}

static int hfs_set_owner(struct hfs_inode *in, const struct stat *attr, int valid)
{
	uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

	if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		return errno;
	return 0;
}

static int hfs_set_size(struct hfs_inode *in, struct fuse_file_info *fi, off_t size)
{
	char proc[32];

	if (fi)
		return ftruncate(hfs_fh_fd(fi), size) ? errno : 0;
	return truncate(hfs_proc_path(in->fd, proc, sizeof(proc)), size) ? errno : 0;
}

static int hfs_set_times(struct hfs_inode *in, struct fuse_file_info *fi,
			 const struct stat *attr, int valid)
{
	struct timespec tv[2] = {
		{ .tv_nsec = UTIME_OMIT },
		{ .tv_nsec = UTIME_OMIT },
	};
	char proc[32];

	if (valid & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (valid & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (fi)
		return futimens(hfs_fh_fd(fi), tv) ? errno : 0;
	/* AT_EMPTY_PATH on the O_PATH descriptor also works for symlinks
	 * (touch -h); older kernels refuse it, then go through /proc. */
	if (!utimensat(in->fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		return 0;
	if (errno != EINVAL)
		return errno;
	if (utimensat(AT_FDCWD, hfs_proc_path(in->fd, proc, sizeof(proc)), tv, 0))
		return errno;
	return 0;
}

static int hfs_apply_attr(struct hfs_inode *in, const struct stat *attr, int valid,
			  struct fuse_file_info *fi)
{
	int err = 0;

	if (valid & FUSE_SET_ATTR_MODE)
		err = hfs_set_mode(in, fi, attr->st_mode);
	if (!err && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		err = hfs_set_owner(in, attr, valid);
	if (!err && (valid & FUSE_SET_ATTR_SIZE))
		err = hfs_set_size(in, fi, attr->st_size);
	if (!err && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
			      FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
		err = hfs_set_times(in, fi, attr, valid);
	return err;
}

static void hfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int valid, struct fuse_file_info *fi)
{
	struct hfs *h = hfs_of(req);
	struct hfs_inode *in = hfs_inode_of(req, ino);

	if (in->kind != HFS_REAL) {
		hfs_vsetattr(req, in, valid);
		return;
	}
	int err = hfs_apply_attr(in, attr, valid, fi);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	/* Times set through a handle are the writeback cache flushing the
	 * times of writes: reported with those writes, at close. */
	if (fi && !(valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
			     FUSE_SET_ATTR_SIZE)))
		hfs_file_mark_times(fi);
	else
		hfs_notify_inode(h, in);
	hfs_reply_stat(req, in);
}

static void hfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct hfs_inode *in = hfs_inode_of(req, ino);
	char buf[PATH_MAX + 1];

	if (in->kind != HFS_REAL) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	ssize_t n = readlinkat(in->fd, "", buf, sizeof(buf));
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((size_t)n == sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* mknod, mkdir and symlink: make the node, look it up, report, reply. */
static void hfs_make(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev, const char *link)
{
	struct hfs *h = hfs_of(req);
	struct hfs_inode *dir = hfs_inode_of(req, parent);
	struct fuse_entry_param e;
	int err, rc;

	if (hfs_refuse_create(h, dir, name, &err)) {
		fuse_reply_err(req, err);
		return;
	}
	hfs_thread_umask();
	if (link)
		rc = symlinkat(link, dir->fd, name);
	else if (S_ISDIR(mode))
		rc = mkdirat(dir->fd, name, mode & 07777);
	else
		rc = mknodat(dir->fd, name, mode, rdev);
	if (rc) {
		fuse_reply_err(req, errno);
		return;
	}
	err = hfs_lookup_entry(h, dir, name, &e);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	hfs_notify_changed(h, dir, name);
	hfs_reply_entry(req, &e);
}

static void hfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	hfs_make(req, parent, name, mode, rdev, NULL);
}

static void hfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode)
{
	hfs_make(req, parent, name, S_IFDIR | mode, 0, NULL);
}

static void hfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			const char *name)
{
	hfs_make(req, parent, name, S_IFLNK, 0, link);
}

static void hfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		     const char *newname)
{
	struct hfs *h = hfs_of(req);
	struct hfs_inode *in = hfs_inode_of(req, ino);
	struct hfs_inode *dir = hfs_inode_of(req, newparent);
	struct fuse_entry_param e;
	char proc[32];
	int err;

	if (in->kind != HFS_REAL) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (hfs_refuse_create(h, dir, newname, &err)) {
		fuse_reply_err(req, err);
		return;
	}
	if (linkat(AT_FDCWD, hfs_proc_path(in->fd, proc, sizeof(proc)), dir->fd,
		   newname, AT_SYMLINK_FOLLOW)) {
		fuse_reply_err(req, errno);
		return;
	}
	err = hfs_lookup_entry(h, dir, newname, &e);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	hfs_notify_changed(h, dir, newname);
	hfs_reply_entry(req, &e);
}

static void hfs_remove(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct hfs *h = hfs_of(req);
	struct hfs_inode *dir = hfs_inode_of(req, parent);
	int err;

	if (hfs_virtual_target(h, dir, name, &err)) {
		fuse_reply_err(req, err);
		return;
	}
	if (unlinkat(dir->fd, name, flags)) {
		fuse_reply_err(req, errno);
		return;
	}
	hfs_notify_removed(h, dir, name);
	fuse_reply_err(req, 0);
}

static void hfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	hfs_remove(req, parent, name, 0);
}

static void hfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	hfs_remove(req, parent, name, AT_REMOVEDIR);
}

static void hfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct hfs *h = hfs_of(req);
	struct hfs_inode *odir = hfs_inode_of(req, parent);
	struct hfs_inode *ndir = hfs_inode_of(req, newparent);
	int err;

	if (hfs_virtual_target(h, odir, name, &err) ||
	    hfs_virtual_target(h, ndir, newname, &err)) {
		fuse_reply_err(req, err);
		return;
	}
	if (renameat2(odir->fd, name, ndir->fd, newname, flags)) {
		fuse_reply_err(req, errno);
		return;
	}
	if (flags & RENAME_EXCHANGE) {
		hfs_notify_changed(h, odir, name);
		hfs_notify_changed(h, ndir, newname);
	} else {
		hfs_notify_renamed(h, odir, name, ndir, newname);
	}
	fuse_reply_err(req, 0);
}

static void hfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct hfs *h = hfs_of(req);
	struct hfs_inode *in = hfs_inode_of(req, ino);
	struct statvfs st;

	if (fstatvfs(in->kind == HFS_REAL ? in->fd : h->root.fd, &st)) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_statfs(req, &st);
}

/* getxattr and listxattr: size 0 asks for the size, else for the bytes. */
static void hfs_reply_xattr(fuse_req_t req, ssize_t n, const char *value, size_t size)
{
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, value, (size_t)n);
}

static void hfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct hfs_inode *in = hfs_inode_of(req, ino);
	char proc[32];
	char *value = NULL;

	if (in->kind != HFS_REAL) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (size && !(value = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = getxattr(hfs_proc_path(in->fd, proc, sizeof(proc)), name, value, size);
	hfs_reply_xattr(req, n, value, size);
	free(value);
}

static void hfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct hfs_inode *in = hfs_inode_of(req, ino);
	char proc[32];
	char *value = NULL;

	if (in->kind != HFS_REAL) {
		hfs_reply_xattr(req, 0, NULL, size);
		return;
	}
	if (size && !(value = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = listxattr(hfs_proc_path(in->fd, proc, sizeof(proc)), value, size);
	hfs_reply_xattr(req, n, value, size);
	free(value);
}

static void hfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	struct hfs_inode *in = hfs_inode_of(req, ino);
	char proc[32];

	if (in->kind != HFS_REAL) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (setxattr(hfs_proc_path(in->fd, proc, sizeof(proc)), name, value, size, flags)) {
		fuse_reply_err(req, errno);
		return;
	}
	hfs_notify_inode(hfs_of(req), in);
	fuse_reply_err(req, 0);
}

static void hfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct hfs_inode *in = hfs_inode_of(req, ino);
	char proc[32];

	if (in->kind != HFS_REAL) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (removexattr(hfs_proc_path(in->fd, proc, sizeof(proc)), name)) {
		fuse_reply_err(req, errno);
		return;
	}
	hfs_notify_inode(hfs_of(req), in);
	fuse_reply_err(req, 0);
}

static void hfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct hfs *h = userdata;

	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		atomic_store(&h->writeback, true);
	}
	/* Read replies are spliced from the backing file (no copy through
	 * user space; measured: less daemon CPU than pread + writev). Requests
	 * are read plainly: splicing them costs a second system call for every
	 * request that carries no data (lookups, getattr), which are most. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_MOVE);
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		atomic_store(&h->no_opendir, true);
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* The daemon may hold CAP_FSETID (root): let the kernel clear
	 * setuid/setgid bits on write and chown, with a setattr. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* Read-ahead: the kernel keeps the smaller of this and what the
	 * mount's device allows, which fs.c raises (as root) before init. */
	conn->max_readahead = 512 * 1024;
	/* Readahead and writeback requests in flight at once. */
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

const struct fuse_lowlevel_ops hfs_ops = {
	.init = hfs_init,
	.lookup = hfs_lookup,
	.forget = hfs_forget,
	.forget_multi = hfs_forget_multi,
	.getattr = hfs_getattr,
	.setattr = hfs_setattr,
	.readlink = hfs_readlink,
	.mknod = hfs_mknod,
	.mkdir = hfs_mkdir,
	.unlink = hfs_unlink,
	.rmdir = hfs_rmdir,
	.symlink = hfs_symlink,
	.rename = hfs_rename,
	.link = hfs_link,
	.open = hfs_open,
	.create = hfs_create,
	.read = hfs_read,
	.write_buf = hfs_write_buf,
	.flush = hfs_flush,
	.release = hfs_release,
	.fsync = hfs_fsync,
	.opendir = hfs_opendir,
	.readdir = hfs_readdir,
	.readdirplus = hfs_readdirplus,
	.releasedir = hfs_releasedir,
	.fsyncdir = hfs_fsyncdir,
	.statfs = hfs_statfs,
	.setxattr = hfs_setxattr,
	.getxattr = hfs_getxattr,
	.listxattr = hfs_listxattr,
	.removexattr = hfs_removexattr,
	.fallocate = hfs_fallocate,
	.copy_file_range = hfs_copy_file_range,
	.lseek = hfs_lseek,
};
