/* Applying a client's changes beneath the root: directories, symlinks,
 * files (whole or delta, via temp file + rename), attributes, deletes,
 * renames. Every path is resolved with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS), then the last component is handled with *at()
 * calls relative to its parent, never by a path string. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "delta.h"
#include "fdio.h"
#include "log.h"
#include "path.h"


static bool is_fatal(int errnum)
{
	return errnum == ENOSPC || errnum == EDQUOT || errnum == EROFS || errnum == EIO;
}

int agent_report(struct agent *a, int errnum, const char *path, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint8_t flags = 0;
	if (is_fatal(errnum)) {
		flags |= ERROR_FATAL;
		a->failed = true;
	}
	if (errnum == EBADMSG)
		flags |= ERROR_RETRY;
	a->errors++;
	/* Bounded, so a flood of failures cannot fill the pipe while the
	 * client is still writing to us. */
	if (a->errors_sent < AGENT_MAX_REPORTED_ERRORS || (flags & ERROR_RETRY)) {
		a->errors_sent++;
		struct enc e;
		wire_begin(&a->w, &e);
		enc_uvar(&e, (uint64_t)errnum);
		enc_u8(&e, flags);
		enc_str(&e, path ? path : "");
		enc_str(&e, msg);
		if (!wire_end(&a->w, &e, MSG_ERROR, 0))
			wire_flush(&a->w);
	}
	return -errnum;
}

int agent_open_beneath(struct agent *a, const char *path, int flags)
{
	return open_beneath(a->root_fd, path, flags);
}

static int parent_of(struct agent *a, const char *path, const char **base)
{
	return dircache_parent(&a->parents, a->root_fd, path, base);
}

/* Paths a client may not touch: our state, and names of our temp files. */
static bool reserved(const char *path)
{
	size_t n = strlen(STATE_DIR);
	if (strncmp(path, STATE_DIR, n) == 0 && (path[n] == '\0' || path[n] == '/'))
		return true;
	return strncmp(path_base(path), AGENT_TMP_PREFIX, strlen(AGENT_TMP_PREFIX)) == 0;
}

/* Record path as it now is on disk, with the content hash we know. */
static int record_now(struct agent *a, int dirfd, const char *base, const char *path,
		      const uint8_t *hash, const char *link)
{
	struct stat st;
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	struct entry e = { .path = (char *)path, .link = (char *)link };
	entry_set_stat(&e, &st);
	if (hash)
		memcpy(e.hash, hash, 16);
	return agent_record(a, &e);
}

