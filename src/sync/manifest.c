#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "fdio.h"
#include "ignore.h"
#include "path.h"

#define HASH_CHUNK (256u * 1024u)
#define RACY_WINDOW_NS 2000000000LL
static const char manifest_magic[8] = "HRMSMAN1";

void manifest_init(struct manifest *m)
{
	memset(m, 0, sizeof(*m));
}

void entry_free(struct entry *e)
{
	free(e->path);
	free(e->link);
	e->path = e->link = NULL;
}

void manifest_free(struct manifest *m)
{
	for (size_t i = 0; i < m->n; i++)
		entry_free(&m->v[i]);
	free(m->v);
	manifest_init(m);
}

int entry_copy(struct entry *dst, const struct entry *src)
{
	*dst = *src;
	dst->path = strdup(src->path);
	dst->link = src->link ? strdup(src->link) : NULL;
	if (!dst->path || (src->link && !dst->link)) {
		entry_free(dst);
		return -ENOMEM;
	}
	return 0;
}

int manifest_add(struct manifest *m, const struct entry *e)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		struct entry *v = realloc(m->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	int rc = entry_copy(&m->v[m->n], e);
	if (rc)
		return rc;
	m->n++;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

void manifest_sort(struct manifest *m)
{
	if (m->n > 1)
		qsort(m->v, m->n, sizeof(*m->v), entry_cmp);
}

struct entry *manifest_find(const struct manifest *m, const char *path)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(path, m->v[mid].path);
		if (c == 0)
			return &m->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void manifest_compact(struct manifest *m)
{
	size_t j = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].type == ENTRY_NONE)
			entry_free(&m->v[i]);
		else
			m->v[j++] = m->v[i];
	}
	m->n = j;
}

bool entry_same_content(const struct entry *a, const struct entry *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case ENTRY_FILE:
		return a->size == b->size && memcmp(a->hash, b->hash, 16) == 0;
	case ENTRY_SYMLINK:
		return a->link && b->link && strcmp(a->link, b->link) == 0;
	default:
		return true;
	}
}

static void hash_digest(XXH3_state_t *st, uint8_t out[16])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(out, c.digest, 16);
}

void hash_mem(const void *p, size_t n, uint8_t out[16])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
	memcpy(out, c.digest, 16);
}

int hash_fd(int fd, uint8_t out[16], uint64_t *size_out)
{
	XXH3_state_t *st = XXH3_createState();
	uint8_t *chunk = malloc(HASH_CHUNK);
	int rc = 0;
	uint64_t total = 0;
	if (!st || !chunk) {
		rc = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(st);
	for (;;) {
		ssize_t r = pread(fd, chunk, HASH_CHUNK, (off_t)total);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		XXH3_128bits_update(st, chunk, (size_t)r);
		total += (uint64_t)r;
	}
	hash_digest(st, out);
	if (size_out)
		*size_out = total;
out:
	free(chunk);
	XXH3_freeState(st);
	return rc;
}

static int64_t ts_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts_ns(ts);
}

void entry_set_stat(struct entry *e, const struct stat *st)
{
	e->mode = st->st_mode & 07777;
	e->mtime_ns = ts_ns(st->st_mtim);
	e->ctime_ns = ts_ns(st->st_ctim);
	e->ino = (uint64_t)st->st_ino;
	e->size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
	e->type = S_ISDIR(st->st_mode) ? ENTRY_DIR : S_ISLNK(st->st_mode) ? ENTRY_SYMLINK
		: S_ISREG(st->st_mode) ? ENTRY_FILE : ENTRY_NONE;
}

static bool stat_identity_matches(const struct entry *cached, const struct stat *st)
{
	return cached && cached->type == ENTRY_FILE && !(cached->flags & ENTRY_RACY) &&
	       cached->size == (uint64_t)st->st_size && cached->mtime_ns == ts_ns(st->st_mtim) &&
	       (cached->ctime_ns == 0 || cached->ctime_ns == ts_ns(st->st_ctim)) &&
	       cached->ino == (uint64_t)st->st_ino;
}

