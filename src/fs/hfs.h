/* hfs: internals of the passthrough mount (see fs.h for the contract).
 *
 * Pieces, one file each:
 *   inode.c   inode table: (st_dev, st_ino) -> struct hfs_inode, lookup counts
 *   notify.c  backing paths of inodes, observer calls
 *   vtree.c   the virtual tree under ".hermes": vpath -> inode, providers,
 *             lookup/attributes/listings, open/write/release
 *   vpark.c   reads and closes of virtual files that wait (-EAGAIN): parked,
 *             retried on fs_vwake, ended by interrupts and by exit
 *   vfile.c   the static files (struct fs_vfile) as a provider
 *   dir.c     readdir(plus), statelessly; opendir/releasedir/fsyncdir
 *   file.c    open/create/read/write/flush/release and the other handle ops
 *   ops.c     entries and attributes (lookup, setattr, mkdir, rename, xattrs..)
 *             and the one table of FUSE operations
 *   fs.c      fs_run: options, session, mount, loop, exit
 *
 * Node ids given to the kernel are pointers to struct hfs_inode (the root is
 * FUSE_ROOT_ID). Real inodes are reference counted: one reference per lookup
 * the kernel was told of (released by forget) and one per open handle.
 * Virtual inodes (".hermes" and everything under it, struct hfs_vnode in
 * vtree.c) live as long as the mount and ignore lookup counts.
 */
#ifndef HERMES_HFS_H
#define HERMES_HFS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "buf.h"
#include "fs.h"

enum hfs_kind {
	HFS_REAL,  /* a file of the backing tree (also the root) */
	HFS_VDIR,  /* a virtual directory: ".hermes" or one under it */
	HFS_VFILE, /* a virtual file */
};

struct hfs_inode {
	struct hfs_inode *hnext; /* hash chain; protected by hfs_table.lock */
	uint64_t refs;           /* protected by hfs_table.lock */
	dev_t dev;               /* immutable */
	ino_t ino;               /* immutable */
	int fd;                  /* O_PATH, immutable; closed when refs drops to 0 */
	enum hfs_kind kind;      /* immutable */
};

struct hfs_table {
	pthread_mutex_t lock;
	struct hfs_inode **slots; /* nslots chains; protected by lock */
	size_t nslots;            /* power of two; protected by lock */
	size_t count;             /* protected by lock */
};

struct hfs {
	struct hfs_inode root;   /* FUSE_ROOT_ID; never freed */
	struct hfs_inode *vdir;  /* ".hermes"; owned by vt */
	struct hfs_vtree *vt;    /* the virtual tree (vtree.c) */
	struct hfs_table table;
	char *backing;           /* realpath of LOCALDIR */
	size_t backing_len;
	char *mountpoint;        /* realpath of MOUNTPOINT */
	struct fs_observer obs;
	double timeout;
	bool debug;
	atomic_bool writeback;   /* set once by init, before any other request */
	atomic_bool no_opendir;  /* idem: the kernel can do without opendir */
	atomic_bool warned_long; /* the "path too long" warning was given */
	struct timespec started; /* times of the virtual entries */
	uid_t uid;
	gid_t gid;
	struct fuse_session *se;
	pthread_mutex_t files_lock;
	struct hfs_file *files;  /* open real files; protected by files_lock */
};

/* What a handle changed since its last report: nothing, a byte range
 * (bounding, [lo, hi); lo == hi: only times), or the whole file. */
struct hfs_dirt {
	bool dirty;
	bool whole;
	uint64_t lo, hi;
};

/* A handle on a real file: fi->fh. */
struct hfs_file {
	int fd;
	pthread_mutex_t lock;    /* guards dirt: writes come from several workers */
	struct hfs_dirt dirt;
	struct hfs_inode *inode; /* holds a reference */
	struct hfs_file *prev, *next; /* hfs.files; protected by hfs.files_lock */
};

static inline struct hfs *hfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline struct hfs_inode *hfs_inode_of(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &hfs_of(req)->root;
	return (struct hfs_inode *)(uintptr_t)ino;
}

