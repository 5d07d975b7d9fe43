/* vtree.c: the virtual tree under MOUNTPOINT/.hermes (contract in fs.h).
 *
 * Every vpath the kernel is told of gets a struct hfs_vnode, kept in a hash
 * table by vpath until the mount ends, so its node id and inode number stay
 * the same while the mount lives. The table never answers "does it exist":
 * each lookup, getattr, listing and open asks the providers again (no
 * provider state is cached here), and the kernel is told to cache nothing
 * (timeouts 0), so names under .hermes appear and vanish as providers say.
 *
 * A vnode's kind (directory or file) is fixed: should a vpath change kind,
 * a fresh vnode replaces it in the table, and the old one answers ENOENT.
 *
 * Directory listings: the kernel keeps a directory's listing (it caches
 * readdir once opendir is answered ENOSYS) until it sees the directory's
 * mtime change. So a virtual directory whose provider gives no mtime shows
 * the time its names were last seen to change: each getattr and lookup of
 * it lists it and compares a hash of the names with the last one.
 *
 * Lock: vt->lock protects the table, the list of all vnodes and the list of
 * open handles. Provider callbacks are never called under it.
 */
#include "hfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Inode numbers shown for the virtual entries (st_ino); far from real ones. */
#define HFS_VINO_BASE 0x7fffffffff000000ULL
#define HFS_VBUCKETS 256

struct hfs_vnode {
	struct hfs_inode in;     /* first: the node id is the vnode's address */
	struct hfs_vnode *hnext; /* bucket chain; protected by vt->lock */
	struct hfs_vnode *anext; /* every vnode ever made; protected by vt->lock */
	bool listed;             /* directories: names_hash is set; protected by vt->lock */
	uint64_t names_hash;     /* protected by vt->lock */
	struct timespec names_changed; /* protected by vt->lock */
	char vpath[];            /* immutable */
};

struct hfs_vtree {
	pthread_mutex_t lock;
	struct hfs_vnode *buckets[HFS_VBUCKETS]; /* protected by lock */
	struct hfs_vnode *all;                   /* protected by lock */
	uint64_t next_ino;                       /* protected by lock */
	struct hfs_vhandle *handles;             /* open ones; protected by lock */
	struct fs_vops *providers;               /* immutable: static files, then o->vops */
	size_t nproviders;
	bool has_static;                         /* providers[0] is the static layer */
};

struct fs_vnames {
	char **v;
	size_t n;
	size_t cap;
};