/* Fill e's stat fields, and hash or link target, from an lstat result.
 * dirfd/name locate the object. Returns 0, or -errno; a type we do not
 * mirror (device, fifo, socket) gives ENTRY_NONE. */
static int entry_from_stat(struct entry *e, int dirfd, const char *name, const struct stat *st,
			   const struct entry *cached, int64_t now_ns, bool defer, uint64_t *hashed)
{
	entry_set_stat(e, st);
	e->size = 0;
	e->flags &= ENTRY_TRACKED;
	memset(e->hash, 0, 16);
	free(e->link);
	e->link = NULL;
	if (S_ISDIR(st->st_mode)) {
		e->type = ENTRY_DIR;
		return 0;
	}
	if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = '\0';
		e->type = ENTRY_SYMLINK;
		e->link = strdup(target);
		if (!e->link)
			return -ENOMEM;
		e->size = (uint64_t)n;
		hash_mem(target, (size_t)n, e->hash);
		return 0;
	}
	if (!S_ISREG(st->st_mode)) {
		e->type = ENTRY_NONE;
		return 0;
	}
	e->type = ENTRY_FILE;
	e->size = (uint64_t)st->st_size;
	if (e->mtime_ns + RACY_WINDOW_NS > now_ns)
		e->flags |= ENTRY_RACY;
	if (stat_identity_matches(cached, st)) {
		memcpy(e->hash, cached->hash, 16);
		return 0;
	}
	if (defer) {
		e->flags |= ENTRY_UNHASHED;
		return 0;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	uint64_t got = 0;
	int rc = hash_fd(fd, e->hash, &got);
	close(fd);
	if (rc)
		return rc;
	/* The file changed while we read it: describe what we read, and let
	 * the next scan look again. */
	if (got != e->size) {
		e->size = got;
		e->flags |= ENTRY_RACY;
	}
	*hashed += got;
	return 0;
}

int entry_refresh(int root_fd, struct entry *e, const struct entry *cached)
{
	struct stat st;
	if (fstatat(root_fd, e->path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		e->type = ENTRY_NONE;
		e->size = 0;
		free(e->link);
		e->link = NULL;
		return 0;
	}
	uint64_t hashed = 0;
	return entry_from_stat(e, root_fd, e->path, &st, cached, realtime_ns(), false, &hashed);
}

struct scan {
	const struct scan_options *o;
	bool record_ignored;
	struct ignore *ig;
	struct manifest *m;
	struct scan_stats *st;
	struct buf *err;
	int64_t now_ns;
	char path[PATH_MAX];
};

static bool skip_always(const char *rel_dir, const char *name, bool is_dir, bool include_vcs)
{
	if (strncmp(name, AGENT_TMP_PREFIX, strlen(AGENT_TMP_PREFIX)) == 0)
		return true;
	if (rel_dir[0] == '\0' && strcmp(name, STATE_DIR) == 0)
		return true;
	return is_dir && !include_vcs && strcmp(name, ".git") == 0;
}

static int scan_dir(struct scan *s, int dirfd, size_t plen);

static int scan_one(struct scan *s, int dirfd, const char *name, size_t plen)
{
	size_t nlen = strlen(name);
	if (plen + (plen ? 1 : 0) + nlen >= sizeof(s->path))
		return -ENAMETOOLONG;
	char rel_dir[PATH_MAX];
	memcpy(rel_dir, s->path, plen);
	rel_dir[plen] = '\0';
	size_t len = plen;
	if (plen)
		s->path[len++] = '/';
	memcpy(s->path + len, name, nlen + 1);
	len += nlen;

	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0; /* vanished while we walked: not there */
		buf_printf(s->err, "cannot stat %s: %s", s->path, strerror(errno));
		return -errno;
	}
	bool is_dir = S_ISDIR(st.st_mode);
	if (skip_always(rel_dir, name, is_dir, s->o->include_vcs))
		return 0;

	struct entry e = { .path = s->path };
	if (s->ig && ignore_match(s->ig, s->path, is_dir)) {
		if (!s->record_ignored)
			return 0;
		e.type = is_dir ? ENTRY_DIR : ENTRY_FILE;
		e.flags = ENTRY_IGNORED;
		return manifest_add(s->m, &e);
	}
	const struct entry *cached = s->o->hash_cache ? manifest_find(s->o->hash_cache, s->path) : NULL;
	int rc = entry_from_stat(&e, dirfd, name, &st, cached, s->now_ns, s->o->defer_hash,
				 &s->st->hashed_bytes);
	if (rc == -ENOENT)
		return 0;
	if (rc) {
		free(e.link);
		buf_printf(s->err, "cannot read %s: %s", s->path, strerror(-rc));
		return rc;
	}
	if (e.type != ENTRY_NONE) {
		rc = manifest_add(s->m, &e);
		s->st->entries++;
		if (e.type == ENTRY_FILE)
			s->st->files++;
	}
	free(e.link);
	if (rc || e.type != ENTRY_DIR)
		return rc;

	int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0) {
		if (errno == ENOENT)
			return 0;
		buf_printf(s->err, "cannot open directory %s: %s", s->path, strerror(errno));
		return -errno;
	}
	rc = scan_dir(s, sub, len);
	close(sub);
	return rc;
}