static inline fuse_ino_t hfs_id(const struct hfs *h, const struct hfs_inode *in)
{
	return in == &h->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

static inline bool hfs_is_vname(const struct hfs *h, const struct hfs_inode *dir,
				const char *name)
{
	return dir == &h->root && !strcmp(name, FS_VIRTUAL_DIR);
}

/* True if creating/removing/renaming NAME in DIR must be refused because it
 * touches the virtual directory; *err is set to the errno to reply. */
bool hfs_virtual_target(const struct hfs *h, const struct hfs_inode *dir,
			const char *name, int *err);

/* inode.c */
int hfs_table_init(struct hfs_table *t);
void hfs_table_destroy(struct hfs_table *t);
/* Find or insert the inode for st (consumes fd: kept or closed); one reference
 * is taken. Returns 0 or -errno (fd closed). */
int hfs_table_intern(struct hfs_table *t, const struct stat *st, int fd,
		     struct hfs_inode **out);
/* The node id of a known inode, or 0 (no reference taken). */
fuse_ino_t hfs_table_find_id(struct hfs_table *t, dev_t dev, ino_t ino);
void hfs_inode_ref(struct hfs *h, struct hfs_inode *in);
void hfs_inode_unref(struct hfs *h, struct hfs_inode *in, uint64_t n);

/* ops.c */
/* Look NAME up in DIR and fill e (a reference is taken for real inodes).
 * Returns 0 or an errno value. */
int hfs_lookup_entry(struct hfs *h, struct hfs_inode *dir, const char *name,
		     struct fuse_entry_param *e);
/* Reply an entry, dropping the reference taken for it if the reply fails. */
void hfs_reply_entry(fuse_req_t req, struct fuse_entry_param *e);
extern const struct fuse_lowlevel_ops hfs_ops;

/* notify.c */
void hfs_notify_changed(struct hfs *h, struct hfs_inode *dir, const char *name);
void hfs_notify_inode(struct hfs *h, struct hfs_inode *in);
/* Report what a handle changed: written(range) or changed() (see fs.h). */
void hfs_notify_dirt(struct hfs *h, struct hfs_inode *in, const struct hfs_dirt *d);
void hfs_notify_removed(struct hfs *h, struct hfs_inode *dir, const char *name);
void hfs_notify_renamed(struct hfs *h, struct hfs_inode *odir, const char *oname,
			struct hfs_inode *ndir, const char *nname);
/* "/proc/self/fd/N" for fd into buf (at least 32 bytes). */
const char *hfs_proc_path(int fd, char *buf, size_t size);

/* vtree.c */
/* A handle on an open virtual file: fi->fh. */
struct hfs_vhandle {
	const struct fs_vops *ops;      /* the owning provider; immutable */
	void *fh;                       /* the provider's handle; immutable */
	struct hfs_inode *in;           /* immutable */
	struct hfs_vhandle *prev, *next; /* open handles; protected by the vtree lock */
};
/* Set up h->vt and h->vdir from o's static files and providers: 0, or
 * -errno with err naming the bad entry. */
int hfs_vinit(struct hfs *h, const struct fs_options *o, struct buf *err);
/* After the loop and hfs_vpark_stop: release handles still open, free. */
void hfs_vdestroy(struct hfs *h);
int hfs_vlookup(struct hfs *h, struct hfs_inode *dir, const char *name,
		struct fuse_entry_param *e);
/* Attributes of a virtual inode: 0 or an errno value (ENOENT: it is gone). */
int hfs_vattr(struct hfs *h, struct hfs_inode *in, struct stat *st);
void hfs_vsetattr(fuse_req_t req, struct hfs_inode *in, int valid);
/* The listing of a virtual directory, "." and ".." first. */
struct hfs_ventry {
	char *name;
	ino_t ino;
	unsigned char type; /* DT_DIR, DT_REG */
};
struct hfs_vlisting {
	struct hfs_ventry *v;
	size_t n;
};
int hfs_vlist(struct hfs *h, struct hfs_inode *dir, struct hfs_vlisting *l); /* 0 or -errno */
void hfs_vlisting_free(struct hfs_vlisting *l);
void hfs_vopen(fuse_req_t req, struct hfs_inode *in, struct fuse_file_info *fi);
void hfs_vwrite(fuse_req_t req, struct fuse_bufvec *in, off_t off,
		struct fuse_file_info *fi);
void hfs_vrelease(fuse_req_t req, struct fuse_file_info *fi);
void hfs_vlseek(fuse_req_t req, off_t off, int whence, struct fuse_file_info *fi);

/* vpark.c */
void hfs_vread(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi);
void hfs_vflush(fuse_req_t req, struct fuse_file_info *fi);
/* Start the retry thread (before the loop): 0 or -errno. */
int hfs_vpark_start(void);
/* After the loop: fail what is parked (ENOTCONN), stop the thread. */
void hfs_vpark_stop(void);

/* vfile.c */
/* The static files as a provider; *out lives until hfs_vstatic_free.
 * 0, or -errno with err naming a bad name. */
int hfs_vstatic_new(const struct fs_vfile *vf, size_t n, struct fs_vops *out,
		    struct buf *err);
/* Waits for the slow open_fns still running, then frees. */
void hfs_vstatic_free(struct fs_vops *ops);

/* dir.c */
void hfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void hfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi);
void hfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void hfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void hfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi);

/* file.c */
/* Clear this thread's umask (private fs_struct) before creating files. */
void hfs_thread_umask(void);
void hfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void hfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, struct fuse_file_info *fi);
void hfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	      struct fuse_file_info *fi);
void hfs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
		   off_t off, struct fuse_file_info *fi);
void hfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void hfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void hfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	       struct fuse_file_info *fi);
void hfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		   off_t len, struct fuse_file_info *fi);
void hfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			 struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			 off_t off_out, struct fuse_file_info *fi_out,
			 size_t len, int flags);
void hfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
	       struct fuse_file_info *fi);
/* Note that the times of the real file open as fi changed (no bytes),
 * reported with its writes (at flush, fsync or release). */
void hfs_file_mark_times(struct fuse_file_info *fi);
/* fs_report_open_files for h. */
void hfs_report_open_files(struct hfs *h);

#endif