int fs_vnames_add(struct fs_vnames *names, const char *name)
{
	size_t len = strlen(name);

	if (!len || len > NAME_MAX || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return -EINVAL;
	if (names->n == names->cap) {
		size_t cap = names->cap ? names->cap * 2 : 16;
		char **v = realloc(names->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		names->v = v;
		names->cap = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	names->v[names->n++] = copy;
	return 0;
}

static void hfs_vnames_free(struct fs_vnames *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
	*names = (struct fs_vnames){ 0 };
}

static struct hfs_vnode *hfs_vnode(struct hfs_inode *in)
{
	return (struct hfs_vnode *)in;
}

/* FNV-1a of a string and its terminating NUL, continuing from x. */
static uint64_t hfs_fnv(uint64_t x, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	do
		x = (x ^ *p) * 1099511628211ULL;
	while (*p++);
	return x;
}

#define HFS_FNV_INIT 1469598103934665603ULL

static size_t hfs_vhash(const char *vpath)
{
	return (size_t)(hfs_fnv(HFS_FNV_INIT, vpath) % HFS_VBUCKETS);
}

/* The vnode of VPATH with kind DIR, made on first use; NULL when out of
 * memory. */
static struct hfs_vnode *hfs_vnode_get(struct hfs_vtree *vt, const char *vpath, bool dir)
{
	enum hfs_kind kind = dir ? HFS_VDIR : HFS_VFILE;
	size_t b = hfs_vhash(vpath);
	struct hfs_vnode **pp, *vn;

	pthread_mutex_lock(&vt->lock);
	for (pp = &vt->buckets[b]; (vn = *pp); pp = &vn->hnext)
		if (!strcmp(vn->vpath, vpath))
			break;
	if (vn && vn->in.kind == kind)
		goto out;
	if (vn)
		*pp = vn->hnext; /* changed kind: replaced (kept in vt->all) */
	size_t len = strlen(vpath);
	vn = calloc(1, sizeof(*vn) + len + 1);
	if (!vn)
		goto out;
	memcpy(vn->vpath, vpath, len + 1);
	vn->in.kind = kind;
	vn->in.fd = -1;
	vn->in.ino = (ino_t)(HFS_VINO_BASE + vt->next_ino++);
	vn->hnext = vt->buckets[b];
	vt->buckets[b] = vn;
	vn->anext = vt->all;
	vt->all = vn;
out:
	pthread_mutex_unlock(&vt->lock);
	return vn;
}

/* The provider owning VPATH ("" excluded: the fs's own) and its attributes:
 * the provider, or NULL with *err an errno value. */
static const struct fs_vops *hfs_vresolve(struct hfs_vtree *vt, const char *vpath,
					  struct fs_vstat *st, int *err)
{
	for (size_t i = 0; i < vt->nproviders; i++) {
		const struct fs_vops *p = &vt->providers[i];
		memset(st, 0, sizeof(*st));
		int rc = p->stat(p->ctx, vpath, st);
		if (rc == 0)
			return p;
		if (rc != -ENOENT) {
			*err = rc < 0 ? -rc : EIO;
			return NULL;
		}
	}
	*err = ENOENT;
	return NULL;
}

static int hfs_vnames(struct hfs_vtree *vt, const char *vpath, const struct fs_vops *owner,
		      struct fs_vnames *names);

/* A directory's mtime when its provider gives none: when its names last
 * changed (see the top of this file). */
static void hfs_vdir_mtime(struct hfs_vtree *vt, struct hfs_vnode *vn,
			   const struct fs_vops *owner, struct fs_vstat *st)
{
	struct fs_vnames names = { 0 };
	uint64_t x = HFS_FNV_INIT;

	if (!st->dir || st->mtime.tv_sec || st->mtime.tv_nsec)
		return;
	if (hfs_vnames(vt, vn->vpath, owner, &names) == 0) {
		for (size_t i = 0; i < names.n; i++)
			x = hfs_fnv(x, names.v[i]);
	}
	hfs_vnames_free(&names);
	pthread_mutex_lock(&vt->lock);
	if (!vn->listed || vn->names_hash != x) {
		vn->listed = true;
		vn->names_hash = x;
		clock_gettime(CLOCK_REALTIME, &vn->names_changed);
	}
	st->mtime = vn->names_changed;
	pthread_mutex_unlock(&vt->lock);
}

/* Attributes of VN now: 0 and *st (with *owner, NULL for ".hermes"), or an
 * errno value; ENOENT also when the vpath changed kind. */
static int hfs_vnode_stat(struct hfs_vtree *vt, struct hfs_vnode *vn,
			  struct fs_vstat *st, const struct fs_vops **owner)
{
	int err = 0;

	*owner = NULL;
	if (!vn->vpath[0]) {
		*st = (struct fs_vstat){ .dir = true, .perm = 0755 };
	} else {
		*owner = hfs_vresolve(vt, vn->vpath, st, &err);
		if (!*owner)
			return err;
		if (st->dir != (vn->in.kind == HFS_VDIR))
			return ENOENT;
	}
	hfs_vdir_mtime(vt, vn, *owner, st);
	return 0;
}

static void hfs_vfill(const struct hfs *h, const struct hfs_vnode *vn,
		      const struct fs_vstat *vs, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = vn->in.ino;
	st->st_uid = h->uid;
	st->st_gid = h->gid;
	st->st_mode = (vs->dir ? S_IFDIR : S_IFREG) | (vs->perm & 07777);
	st->st_nlink = vs->dir ? 2 : 1;
	st->st_size = (off_t)vs->size;
	st->st_blksize = 4096;
	if (vs->mtime.tv_sec || vs->mtime.tv_nsec)
		st->st_atim = st->st_mtim = st->st_ctim = vs->mtime;
	else
		st->st_atim = st->st_mtim = st->st_ctim = h->started;
}

int hfs_vattr(struct hfs *h, struct hfs_inode *in, struct stat *st)
{
	const struct fs_vops *owner;
	struct fs_vstat vs;

	int err = hfs_vnode_stat(h->vt, hfs_vnode(in), &vs, &owner);
	if (!err)
		hfs_vfill(h, hfs_vnode(in), &vs, st);
	return err;
}

/* VPATH of NAME in directory vpath DIR into out (PATH_MAX bytes). */
static int hfs_vjoin(const char *dir, const char *name, char *out)
{
	int n = dir[0] ? snprintf(out, PATH_MAX, "%s/%s", dir, name)
		       : snprintf(out, PATH_MAX, "%s", name);
	return n < 0 || n >= PATH_MAX ? ENAMETOOLONG : 0;
}

/* Entry for VPATH: 0 and e, or an errno value. */
static int hfs_ventry(struct hfs *h, const char *vpath, struct fuse_entry_param *e)
{
	const struct fs_vops *owner;
	struct fs_vstat vs;
	int err = 0;

	owner = hfs_vresolve(h->vt, vpath, &vs, &err);
	if (!owner)
		return err;
	struct hfs_vnode *vn = hfs_vnode_get(h->vt, vpath, vs.dir);
	if (!vn)
		return ENOMEM;
	hfs_vdir_mtime(h->vt, vn, owner, &vs);
	hfs_vfill(h, vn, &vs, &e->attr);
	e->ino = (fuse_ino_t)(uintptr_t)&vn->in;
	return 0;
}

int hfs_vlookup(struct hfs *h, struct hfs_inode *dir, const char *name,
		struct fuse_entry_param *e)
{
	char vpath[PATH_MAX];

	memset(e, 0, sizeof(*e));
	if (dir->kind == HFS_REAL) { /* the root's ".hermes" (hfs_is_vname held) */
		hfs_vattr(h, h->vdir, &e->attr);
		e->ino = (fuse_ino_t)(uintptr_t)h->vdir;
		e->entry_timeout = h->timeout;
		return 0;
	}
	if (dir->kind == HFS_VFILE)
		return ENOTDIR;
	int err = hfs_vjoin(hfs_vnode(dir)->vpath, name, vpath);
	if (!err)
		err = hfs_ventry(h, vpath, e);
	return err; /* timeouts 0: nothing under .hermes is cached */
}

/* Truncation and times of a writable virtual file are accepted (and do
 * nothing): `echo cmd > .hermes/run` and touch work. Nothing else changes. */
void hfs_vsetattr(fuse_req_t req, struct hfs_inode *in, int valid)
{
	const int allowed = FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
			    FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			    FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME;
	struct hfs *h = hfs_of(req);
	struct stat st;

	int err = hfs_vattr(h, in, &st);
	if (!err && (in->kind != HFS_VFILE || !(st.st_mode & 0222) || (valid & ~allowed)))
		err = EPERM;
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, 0);
}

static int hfs_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of directory VPATH from its owner (all providers for ""), sorted,
 * without duplicates. */
static int hfs_vnames(struct hfs_vtree *vt, const char *vpath, const struct fs_vops *owner,
		      struct fs_vnames *names)
{
	int rc = 0;

	if (owner) {
		rc = owner->list(owner->ctx, vpath, names);
	} else {
		for (size_t i = 0; i < vt->nproviders && !rc; i++)
			rc = vt->providers[i].list(vt->providers[i].ctx, "", names);
	}
	if (rc)
		return rc < 0 ? rc : -EIO;
	if (names->n > 1) /* v is NULL while empty */
		qsort(names->v, names->n, sizeof(*names->v), hfs_cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < names->n; i++) {
		if (k && !strcmp(names->v[k - 1], names->v[i]))
			free(names->v[i]);
		else
			names->v[k++] = names->v[i];
	}
	names->n = k;
	return 0;
}

void hfs_vlisting_free(struct hfs_vlisting *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	*l = (struct hfs_vlisting){ 0 };
}

static int hfs_vlisting_add(struct hfs_vlisting *l, const char *name, ino_t ino,
			    bool dir)
{
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	l->v[l->n++] = (struct hfs_ventry){
		.name = copy, .ino = ino, .type = dir ? DT_DIR : DT_REG,
	};
	return 0;
}

/* The inode number of DIR's parent. */
static ino_t hfs_vparent_ino(struct hfs *h, struct hfs_vnode *dir)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(dir->vpath, '/');

	if (!dir->vpath[0])
		return h->root.ino;
	size_t len = slash ? (size_t)(slash - dir->vpath) : 0;
	memcpy(parent, dir->vpath, len);
	parent[len] = '\0';
	struct hfs_vnode *p = hfs_vnode_get(h->vt, parent, true);
	return p ? p->in.ino : dir->in.ino;
}

/* Entries for NAMES in DIR: those that vanished meanwhile are left out. */
static int hfs_vlisting_fill(struct hfs *h, struct hfs_vnode *dir,
			     const struct fs_vnames *names, struct hfs_vlisting *l)
{
	char vpath[PATH_MAX];
	struct fuse_entry_param e;
	int rc = hfs_vlisting_add(l, ".", dir->in.ino, true);

	if (!rc)
		rc = hfs_vlisting_add(l, "..", hfs_vparent_ino(h, dir), true);
	for (size_t i = 0; i < names->n && !rc; i++) {
		int err = hfs_vjoin(dir->vpath, names->v[i], vpath);
		if (!err)
			err = hfs_ventry(h, vpath, &e);
		if (err == ENOENT)
			continue;
		if (err)
			rc = -err;
		else
			rc = hfs_vlisting_add(l, names->v[i], e.attr.st_ino,
					      S_ISDIR(e.attr.st_mode));
	}
	return rc;
}

int hfs_vlist(struct hfs *h, struct hfs_inode *dir, struct hfs_vlisting *l)
{
	struct fs_vnames names = { 0 };
	const struct fs_vops *owner;
	struct fs_vstat vs;

	*l = (struct hfs_vlisting){ 0 };
	int rc = -hfs_vnode_stat(h->vt, hfs_vnode(dir), &vs, &owner);
	if (!rc && !vs.dir)
		rc = -ENOTDIR;
	if (!rc)
		rc = hfs_vnames(h->vt, hfs_vnode(dir)->vpath, owner, &names);
	if (!rc && !(l->v = calloc(names.n + 2, sizeof(*l->v))))
		rc = -ENOMEM;
	if (!rc)
		rc = hfs_vlisting_fill(h, hfs_vnode(dir), &names, l);
	hfs_vnames_free(&names);
	if (rc)
		hfs_vlisting_free(l);
	return rc;
}

static struct hfs_vhandle *hfs_vh(struct fuse_file_info *fi)
{
	return (struct hfs_vhandle *)(uintptr_t)fi->fh;
}

static void hfs_vh_link(struct hfs_vtree *vt, struct hfs_vhandle *vh)
{
	pthread_mutex_lock(&vt->lock);
	vh->next = vt->handles;
	if (vh->next)
		vh->next->prev = vh;
	vt->handles = vh;
	pthread_mutex_unlock(&vt->lock);
}

static void hfs_vh_unlink(struct hfs_vtree *vt, struct hfs_vhandle *vh)
{
	pthread_mutex_lock(&vt->lock);
	if (vh->prev)
		vh->prev->next = vh->next;
	else
		vt->handles = vh->next;
	if (vh->next)
		vh->next->prev = vh->prev;
	pthread_mutex_unlock(&vt->lock);
}

static void hfs_vh_release(struct hfs_vhandle *vh)
{
	if (vh->ops->release)
		vh->ops->release(vh->ops->ctx, vh->fh);
	free(vh);
}

void hfs_vopen(fuse_req_t req, struct hfs_inode *in, struct fuse_file_info *fi)
{
	struct hfs *h = hfs_of(req);
	const struct fs_vops *owner;
	struct fs_vstat vs;

	int err = hfs_vnode_stat(h->vt, hfs_vnode(in), &vs, &owner);
	if (!err && vs.dir)
		err = EISDIR;
	struct hfs_vhandle *vh = err ? NULL : calloc(1, sizeof(*vh));
	if (!err && !vh)
		err = ENOMEM;
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	vh->ops = owner;
	vh->in = in;
	int rc = owner->open(owner->ctx, hfs_vnode(in)->vpath, fi->flags, &vh->fh);
	if (rc) {
		free(vh);
		fuse_reply_err(req, rc < 0 ? -rc : EIO);
		return;
	}
	/* Reads go to the provider whatever the size; nothing is cached. */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = owner->flush == NULL;
	fi->fh = (uintptr_t)vh;
	hfs_vh_link(h->vt, vh);
	if (fuse_reply_open(req, fi)) {
		hfs_vh_unlink(h->vt, vh);
		hfs_vh_release(vh);
	}
}

void hfs_vwrite(fuse_req_t req, struct fuse_bufvec *in, off_t off,
		struct fuse_file_info *fi)
{
	struct hfs_vhandle *vh = hfs_vh(fi);
	size_t size = fuse_buf_size(in);

	if (!vh->ops->write) {
		fuse_reply_err(req, EBADF);
		return;
	}
	char *data = malloc(size ? size : 1);
	if (!data) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
	out.buf[0].mem = data;
	ssize_t n = fuse_buf_copy(&out, in, 0);
	if (n >= 0)
		n = vh->ops->write(vh->ops->ctx, vh->fh, data, (size_t)n, off);
	free(data);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

void hfs_vrelease(fuse_req_t req, struct fuse_file_info *fi)
{
	struct hfs_vhandle *vh = hfs_vh(fi);

	hfs_vh_unlink(hfs_of(req)->vt, vh);
	hfs_vh_release(vh);
	fuse_reply_err(req, 0);
}

/* The provider's size is the truth: 0 (unknown) has no data to seek to. */
void hfs_vlseek(fuse_req_t req, off_t off, int whence, struct fuse_file_info *fi)
{
	struct hfs *h = hfs_of(req);
	struct stat st;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	int err = hfs_vattr(h, hfs_vh(fi)->in, &st);
	if (!err && (off < 0 || off >= st.st_size))
		err = ENXIO;
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_lseek(req, whence == SEEK_DATA ? off : st.st_size);
}

static int hfs_vcheck(const struct fs_options *o, struct buf *err)
{
	if (o->nvops && !o->vops) {
		buf_printf(err, "mounting %s: %zu virtual providers but none given",
			   o->mountpoint, o->nvops);
		return -EINVAL;
	}
	for (size_t i = 0; i < o->nvops; i++) {
		if (!o->vops[i].stat || !o->vops[i].list || !o->vops[i].open) {
			buf_printf(err, "mounting %s: virtual provider %zu lacks stat, list or open",
				   o->mountpoint, i);
			return -EINVAL;
		}
	}
	return 0;
}

int hfs_vinit(struct hfs *h, const struct fs_options *o, struct buf *err)
{
	int rc = hfs_vcheck(o, err);
	if (rc)
		return rc;
	struct hfs_vtree *vt = calloc(1, sizeof(*vt));
	if (vt)
		vt->providers = calloc(o->nvops + 1, sizeof(*vt->providers));
	if (!vt || !vt->providers) {
		free(vt);
		buf_printf(err, "mounting %s: %s", o->mountpoint, strerror(ENOMEM));
		return -ENOMEM;
	}
	pthread_mutex_init(&vt->lock, NULL);
	h->vt = vt;
	if (o->nvfiles) {
		rc = hfs_vstatic_new(o->vfiles, o->nvfiles, &vt->providers[0], err);
		if (rc)
			return rc;
		vt->has_static = true;
		vt->nproviders = 1;
	}
	for (size_t i = 0; i < o->nvops; i++)
		vt->providers[vt->nproviders++] = o->vops[i];
	struct hfs_vnode *root = hfs_vnode_get(vt, "", true);
	if (!root) {
		buf_printf(err, "mounting %s: %s", o->mountpoint, strerror(ENOMEM));
		return -ENOMEM;
	}
	h->vdir = &root->in;
	return 0;
}

void hfs_vdestroy(struct hfs *h)
{
	struct hfs_vtree *vt = h->vt;

	if (!vt)
		return;
	/* The connection is gone: no release will come for these. */
	while (vt->handles) {
		struct hfs_vhandle *vh = vt->handles;
		vt->handles = vh->next;
		hfs_vh_release(vh);
	}
	while (vt->all) {
		struct hfs_vnode *vn = vt->all;
		vt->all = vn->anext;
		free(vn);
	}
	if (vt->has_static)
		hfs_vstatic_free(&vt->providers[0]);
	free(vt->providers);
	pthread_mutex_destroy(&vt->lock);
	free(vt);
	h->vt = NULL;
	h->vdir = NULL;
}