/* Scan the directory open as dirfd, whose relative path is s->path[0..plen). */
static int scan_dir(struct scan *s, int dirfd, size_t plen)
{
	s->path[plen] = '\0';
	if (s->ig) {
		int rc = ignore_push_dir(s->ig, dirfd, s->path);
		if (rc) {
			buf_printf(s->err, "cannot read ignore rules in %s: %s",
				   plen ? s->path : ".", strerror(-rc));
			return rc;
		}
	}
	int dupfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dupfd < 0 ? NULL : fdopendir(dupfd);
	int rc = 0;
	if (!d) {
		rc = -errno;
		if (dupfd >= 0)
			close(dupfd);
		buf_printf(s->err, "cannot list %s: %s", plen ? s->path : ".", strerror(-rc));
		goto out;
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = scan_one(s, dirfd, de->d_name, plen);
		s->path[plen] = '\0';
		if (rc)
			break;
	}
	if (!rc && errno) {
		rc = -errno;
		buf_printf(s->err, "cannot list %s: %s", plen ? s->path : ".", strerror(-rc));
	}
	closedir(d);
out:
	if (s->ig)
		ignore_pop_dir(s->ig);
	return rc;
}

int manifest_scan(int root_fd, const struct scan_options *o, bool record_ignored,
		  struct manifest *m, struct scan_stats *st, struct buf *err)
{
	return manifest_scan_under(root_fd, "", o, record_ignored, m, st, err);
}

/* Is `path` (in directory parent_rel) excluded, given the rules loaded? */
static bool excluded(const struct ignore *ig, const char *parent_rel, const char *path,
		     bool is_dir, bool include_vcs)
{
	return skip_always(parent_rel, path_base(path), is_dir, include_vcs) ||
	       (ig && ignore_match(ig, path, is_dir));
}

/* Load the ignore rules of the root and of every directory down to `dir`
 * (included) into ig, as a walk from the root would. Returns 1 if `dir` or
 * a directory above it is itself excluded, 0 if not, or -errno. *levels
 * counts what was pushed, for the caller to pop. */