static int set_times(int dirfd, const char *base, int64_t mtime_ns)
{
	struct timespec ts[2];
	mtime_spec(ts, mtime_ns);
	return utimensat(dirfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int create_symlink(int dirfd, const char *name, void *target)
{
	return symlinkat(target, dirfd, name) < 0 ? -errno : 0;
}

/* --- files ------------------------------------------------------------ */

void agent_file_abort(struct agent *a)
{
	struct agent_file *f = &a->cur;
	if (f->fd >= 0) {
		close(f->fd);
		unlinkat(f->dirfd, f->tmpname, 0);
	}
	if (f->basis_fd >= 0)
		close(f->basis_fd);
	XXH3_freeState(f->hs);
	memset(f, 0, sizeof(*f));
	f->fd = f->basis_fd = f->dirfd = -1;
}

static int file_fail(struct agent *a, int rc, const char *what)
{
	struct agent_file *f = &a->cur;
	f->err = rc;
	if (f->fd >= 0) {
		close(f->fd);
		unlinkat(f->dirfd, f->tmpname, 0);
		f->fd = -1;
	}
	return agent_report(a, -rc, f->path, "%s %s in %s: %s", what, f->path, a->root_path,
			    strerror(-rc));
}

static int file_write(struct agent *a, const uint8_t *p, size_t n)
{
	struct agent_file *f = &a->cur;
	if (f->err)
		return 0;
	if (f->written + n > f->want.size)
		return file_fail(a, -EBADMSG, "more data than announced for");
	int rc = write_full(f->fd, p, n);
	if (rc)
		return file_fail(a, rc, "writing");
	XXH3_128bits_update(f->hs, p, n);
	f->written += n;
	return 0;
}

static int file_copy(struct agent *a, uint64_t block, uint64_t count)
{
	struct agent_file *f = &a->cur;
	if (f->err)
		return 0;
	if (f->basis_fd < 0)
		return file_fail(a, -EBADMSG, "no old version to patch for");
	int64_t n = delta_copy_blocks(f->basis_fd, f->basis_size, f->block_len, block, count,
				      f->fd, f->hs);
	if (n == -EINVAL || n == -ESTALE || (n >= 0 && f->written + (uint64_t)n > f->want.size))
		return file_fail(a, -EBADMSG, "bad block reference for");
	if (n < 0)
		return file_fail(a, (int)n, "writing");
	f->written += (uint64_t)n;
	return 0;
}

static void account(struct agent *a, struct small_file *list)
{
	while (list) {
		struct small_file *f = list;
		list = f->next;
		if (f->err) {
			agent_report(a, -f->err, f->path, "%s %s in %s: %s", f->what, f->path,
				     a->root_path, strerror(-f->err));
		} else {
			struct entry e = { .path = f->path };
			entry_set_stat(&e, &f->st);
			memcpy(e.hash, f->hash, 16);
			agent_record(a, &e);
		}
		small_file_free(f);
	}
}

void agent_writers_sync(struct agent *a)
{
	if (a->writers)
		account(a, writers_done(a->writers, true));
}

/* A small file whose content came inside MSG_FILE: handed to the writer
 * threads (or installed here if they cannot start). */
static int file_inline(struct agent *a, const struct entry *want, const uint8_t *data, size_t n)
{
	if (a->failed)
		return 0;
	if (reserved(want->path))
		return agent_report(a, EPERM, want->path, "refusing to write %s in %s",
				    want->path, a->root_path);
	if (n != want->size)
		return agent_report(a, EBADMSG, want->path, "size mismatch for %s", want->path);
	int rc = agent_mark_dirty(a);
	if (rc)
		return agent_report(a, -rc, want->path, "marking state for %s: %s", want->path,
				    strerror(-rc));
	struct small_file *f = calloc(1, sizeof(*f));
	if (f) {
		f->path = strdup(want->path);
		f->data = malloc(n ? n : 1);
	}
	if (!f || !f->path || !f->data) {
		small_file_free(f);
		return agent_report(a, ENOMEM, want->path, "out of memory for %s", want->path);
	}
	memcpy(f->data, data, n);
	f->len = n;
	f->mode = want->mode;
	f->mtime_ns = want->mtime_ns;
	memcpy(f->hash, want->hash, 16);
	if (!a->writers)
		a->writers = writers_new(a->root_fd, &a->names, AGENT_WRITER_THREADS);
	if (!a->writers) {
		small_file_install(a->root_fd, &a->names, &a->parents, f);
		account(a, f);
		return 0;
	}
	writers_submit(a->writers, f);
	account(a, writers_done(a->writers, false));
	return 0;
}

static int file_begin(struct agent *a, struct dec *d)
{
	struct agent_file *f = &a->cur;
	char path[PATH_MAX];
	struct entry want = { .path = path, .type = ENTRY_FILE };
	uint32_t block_len = 0;
	dec_path(d, path);
	want.mode = (uint32_t)dec_uvar(d) & 07777;
	want.size = dec_uvar(d);
	want.mtime_ns = dec_svar(d);
	uint8_t kind = dec_u8(d);
	if (kind == FILE_DELTA)
		block_len = (uint32_t)dec_uvar(d);
	if (kind == FILE_INLINE)
		dec_fixed(d, want.hash, 16);
	if (d->err || kind > FILE_INLINE || (kind == FILE_DELTA && block_len == 0))
		return -EPROTO;
	if (kind == FILE_INLINE) {
		size_t n;
		const uint8_t *p = dec_rest(d, &n);
		return file_inline(a, &want, p, n);
	}

	/* A streamed file: earlier inline files must be in place first. */
	agent_writers_sync(a);
	agent_file_abort(a);
	f->active = true;
	memcpy(f->path, path, strlen(path) + 1);
	f->want = want;
	f->want.path = f->path;
	f->block_len = block_len;
	if (a->failed) {
		f->err = -ECANCELED;
		return 0;
	}
	if (reserved(f->path))
		return file_fail(a, -EPERM, "refusing to write");
	f->hs = XXH3_createState();
	if (!f->hs)
		return file_fail(a, -ENOMEM, "writing");
	XXH3_128bits_reset(f->hs);
	const char *base;
	int dirfd = parent_of(a, f->path, &base);
	if (dirfd < 0)
		return file_fail(a, dirfd, "cannot reach the directory of");
	/* Borrowed from the parent cache: nothing else resolves a path
	 * until this file's FEND. */
	f->dirfd = dirfd;
	int rc = agent_mark_dirty(a);
	if (rc)
		return file_fail(a, rc, "marking state for");
	f->fd = make_temp(&a->names, f->dirfd, f->tmpname, create_file_mode, &f->want.mode);
	if (f->fd < 0) {
		rc = f->fd;
		f->fd = -1;
		return file_fail(a, rc, "creating a temp file for");
	}
	if (kind == FILE_DELTA) {
		f->basis_fd = agent_open_beneath(a, f->path, O_RDONLY);
		struct stat st;
		if (f->basis_fd < 0 || fstat(f->basis_fd, &st) < 0)
			return file_fail(a, -EBADMSG, "no old version to patch for");
		f->basis_size = (uint64_t)st.st_size;
	}
	return 0;
}

/* MSG_FEND: the client hashed the content as it sent it; ours must match. */
static int file_end(struct agent *a, struct dec *d)
{
	struct agent_file *f = &a->cur;
	int rc = 0;
	dec_fixed(d, f->want.hash, 16);
	if (!f->active || d->err)
		return -EPROTO;
	if (f->err)
		goto out;
	uint8_t got[16];
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(f->hs));
	memcpy(got, c.digest, 16);
	if (f->written != f->want.size || memcmp(got, f->want.hash, 16) != 0) {
		/* A delta built on a colliding block, or the file changed on
		 * the client while it was sent: either way, not this. */
		rc = file_fail(a, -EBADMSG, "content did not verify for");
		goto out;
	}
	if ((f->want.mode & 07000) && fchmod(f->fd, f->want.mode) < 0) {
		rc = file_fail(a, -errno, "setting the mode of");
		goto out;
	}
	struct timespec ts[2];
	mtime_spec(ts, f->want.mtime_ns);
	futimens(f->fd, ts);
	if (close(f->fd) < 0) { /* NFS and friends report write errors here */
		f->fd = -1;
		unlinkat(f->dirfd, f->tmpname, 0);
		rc = agent_report(a, errno, f->path, "writing %s in %s: %s", f->path, a->root_path,
				  strerror(errno));
		goto out;
	}
	f->fd = -1;
	const char *base = path_base(f->path);
	if (renameat(f->dirfd, f->tmpname, f->dirfd, base) < 0) {
		rc = -errno;
		unlinkat(f->dirfd, f->tmpname, 0);
		rc = agent_report(a, -rc, f->path, "cannot replace %s in %s: %s", f->path,
				  a->root_path, strerror(-rc));
		goto out;
	}
	rc = record_now(a, f->dirfd, base, f->path, f->want.hash, NULL);
out:
	agent_file_abort(a);
	return rc;
}

/* --- other changes ---------------------------------------------------- */

static int op_mkdir(struct agent *a, const char *path, uint32_t mode)
{
	const char *base;
	int dirfd = parent_of(a, path, &base);
	if (dirfd < 0)
		return agent_report(a, -dirfd, path, "cannot reach the directory of %s in %s: %s",
				    path, a->root_path, strerror(-dirfd));
	if (mkdirat(dirfd, base, mode) < 0 && errno != EEXIST)
		return agent_report(a, errno, path, "cannot create directory %s in %s: %s", path,
				    a->root_path, strerror(errno));
	int fd = agent_open_beneath(a, path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return agent_report(a, -fd, path, "cannot create directory %s in %s: %s", path,
				    a->root_path, strerror(-fd));
	fchmod(fd, mode);
	close(fd);
	return record_now(a, dirfd, base, path, NULL, NULL);
}

static int op_symlink(struct agent *a, const char *path, const char *target, int64_t mtime)
{
	const char *base;
	int dirfd = parent_of(a, path, &base);
	if (dirfd < 0)
		return agent_report(a, -dirfd, path, "cannot reach the directory of %s in %s: %s",
				    path, a->root_path, strerror(-dirfd));
	char tmp[64];
	int rc = agent_mark_dirty(a);
	if (!rc)
		rc = make_temp(&a->names, dirfd, tmp, create_symlink, (void *)target);
	if (!rc) {
		set_times(dirfd, tmp, mtime);
		if (renameat(dirfd, tmp, dirfd, base) < 0) {
			rc = -errno;
			unlinkat(dirfd, tmp, 0);
		}
	}
	if (rc)
		return agent_report(a, -rc, path, "cannot create symlink %s in %s: %s", path,
				    a->root_path, strerror(-rc));
	uint8_t hash[16];
	hash_mem(target, strlen(target), hash);
	return record_now(a, dirfd, base, path, hash, target);
}

static int op_setattr(struct agent *a, const char *path, uint32_t mode, int64_t mtime)
{
	const struct entry *known = agent_lookup(a, path);
	const char *base;
	int dirfd = parent_of(a, path, &base);
	if (dirfd < 0)
		return agent_report(a, -dirfd, path, "cannot reach %s in %s: %s", path,
				    a->root_path, strerror(-dirfd));
	struct stat st;
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return agent_report(a, errno, path, "cannot update %s in %s: %s", path,
				    a->root_path, strerror(errno));
	if (!S_ISLNK(st.st_mode)) {
		/* Through an fd of the object itself: chmod by name would follow
		 * a symlink swapped in meanwhile. */
		int fd = agent_open_beneath(a, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0 || fchmod(fd, mode) < 0) {
			int e = fd < 0 ? -fd : errno;
			if (fd >= 0)
				close(fd);
			return agent_report(a, e, path, "cannot change the mode of %s in %s: %s",
					    path, a->root_path, strerror(e));
		}
		close(fd);
	}
	if (!S_ISDIR(st.st_mode))
		set_times(dirfd, base, mtime);
	uint8_t hash[16] = { 0 };
	if (known && known->type == ENTRY_FILE && S_ISREG(st.st_mode))
		memcpy(hash, known->hash, 16);
	else if (S_ISREG(st.st_mode)) {
		/* Adopting a file that was here before us: hash what is there. */
		int fd = agent_open_beneath(a, path, O_RDONLY);
		if (fd >= 0) {
			hash_fd(fd, hash, NULL);
			close(fd);
		}
	}
	return record_now(a, dirfd, base, path, hash, known ? known->link : NULL);
}

static int op_delete(struct agent *a, const char *path)
{
	const char *base;
	int dirfd = parent_of(a, path, &base);
	if (dirfd == -ENOENT)
		return agent_record_gone(a, path);
	if (dirfd < 0)
		return agent_report(a, -dirfd, path, "cannot reach %s in %s: %s", path,
				    a->root_path, strerror(-dirfd));
	struct stat st;
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return agent_record_gone(a, path);
		return agent_report(a, errno, path, "cannot delete %s in %s: %s", path,
				    a->root_path, strerror(errno));
	}
	int flags = S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0;
	if (unlinkat(dirfd, base, flags) < 0) {
		/* A directory still holding files the host made (build outputs):
		 * those are not ours to delete, so the directory stays. */
		if (errno != ENOTEMPTY && errno != EEXIST)
			return agent_report(a, errno, path, "cannot delete %s in %s: %s", path,
					    a->root_path, strerror(errno));
	} else if (flags) {
		/* The parent cache may hold this directory (or one inside it):
		 * a new directory of the same name would be missed. */
		dircache_invalidate_all();
	}
	return agent_record_gone(a, path);
}

static int op_rename(struct agent *a, const char *from, const char *to)
{
	const struct entry *known = agent_lookup(a, from);
	if (!known || known->type != ENTRY_FILE)
		return agent_report(a, ENOENT, from, "cannot rename %s in %s: not a tracked file",
				    from, a->root_path);
	uint8_t hash[16];
	memcpy(hash, known->hash, 16);
	const char *fbase, *tbase;
	int fdir = parent_of(a, from, &fbase);
	if (fdir < 0)
		return agent_report(a, -fdir, from, "cannot reach %s in %s: %s", from,
				    a->root_path, strerror(-fdir));
	fdir = fcntl(fdir, F_DUPFD_CLOEXEC, 0);
	if (fdir < 0)
		return agent_report(a, errno, from, "rename %s: %s", from, strerror(errno));
	int tdir = parent_of(a, to, &tbase);
	int rc = 0;
	if (tdir < 0)
		rc = agent_report(a, -tdir, to, "cannot reach %s in %s: %s", to, a->root_path,
				  strerror(-tdir));
	else if (renameat(fdir, fbase, tdir, tbase) < 0)
		rc = agent_report(a, errno, to, "cannot rename %s to %s in %s: %s", from, to,
				  a->root_path, strerror(errno));
	else
		rc = agent_record_gone(a, from);
	if (!rc)
		rc = record_now(a, tdir, tbase, to, hash, NULL);
	close(fdir);
	return rc;
}

/* Apply one change message. Protocol errors return -EPROTO (the session
 * ends); file-system errors are reported to the client and the session
 * goes on. */
int agent_apply(struct agent *a, const struct frame *f)
{
	struct dec d;
	dec_init(&d, f);
	char path[PATH_MAX], path2[PATH_MAX];

	if (a->cur.active && f->type != MSG_DATA && f->type != MSG_COPY && f->type != MSG_FEND)
		return -EPROTO; /* a file's stream must end before anything else */
	switch (f->type) {
	case MSG_FILE:
		return file_begin(a, &d) == -EPROTO ? -EPROTO : 0;
	case MSG_DATA: {
		size_t n;
		const uint8_t *p = dec_rest(&d, &n);
		if (!a->cur.active)
			return -EPROTO;
		file_write(a, p, n);
		return 0;
	}
	case MSG_COPY: {
		uint64_t block = dec_uvar(&d), count = dec_uvar(&d);
		if (d.err || !a->cur.active)
			return -EPROTO;
		file_copy(a, block, count);
		return 0;
	}
	case MSG_FEND:
		return file_end(a, &d) == -EPROTO ? -EPROTO : 0;
	default:
		break;
	}

	dec_path(&d, path);
	switch (f->type) {
	case MSG_MKDIR: {
		uint32_t mode = (uint32_t)dec_uvar(&d) & 07777;
		if (d.err)
			return -EPROTO;
		if (a->failed)
			return 0;
		if (reserved(path))
			return agent_report(a, EPERM, path, "refusing to create %s", path);
		return op_mkdir(a, path, mode);
	}
	case MSG_SYMLINK: {
		dec_str(&d, path2, sizeof(path2));
		int64_t mtime = dec_svar(&d);
		if (d.err)
			return -EPROTO;
		if (a->failed)
			return 0;
		if (reserved(path))
			return agent_report(a, EPERM, path, "refusing to create %s", path);
		return op_symlink(a, path, path2, mtime);
	}
	case MSG_SETATTR: {
		uint32_t mode = (uint32_t)dec_uvar(&d) & 07777;
		int64_t mtime = dec_svar(&d);
		if (d.err)
			return -EPROTO;
		if (a->failed || reserved(path))
			return 0;
		return op_setattr(a, path, mode, mtime);
	}
	case MSG_DELETE:
		if (d.err)
			return -EPROTO;
		if (a->failed || reserved(path))
			return 0;
		return op_delete(a, path);
	case MSG_RENAME:
		dec_path(&d, path2);
		if (d.err)
			return -EPROTO;
		if (a->failed)
			return 0;
		if (reserved(path) || reserved(path2))
			return agent_report(a, EPERM, path2, "refusing to rename onto %s", path2);
		return op_rename(a, path, path2);
	case MSG_UNTRACK:
		if (d.err)
			return -EPROTO;
		return agent_record_gone(a, path);
	default:
		return -EPROTO;
	}
}