static int prime_ancestors(int root_fd, const char *dir, const struct scan_options *o,
			   struct ignore *ig, int *levels)
{
	char rel[PATH_MAX], parent[PATH_MAX] = "";
	int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
	int rc = fd < 0 ? -errno : 0;
	*levels = 0;
	if (!rc && ig && !(rc = ignore_push_dir(ig, fd, "")))
		(*levels)++;
	for (const char *p = dir; !rc && *p;) {
		const char *slash = strchr(p, '/');
		size_t end = slash ? (size_t)(slash - dir) : strlen(dir);
		memcpy(rel, dir, end);
		rel[end] = '\0';
		if (excluded(ig, parent, rel, true, o->include_vcs)) {
			rc = 1;
			break;
		}
		int sub = openat(fd, path_base(rel), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			rc = -errno;
			break;
		}
		close(fd);
		fd = sub;
		if (ig && !(rc = ignore_push_dir(ig, fd, rel)))
			(*levels)++;
		memcpy(parent, rel, end + 1);
		p = slash ? slash + 1 : dir + end;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

int manifest_scan_under(int root_fd, const char *dir, const struct scan_options *o,
			bool record_ignored, struct manifest *m, struct scan_stats *st,
			struct buf *err)
{
	struct scan s = {
		.o = o, .record_ignored = record_ignored, .m = m, .st = st, .err = err,
		.now_ns = realtime_ns(),
	};
	int levels = 0, rc = 0;
	size_t plen = strlen(dir);
	if (plen >= sizeof(s.path))
		return -ENAMETOOLONG;
	if (o->use_ignore_files) {
		s.ig = ignore_new(o->include_vcs);
		if (!s.ig)
			return -ENOMEM;
	}
	int fd = root_fd;
	if (plen) {
		/* The rules of every directory above dir apply inside it; dir's
		 * own are loaded by scan_dir. */
		char parent[PATH_MAX];
		size_t dl = path_dir_len(dir);
		memcpy(parent, dir, dl);
		parent[dl] = '\0';
		rc = prime_ancestors(root_fd, parent, o, s.ig, &levels);
		if (rc == 0 && excluded(s.ig, parent, dir, true, o->include_vcs))
			rc = 1;
		if (rc == 0) {
			fd = openat(root_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = fd < 0 ? -errno : 0;
		}
		if (rc < 0)
			buf_printf(err, "cannot open directory %s: %s", dir, strerror(-rc));
	}
	if (rc == 0) {
		memcpy(s.path, dir, plen + 1);
		rc = scan_dir(&s, fd, plen);
	} else if (rc > 0) {
		rc = 0; /* under an excluded directory: nothing to list */
	}
	if (fd >= 0 && fd != root_fd)
		close(fd);
	while (levels-- > 0)
		ignore_pop_dir(s.ig);
	ignore_free(s.ig);
	manifest_sort(m);
	return rc;
}

int manifest_path_ignored(int root_fd, const char *path, bool is_dir,
			  const struct scan_options *o)
{
	struct ignore *ig = o->use_ignore_files ? ignore_new(o->include_vcs) : NULL;
	if (o->use_ignore_files && !ig)
		return -ENOMEM;
	char parent[PATH_MAX];
	size_t dl = path_dir_len(path);
	memcpy(parent, path, dl);
	parent[dl] = '\0';
	int levels = 0;
	int rc = prime_ancestors(root_fd, parent, o, ig, &levels);
	if (rc == 0)
		rc = excluded(ig, parent, path, is_dir, o->include_vcs);
	while (levels-- > 0)
		ignore_pop_dir(ig);
	ignore_free(ig);
	return rc;
}

void entry_encode(struct enc *e, const struct entry *en)
{
	enc_blob(e, en->path, strlen(en->path));
	enc_u8(e, en->type);
	enc_u8(e, en->flags & ENTRY_TRACKED);
	enc_uvar(e, en->mode);
	enc_uvar(e, en->size);
	enc_svar(e, en->mtime_ns);
	if (en->type == ENTRY_FILE)
		enc_fixed(e, en->hash, 16);
	if (en->type == ENTRY_SYMLINK)
		enc_str(e, en->link ? en->link : "");
}

int entry_decode(struct dec *d, struct entry *en)
{
	char path[PATH_MAX], link[PATH_MAX];
	memset(en, 0, sizeof(*en));
	dec_path(d, path);
	en->type = dec_u8(d);
	en->flags = dec_u8(d) & ENTRY_TRACKED;
	uint64_t mode = dec_uvar(d);
	en->size = dec_uvar(d);
	en->mtime_ns = dec_svar(d);
	if (en->type == ENTRY_FILE)
		dec_fixed(d, en->hash, 16);
	if (en->type == ENTRY_SYMLINK)
		dec_str(d, link, sizeof(link));
	if (d->err || en->type > ENTRY_SYMLINK || mode > 07777)
		return -EPROTO;
	en->mode = (uint32_t)mode;
	en->path = strdup(path);
	if (en->type == ENTRY_SYMLINK) {
		en->link = strdup(link);
		hash_mem(link, strlen(link), en->hash);
	}
	if (!en->path || (en->type == ENTRY_SYMLINK && !en->link)) {
		entry_free(en);
		return -ENOMEM;
	}
	return 0;
}

int manifest_save(const struct manifest *m, int dirfd, const char *name)
{
	struct buf b = BUF_INIT;
	struct enc e = { .b = &b };
	enc_fixed(&e, manifest_magic, sizeof(manifest_magic));
	enc_fixed(&e, m->root_id, 16);
	enc_uvar(&e, m->generation);
	enc_uvar(&e, m->n);
	for (size_t i = 0; i < m->n; i++) {
		const struct entry *en = &m->v[i];
		enc_blob(&e, en->path, strlen(en->path));
		enc_u8(&e, en->type);
		enc_u8(&e, en->flags);
		enc_uvar(&e, en->mode);
		enc_uvar(&e, en->size);
		enc_svar(&e, en->mtime_ns);
		enc_svar(&e, en->ctime_ns);
		enc_uvar(&e, en->ino);
		enc_fixed(&e, en->hash, 16);
		enc_str(&e, en->link ? en->link : "");
	}
	int rc = e.err;
	if (rc)
		goto out;

	char tmp[NAME_MAX + 1];
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (uint32_t)getpid();
	snprintf(tmp, sizeof(tmp), "%.200s.tmp%08x", name, rnd);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	/* No fsync: a manifest lost in a crash only makes the next exchange a
	 * full one (a damaged or stale one is detected), while an fsync here
	 * would wait for every file just written to reach the disk. */
	rc = write_full(fd, b.data, b.len);
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = -errno;
	if (rc)
		unlinkat(dirfd, tmp, 0);
out:
	buf_free(&b);
	return rc;
}

static int read_file(int dirfd, const char *name, struct buf *b)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	int rc = 0;
	for (;;) {
		rc = buf_reserve(b, 64 * 1024);
		if (rc)
			break;
		ssize_t r = read(fd, b->data + b->len, b->cap - b->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
	}
	close(fd);
	return rc;
}

int manifest_load(struct manifest *m, int dirfd, const char *name)
{
	struct buf b = BUF_INIT;
	manifest_init(m);
	int rc = read_file(dirfd, name, &b);
	if (rc)
		goto out;
	struct dec d = { b.data, b.data + b.len, 0 };
	char magic[8], path[PATH_MAX], link[PATH_MAX];
	dec_fixed(&d, magic, 8);
	dec_fixed(&d, m->root_id, 16);
	m->generation = dec_uvar(&d);
	uint64_t n = dec_uvar(&d);
	if (d.err || memcmp(magic, manifest_magic, 8) != 0 || n > b.len) {
		rc = -EBADMSG;
		goto out;
	}
	for (uint64_t i = 0; i < n && !rc; i++) {
		struct entry en = { 0 };
		dec_path(&d, path);
		en.path = path;
		en.type = dec_u8(&d);
		en.flags = dec_u8(&d);
		en.mode = (uint32_t)dec_uvar(&d);
		en.size = dec_uvar(&d);
		en.mtime_ns = dec_svar(&d);
		en.ctime_ns = dec_svar(&d);
		en.ino = dec_uvar(&d);
		dec_fixed(&d, en.hash, 16);
		dec_str(&d, link, sizeof(link));
		en.link = en.type == ENTRY_SYMLINK ? link : NULL;
		if (d.err)
			rc = -EBADMSG;
		else
			rc = manifest_add(m, &en);
	}
	if (!rc)
		manifest_sort(m);
out:
	if (rc) {
		uint8_t id[16];
		memcpy(id, m->root_id, 16);
		manifest_free(m);
		if (rc == -ENOENT)
			memcpy(m->root_id, id, 16);
	}
	buf_free(&b);
	return rc;
}
