#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "config.h"
#include "delta.h"
#include "hints.h"
#include "log.h"
#include "manifest.h"
#include "path.h"
#include "transport.h"
#include "wire.h"

#define HANDSHAKE_TIMEOUT_MS 30000
#define INLINE_MAX (64u * 1024u)
#define DATA_CHUNK (256u * 1024u)
#define IO_CHUNK (1u << 20)
#define DELTA_THRESHOLD 1024u /* smaller files go whole: a signature costs more */
#define SIG_BATCH 64
/* Block length of deltas built from byte-range hints: one page, the unit of
 * the mount's writeback, so a one-byte edit costs about one block. */
#define HINT_BLOCK 4096u
#define HASHCACHE_FILE "hashcache"
#define PROGRESS_MIN_BYTES (8u << 20)

struct client {
	const struct sync_options *o;
	bool state_pending; /* pushes not yet in the state files */
	struct sync_stats *st;
	struct buf *err;
	struct wire w;
	bool wire_ready;
	int root_fd;
	int state_fd;
	char remote_state[64];      /* file name of the per-destination view */
	struct manifest local;      /* this scan, ignored paths flagged */
	struct manifest remote;     /* what the agent holds, as we know it */
	struct manifest hash_cache; /* the last scan, for stat -> hash reuse */
	bool *handled;              /* per remote entry: already dealt with */
	uint8_t root_id[16];
	uint64_t generation;
	unsigned errors;
	bool fatal;
	struct buf fatal_msg;
	const struct hints *hints; /* byte ranges known changed, during a push */
	char **retry; /* paths whose delta did not verify */
	size_t nretry;
	uint32_t next_id;
	uint64_t progress_total, progress_done;
	int64_t progress_last_ms;
	uint8_t *io; /* IO_CHUNK bytes of scratch (owned) */
};

/* --- small helpers ----------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void progress(struct client *c, uint64_t add, bool done)
{
	c->progress_done += add;
	if (!c->o->progress || c->progress_total < PROGRESS_MIN_BYTES)
		return;
	int64_t now = mono_ms();
	if (!done && now - c->progress_last_ms < 100)
		return;
	c->progress_last_ms = now;
	unsigned pct = (unsigned)(c->progress_done * 100 / c->progress_total);
	if (pct > 100)
		pct = 100;
	char bar[31];
	memset(bar, ' ', 30);
	memset(bar, '#', pct * 30 / 100);
	bar[30] = '\0';
	fprintf(stderr, "\r[%s] %3u%% %.1f/%.1f MB%s", bar, pct, c->progress_done / 1e6,
		c->progress_total / 1e6, done ? "\n" : "");
}

static const char *state_name_for(const char *dest_key, char out[64])
{
	snprintf(out, 64, "remote-%016" PRIx64, (uint64_t)XXH3_64bits(dest_key, strlen(dest_key)));
	return out;
}

static int open_state(struct client *c)
{
	if (mkdirat(c->root_fd, STATE_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	int hfd = openat(c->root_fd, STATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (hfd < 0)
		return -errno;
	/* Keep git from ever offering our state for a commit. */
	int gi = openat(hfd, ".gitignore", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (gi >= 0) {
		if (write(gi, "*\n", 2) != 2)
			log_debug("cannot write %s/.gitignore", STATE_DIR);
		close(gi);
	}
	int rc = 0;
	if (mkdirat(hfd, "state", 0700) < 0 && errno != EEXIST)
		rc = -errno;
	if (!rc) {
		c->state_fd = openat(hfd, "state", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (c->state_fd < 0)
			rc = -errno;
	}
	close(hfd);
	return rc;
}

/* --- receiving ------------------------------------------------------------ */

static void note_error(struct client *c, const struct frame *f)
{
	struct dec d;
	char path[PATH_MAX], msg[2048];
	dec_init(&d, f);
	uint64_t errnum = dec_uvar(&d);
	uint8_t flags = dec_u8(&d);
	dec_str(&d, path, sizeof(path));
	dec_str(&d, msg, sizeof(msg));
	if (d.err)
		snprintf(msg, sizeof(msg), "malformed error report");
	if ((flags & ERROR_RETRY) && path[0] && !c->fatal) {
		char **v = realloc(c->retry, (c->nretry + 1) * sizeof(*v));
		if (v) {
			c->retry = v;
			v[c->nretry] = strdup(path);
			if (v[c->nretry]) {
				c->nretry++;
				return;
			}
		}
	}
	c->errors++;
	(void)errnum;
	/* The first fatal error becomes the sync's own error message (printed
	 * once, by the caller); others are printed as they arrive. */
	if ((flags & ERROR_FATAL) && !c->fatal) {
		buf_printf(&c->fatal_msg, "%s: %s", c->o->peer, msg);
		c->fatal = true;
		return;
	}
	log_error("%s: %s", c->o->peer, msg);
}

/* Next frame that is not an error report (those are noted on the way).
 * Returns 1, or -errno / -EPIPE at end of stream with err set. */
static int recv_frame(struct client *c, struct frame *f, int timeout_ms)
{
	for (;;) {
		int rc = wire_recv(&c->w, f, timeout_ms);
		if (rc == 1 && f->type == MSG_ERROR) {
			note_error(c, f);
			continue;
		}
		if (rc == 1 || rc == -EAGAIN)
			return rc;
		if (c->fatal_msg.len) {
			c->err->len = 0;
			buf_append(c->err, c->fatal_msg.data, c->fatal_msg.len);
			return -EIO;
		}
		if (rc == 0) {
			buf_printf(c->err, "the connection to %s closed unexpectedly", c->o->peer);
			return -EPIPE;
		}
		buf_printf(c->err, "receiving from %s: %s", c->o->peer,
			   rc == -EPROTO ? "malformed data (protocol error)" : strerror(-rc));
		return rc;
	}
}

static int expect(struct client *c, struct frame *f, uint8_t type)
{
	int rc = recv_frame(c, f, -1);
	if (rc < 0)
		return rc;
	if (f->type != type) {
		buf_printf(c->err, "protocol error: expected %s from %s, got %s", msg_name(type),
			   c->o->peer, msg_name(f->type));
		return -EPROTO;
	}
	return 0;
}

/* Read whatever the agent already sent (error reports) without waiting. */
static int drain(struct client *c)
{
	struct frame f;
	int rc = recv_frame(c, &f, 0);
	if (rc == -EAGAIN)
		return 0;
	if (rc == 1) {
		buf_printf(c->err, "protocol error: unexpected %s from %s", msg_name(f.type),
			   c->o->peer);
		return -EPROTO;
	}
	return rc;
}

/* --- opening: our view of the remote side ---------------------------------- */

static int send_open(struct client *c, const struct manifest *cached)
{
	struct enc e;
	wire_begin(&c->w, &e);
	enc_uvar(&e, 0);
	enc_str(&e, HERMES_VERSION);
	int rc = wire_end(&c->w, &e, MSG_HELLO, 0);
	wire_begin(&c->w, &e);
	enc_u8(&e, c->o->include_vcs ? OPEN_INCLUDE_VCS : 0);
	enc_fixed(&e, cached->root_id, 16);
	enc_uvar(&e, cached->generation);
	if (!rc)
		rc = wire_end(&c->w, &e, MSG_OPEN, 0);
	return rc ? rc : wire_flush(&c->w);
}

/* Apply one entry from the agent to our view. */
static int remote_update(struct manifest *view, struct entry *en)
{
	struct entry *old = manifest_find(view, en->path);
	if (old) {
		/* Takes over en's strings; ENTRY_NONE is compacted away later. */
		entry_free(old);
		*old = *en;
		return 0;
	}
	int rc = en->type == ENTRY_NONE ? 0 : manifest_add(view, en);
	entry_free(en);
	return rc;
}

static int recv_opened(struct client *c, struct manifest *cached)
{
	struct frame f;
	int rc = expect(c, &f, MSG_HELLO);
	if (!rc)
		rc = expect(c, &f, MSG_OPENED);
	if (rc)
		return rc;
	struct dec d;
	dec_init(&d, &f);
	dec_fixed(&d, c->root_id, 16);
	c->generation = dec_uvar(&d);
	uint8_t mode = dec_u8(&d);
	if (d.err)
		return -EPROTO;
	c->st->incremental = mode == OPENED_INCREMENTAL;
	if (c->st->incremental) {
		/* Our cached view is right but for the drift listed next. */
		c->remote = *cached;
		manifest_init(cached);
	}
	struct manifest added;
	manifest_init(&added);
	for (;;) {
		rc = recv_frame(c, &f, -1);
		if (rc < 0)
			break;
		rc = 0;
		if (f.type == MSG_END)
			break;
		struct entry en;
		dec_init(&d, &f);
		if (f.type != MSG_ENTRY || entry_decode(&d, &en)) {
			buf_printf(c->err, "protocol error: bad entry list from %s", c->o->peer);
			rc = -EPROTO;
			break;
		}
		if (c->st->incremental) {
			rc = remote_update(&c->remote, &en);
		} else {
			rc = manifest_add(&added, &en);
			entry_free(&en);
		}
		if (rc)
			break;
	}
	if (!c->st->incremental) {
		c->remote = added;
		manifest_sort(&c->remote);
	} else {
		manifest_free(&added);
		manifest_compact(&c->remote);
		manifest_sort(&c->remote);
	}
	return rc;
}

/* --- sending changes ----------------------------------------------------- */

static void plan_line(struct client *c, const char *what, const char *path, const char *extra)
{
	if (c->o->dry_run)
		printf("%-8s %s%s\n", what, path, extra ? extra : "");
}

static int send_path_op(struct client *c, uint8_t type, const char *path)
{
	struct enc e;
	wire_begin(&c->w, &e);
	enc_str(&e, path);
	return wire_end(&c->w, &e, type, 0);
}

static int send_delete(struct client *c, const struct entry *r, bool untrack)
{
	plan_line(c, untrack ? "untrack" : "delete", r->path, NULL);
	if (!untrack && r->type != ENTRY_DIR)
		c->st->files_deleted++;
	return c->o->dry_run ? 0 : send_path_op(c, untrack ? MSG_UNTRACK : MSG_DELETE, r->path);
}

static int send_mkdir(struct client *c, const struct entry *l)
{
	plan_line(c, "mkdir", l->path, NULL);
	if (c->o->dry_run)
		return 0;
	struct enc e;
	wire_begin(&c->w, &e);
	enc_str(&e, l->path);
	enc_uvar(&e, l->mode);
	return wire_end(&c->w, &e, MSG_MKDIR, 0);
}

static int send_setattr(struct client *c, const struct entry *l)
{
	plan_line(c, "attr", l->path, NULL);
	if (c->o->dry_run)
		return 0;
	struct enc e;
	wire_begin(&c->w, &e);
	enc_str(&e, l->path);
	enc_uvar(&e, l->mode);
	enc_svar(&e, l->mtime_ns);
	return wire_end(&c->w, &e, MSG_SETATTR, 0);
}

static int send_symlink(struct client *c, const struct entry *l)
{
	plan_line(c, "symlink", l->path, NULL);
	c->st->files_sent++;
	if (c->o->dry_run)
		return 0;
	struct enc e;
	wire_begin(&c->w, &e);
	enc_str(&e, l->path);
	enc_str(&e, l->link);
	enc_svar(&e, l->mtime_ns);
	return wire_end(&c->w, &e, MSG_SYMLINK, 0);
}

static int send_rename(struct client *c, const struct entry *from, const struct entry *l)
{
	plan_line(c, "rename", from->path, NULL);
	c->st->renamed++;
	if (c->o->dry_run)
		return 0;
	struct enc e;
	wire_begin(&c->w, &e);
	enc_str(&e, from->path);
	enc_str(&e, l->path);
	int rc = wire_end(&c->w, &e, MSG_RENAME, 0);
	if (!rc && (from->mode != l->mode || from->mtime_ns != l->mtime_ns))
		rc = send_setattr(c, l);
	return rc;
}

static void file_header(struct enc *e, const struct entry *l, uint64_t size, uint8_t kind)
{
	enc_str(e, l->path);
	enc_uvar(e, l->mode);
	enc_uvar(e, size);
	enc_svar(e, l->mtime_ns);
	enc_u8(e, kind);
}

/* A path renamed or deleted since it was scanned: the operation that moved
 * it was noted after this batch began, so a later batch looks at it again;
 * for this batch it counts as gone. */
static bool vanished(int rc)
{
	return rc == -ENOENT || rc == -ENOTDIR;
}

/* Open a local file to send it. A vanished file (see vanished()) returns
 * its -errno without a message: callers treat it with local_vanished(). */
static int open_local(struct client *c, const char *path, int *fd)
{
	*fd = openat(c->root_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (*fd >= 0)
		return 0;
	int rc = -errno;
	if (!vanished(rc))
		buf_printf(c->err, "cannot read %s/%s: %s", c->o->local_dir, path, strerror(-rc));
	return rc;
}

static size_t remote_index(const struct client *c, const struct entry *r);

/* l vanished before it could be read: the host's copy goes too (the host
 * mirrors what is here now), and l leaves the local view (ENTRY_NONE,
 * compacted away after the batch). */
static int local_vanished(struct client *c, struct entry *l)
{
	struct entry *r = manifest_find(&c->remote, l->path);
	l->type = ENTRY_NONE;
	l->flags &= (uint8_t)~ENTRY_UNHASHED;
	if (!r || !(r->flags & ENTRY_TRACKED) || r->type != ENTRY_FILE)
		return 0;
	if (c->handled) {
		if (c->handled[remote_index(c, r)])
			return 0;
		c->handled[remote_index(c, r)] = true;
	}
	return send_delete(c, r, false);
}

static int read_local(struct client *c, int fd, const char *path, uint8_t *p, size_t n,
		      uint64_t off, size_t *got)
{
	ssize_t r;
	do
		r = pread(fd, p, n, (off_t)off);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		buf_printf(c->err, "cannot read %s/%s: %s", c->o->local_dir, path, strerror(errno));
		return -errno;
	}
	*got = (size_t)r;
	return 0;
}

/* Hash l's open file fd into l: the entry then describes what was read
 * (a size that changed since the scan marks it racy). */
static int hash_entry_fd(struct client *c, struct entry *l, int fd)
{
	uint64_t got = 0;
	int rc = hash_fd(fd, l->hash, &got);
	if (rc) {
		buf_printf(c->err, "cannot read %s/%s: %s", c->o->local_dir, l->path, strerror(-rc));
		return rc;
	}
	if (got != l->size) {
		l->size = got;
		l->flags |= ENTRY_RACY;
	}
	l->flags &= (uint8_t)~ENTRY_UNHASHED;
	return 0;
}

/* The scan leaves files it had no cached hash for unhashed; hash one when a
 * decision needs it (is it the same as the remote copy? a renamed file?). */
static int ensure_hash(struct client *c, struct entry *l)
{
	if (!(l->flags & ENTRY_UNHASHED))
		return 0;
	int fd;
	int rc = open_local(c, l->path, &fd);
	if (vanished(rc))
		return local_vanished(c, l);
	if (rc)
		return rc;
	rc = hash_entry_fd(c, l, fd);
	close(fd);
	return rc;
}

/* Record the hash of what was actually sent: it becomes the entry's. */
static void set_sent_hash(struct entry *l, XXH3_state_t *hs, uint64_t sent)
{
	XXH128_canonical_t h;
	XXH128_canonicalFromHash(&h, XXH3_128bits_digest(hs));
	memcpy(l->hash, h.digest, 16);
	if (sent != l->size) {
		l->size = sent;
		l->flags |= ENTRY_RACY;
	}
	l->flags &= (uint8_t)~ENTRY_UNHASHED;
}

static int send_fend(struct client *c, const struct entry *l)
{
	struct enc e;
	wire_begin(&c->w, &e);
	enc_fixed(&e, l->hash, 16);
	return wire_end(&c->w, &e, MSG_FEND, 0);
}

static int send_stream(struct client *c, struct entry *l, int fd);

/* Small files travel inside MSG_FILE, hashed as read. */
static int send_inline(struct client *c, struct entry *l, int fd)
{
	struct enc e;
	size_t got = 0;
	int rc = read_local(c, fd, l->path, c->io, INLINE_MAX + 1, 0, &got);
	if (rc)
		return rc;
	if (got > INLINE_MAX) { /* grew meanwhile: stream what is there now */
		struct stat st;
		if (fstat(fd, &st) < 0)
			return -errno;
		l->size = (uint64_t)st.st_size;
		l->flags |= ENTRY_RACY;
		return send_stream(c, l, fd);
	}
	if (got != l->size)
		l->flags |= ENTRY_RACY;
	l->size = got;
	hash_mem(c->io, got, l->hash);
	l->flags &= (uint8_t)~ENTRY_UNHASHED;
	wire_begin(&c->w, &e);
	file_header(&e, l, got, FILE_INLINE);
	enc_fixed(&e, l->hash, 16);
	enc_fixed(&e, c->io, got);
	c->st->literal_bytes += got;
	progress(c, got, false);
	return wire_end(&c->w, &e, MSG_FILE, 0);
}

/* Larger files stream as DATA frames, hashed on the way; the hash closes
 * them (MSG_FEND). If the file changes meanwhile, the agent's check sees a
 * short or different file and asks for it again. */
static int send_stream(struct client *c, struct entry *l, int fd)
{
	struct enc e;
	XXH3_state_t *hs = XXH3_createState();
	if (!hs)
		return -ENOMEM;
	XXH3_128bits_reset(hs);
	wire_begin(&c->w, &e);
	file_header(&e, l, l->size, FILE_WHOLE);
	int rc = wire_end(&c->w, &e, MSG_FILE, 0);
	uint64_t off = 0;
	while (!rc && off < l->size) {
		size_t want = l->size - off < DATA_CHUNK ? (size_t)(l->size - off) : DATA_CHUNK, got = 0;
		wire_begin(&c->w, &e);
		rc = e.err ? e.err : buf_reserve(&c->w.out, want);
		uint8_t *p = c->w.out.data + c->w.out.len;
		if (!rc)
			rc = read_local(c, fd, l->path, p, want, off, &got);
		XXH3_128bits_update(hs, p, got);
		c->w.out.len += got;
		if (!rc)
			rc = wire_end(&c->w, &e, MSG_DATA, 0);
		if (got == 0)
			break;
		off += got;
		progress(c, got, false);
		if (!rc && c->w.out.len == 0)
			rc = drain(c); /* a flush just happened: look for errors */
	}
	uint64_t announced = l->size;
	set_sent_hash(l, hs, off);
	XXH3_freeState(hs);
	c->st->literal_bytes += off;
	if (!rc && off != announced)
		l->flags |= ENTRY_RACY; /* the agent will report it; we send it again */
	return rc ? rc : send_fend(c, l);
}

static int send_whole(struct client *c, struct entry *l)
{
	plan_line(c, "send", l->path, NULL);
	c->st->files_sent++;
	if (c->o->dry_run)
		return 0;
	int fd;
	int rc = open_local(c, l->path, &fd);
	if (vanished(rc))
		return local_vanished(c, l);
	if (rc)
		return rc;
	rc = l->size <= INLINE_MAX ? send_inline(c, l, fd) : send_stream(c, l, fd);
	close(fd);
	return rc;
}

struct delta_ctx {
	struct client *c;
	uint64_t literal;
};

static int emit_op(void *arg, const struct delta_op *op)
{
	struct delta_ctx *dc = arg;
	struct client *c = dc->c;
	struct enc e;
	wire_begin(&c->w, &e);
	if (op->kind == DELTA_COPY) {
		enc_uvar(&e, op->block);
		enc_uvar(&e, op->nblocks);
		return wire_end(&c->w, &e, MSG_COPY, 0);
	}
	enc_fixed(&e, op->data, op->len);
	dc->literal += op->len;
	return wire_end(&c->w, &e, MSG_DATA, 0);
}

/* Read the file once: each chunk is hashed and fed to the delta generator. */
static int delta_stream(struct client *c, struct entry *l, const struct delta_sig *sig, int fd,
			struct delta_ctx *dc)
{
	struct delta_gen *g = delta_gen_new(sig);
	XXH3_state_t *hs = XXH3_createState();
	int rc = g && hs ? 0 : -ENOMEM;
	uint64_t off = 0;
	if (!rc)
		XXH3_128bits_reset(hs);
	while (!rc && off < l->size) {
		size_t want = l->size - off < IO_CHUNK ? (size_t)(l->size - off) : IO_CHUNK, got = 0;
		rc = read_local(c, fd, l->path, c->io, want, off, &got);
		if (rc || got == 0)
			break;
		XXH3_128bits_update(hs, c->io, got);
		rc = delta_gen_feed(g, c->io, got, emit_op, dc);
		off += got;
	}
	if (!rc)
		rc = delta_gen_finish(g, emit_op, dc);
	if (hs)
		set_sent_hash(l, hs, off);
	delta_gen_free(g);
	XXH3_freeState(hs);
	return rc;
}

static int send_delta(struct client *c, struct entry *l, const struct delta_sig *sig)
{
	int fd;
	int rc = open_local(c, l->path, &fd);
	if (vanished(rc))
		return local_vanished(c, l);
	if (rc)
		return rc;
	struct enc e;
	wire_begin(&c->w, &e);
	file_header(&e, l, l->size, FILE_DELTA);
	enc_uvar(&e, sig->block_len);
	rc = wire_end(&c->w, &e, MSG_FILE, 0);
	struct delta_ctx dc = { .c = c };
	uint64_t size = l->size;
	if (!rc)
		rc = delta_stream(c, l, sig, fd, &dc);
	close(fd);
	if (rc) {
		if (!c->err->len)
			buf_printf(c->err, "cannot send %s/%s: %s", c->o->local_dir, l->path,
				   strerror(-rc));
		return rc;
	}
	rc = send_fend(c, l);
	c->st->files_sent++;
	c->st->delta_files++;
	c->st->literal_bytes += dc.literal;
	c->st->matched_bytes += size > dc.literal ? size - dc.literal : 0;
	progress(c, size, false);
	return rc;
}

static int recv_sig(struct client *c, uint32_t id, struct delta_sig *sig)
{
	struct frame f;
	int rc = expect(c, &f, MSG_SIG);
	if (rc)
		return rc;
	if (f.id != id) {
		buf_printf(c->err, "protocol error: signature %u from %s, expected %u", f.id,
			   c->o->peer, id);
		return -EPROTO;
	}
	struct dec d;
	dec_init(&d, &f);
	memset(sig, 0, sizeof(*sig));
	uint64_t size = dec_uvar(&d), block_len = dec_uvar(&d), strong_len = dec_uvar(&d);
	uint64_t count = dec_uvar(&d);
	if (d.err || block_len > DELTA_MAX_BLOCK || strong_len > DELTA_MAX_STRONG ||
	    (block_len && (count != (size + block_len - 1) / block_len || strong_len == 0)) ||
	    count * (4 + strong_len) != (uint64_t)(d.end - d.p)) {
		buf_printf(c->err, "protocol error: bad signature from %s", c->o->peer);
		return -EPROTO;
	}
	if (block_len == 0)
		return 0; /* no usable copy there */
	sig->file_size = size;
	sig->block_len = (uint32_t)block_len;
	sig->strong_len = (uint32_t)strong_len;
	rc = delta_sig_alloc(sig, count);
	if (rc) {
		buf_printf(c->err, "cannot hold the signature of a %" PRIu64 "-byte file: %s",
			   size, strerror(-rc));
		return rc;
	}
	for (uint64_t i = 0; i < count; i++) {
		uint8_t w[4];
		dec_fixed(&d, w, 4);
		sig->weak[i] = (uint32_t)w[0] | (uint32_t)w[1] << 8 | (uint32_t)w[2] << 16 |
			       (uint32_t)w[3] << 24;
	}
	if (count) /* (an empty old file has no blocks, and no array) */
		dec_fixed(&d, sig->strong, count * strong_len);
	return 0;
}

static bool needs_content(const struct entry *l, const struct entry *r);
static bool needs_attrs(const struct entry *l, const struct entry *r);

/* Delta candidates go in batches: ask for signatures, then send deltas.
 * One round trip per batch keeps the agent's replies from piling up. */
static int send_deltas(struct client *c, struct entry **v, size_t n)
{
	for (size_t start = 0; start < n; start += SIG_BATCH) {
		size_t end = start + SIG_BATCH < n ? start + SIG_BATCH : n;
		int rc = 0;
		for (size_t i = start; i < end && !rc; i++) {
			struct enc e;
			wire_begin(&c->w, &e);
			enc_str(&e, v[i]->path);
			rc = wire_end(&c->w, &e, MSG_SIGREQ, c->next_id + (uint32_t)(i - start));
			c->st->sig_requests++;
		}
		if (!rc)
			rc = wire_flush(&c->w);
		/* While the agent computes signatures: hash the files that kept
		 * their size, which may turn out not to have changed at all. */
		for (size_t i = start; i < end && !rc; i++)
			rc = ensure_hash(c, v[i]);
		for (size_t i = start; i < end && !rc; i++) {
			struct delta_sig sig;
			rc = recv_sig(c, c->next_id + (uint32_t)(i - start), &sig);
			if (rc)
				break;
			const struct entry *r = manifest_find(&c->remote, v[i]->path);
			if (c->fatal || v[i]->type == ENTRY_NONE) {
				/* the agent stopped applying, or the file vanished
				 * (handled): just consume the replies */
			} else if (r && !needs_content(v[i], r)) {
				rc = needs_attrs(v[i], r) ? send_setattr(c, v[i]) : 0;
			} else {
				rc = sig.block_len ? send_delta(c, v[i], &sig) : send_whole(c, v[i]);
			}
			delta_sig_free(&sig);
		}
		c->next_id += SIG_BATCH;
		if (rc)
			return rc;
	}
	return 0;
}

/* --- deltas from byte-range hints (no signature) ---------------------------- */

static int send_copy(struct client *c, uint64_t first, uint64_t count)
{
	if (!count)
		return 0;
	struct enc e;
	wire_begin(&c->w, &e);
	enc_uvar(&e, first);
	enc_uvar(&e, count);
	return wire_end(&c->w, &e, MSG_COPY, 0);
}

/* Bytes [off, end) of the local file as DATA frames; *sent counts them. A
 * file that shrank meanwhile sends less: the agent's check then fails and
 * asks for the file whole. */
static int send_range(struct client *c, const struct entry *l, int fd, uint64_t off,
		      uint64_t end, uint64_t *sent)
{
	int rc = 0;
	while (!rc && off < end) {
		size_t want = end - off < DATA_CHUNK ? (size_t)(end - off) : DATA_CHUNK, got = 0;
		rc = read_local(c, fd, l->path, c->io, want, off, &got);
		if (rc || got == 0)
			break;
		struct enc e;
		wire_begin(&c->w, &e);
		enc_fixed(&e, c->io, got);
		rc = wire_end(&c->w, &e, MSG_DATA, 0);
		off += got;
		*sent += got;
	}
	return rc;
}

/* The agent holds l's path as we last sent it, old_size bytes; the bytes
 * that changed since lie in hr (sorted, disjoint) or past old_size. Blocks
 * of HINT_BLOCK bytes that are whole on both sides and touch no range are
 * copied from the agent's copy; the rest travel. */
static int send_hinted_ops(struct client *c, const struct entry *l, uint64_t old_size,
			   const struct hint_range *hr, size_t nhr, int fd, uint64_t *sent)
{
	uint64_t full = (old_size < l->size ? old_size : l->size) / HINT_BLOCK;
	uint64_t pos = 0; /* blocks before pos are dealt with */
	int rc = 0;
	for (size_t i = 0; i < nhr && !rc; i++) {
		if (!hr[i].len)
			continue;
		uint64_t first = hr[i].off / HINT_BLOCK;
		uint64_t end = (hr[i].off + hr[i].len - 1) / HINT_BLOCK + 1;
		if (first >= full)
			break; /* in the tail, sent below */
		if (end > full)
			end = full;
		if (first < pos)
			first = pos; /* a block shared with the previous range */
		if (first >= end)
			continue;
		rc = send_copy(c, pos, first - pos);
		if (!rc)
			rc = send_range(c, l, fd, first * HINT_BLOCK, end * HINT_BLOCK, sent);
		pos = end;
	}
	if (!rc)
		rc = send_copy(c, pos, full - pos);
	if (!rc)
		rc = send_range(c, l, fd, full * HINT_BLOCK, l->size, sent);
	return rc;
}

/* The ranges to trust for l, or NULL for the usual way: a file at least
 * DELTA_THRESHOLD bytes, the agent's copy at the same path one we sent (and
 * not bigger: writes never shrink a file), and ranges for it. */
static const struct hint_range *hint_for(const struct client *c, const struct entry *l,
					 const struct entry *r, size_t *n)
{
	if (!c->hints || c->o->dry_run || l->type != ENTRY_FILE || !r ||
	    r->type != ENTRY_FILE || !(r->flags & ENTRY_TRACKED) ||
	    l->size < DELTA_THRESHOLD || l->size < r->size)
		return NULL;
	return hints_get(c->hints, l->path, n);
}

/* Send l from its hinted ranges. The file is read once whole for its hash
 * (the agent checks the rebuilt file against it), then the changed blocks
 * again, from the page cache. */
static int send_hinted(struct client *c, struct entry *l, const struct entry *r,
		       const struct hint_range *hr, size_t nhr)
{
	int fd;
	int rc = open_local(c, l->path, &fd);
	if (vanished(rc))
		return local_vanished(c, l);
	if (rc)
		return rc;
	rc = hash_entry_fd(c, l, fd);
	if (rc) {
		close(fd);
		return rc;
	}
	if (!needs_content(l, r)) { /* only times, or written back as it was */
		close(fd);
		return needs_attrs(l, r) ? send_setattr(c, l) : 0;
	}
	struct enc e;
	wire_begin(&c->w, &e);
	file_header(&e, l, l->size, FILE_DELTA);
	enc_uvar(&e, HINT_BLOCK);
	rc = wire_end(&c->w, &e, MSG_FILE, 0);
	uint64_t sent = 0;
	if (!rc)
		rc = send_hinted_ops(c, l, r->size, hr, nhr, fd, &sent);
	close(fd);
	if (!rc)
		rc = send_fend(c, l);
	if (rc) {
		if (!c->err->len)
			buf_printf(c->err, "cannot send %s/%s: %s", c->o->local_dir, l->path,
				   strerror(-rc));
		return rc;
	}
	c->st->files_sent++;
	c->st->delta_files++;
	c->st->hinted_files++;
	c->st->literal_bytes += sent;
	c->st->matched_bytes += l->size > sent ? l->size - sent : 0;
	progress(c, l->size, false);
	return 0;
}

/* --- planning ------------------------------------------------------------- */

static bool is_ignored(const struct entry *l)
{
	return l && (l->flags & ENTRY_IGNORED);
}

/* Is path, or a directory above it, excluded locally? Then a remote copy we
 * once sent is left in place and merely stops being tracked. */
static bool under_ignored(const struct client *c, const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (;;) {
		if (is_ignored(manifest_find(&c->local, tmp)))
			return true;
		size_t dlen = path_dir_len(tmp);
		if (dlen == 0)
			return false;
		tmp[dlen] = '\0';
	}
}

static size_t remote_index(const struct client *c, const struct entry *r)
{
	return (size_t)(r - c->remote.v);
}

/* Remote entries beneath dir, deepest first, then dir itself. */
static int delete_remote_tree(struct client *c, struct entry *dir)
{
	size_t dl = strlen(dir->path);
	for (size_t i = c->remote.n; i-- > 0;) {
		struct entry *r = &c->remote.v[i];
		if (c->handled[i] || strncmp(r->path, dir->path, dl) != 0 || r->path[dl] != '/')
			continue;
		c->handled[i] = true;
		if (r->flags & ENTRY_TRACKED) {
			int rc = send_delete(c, r, false);
			if (rc)
				return rc;
		}
	}
	c->handled[remote_index(c, dir)] = true;
	return send_delete(c, dir, false);
}

/* An unhashed file reaches here only when its size already tells. */
static bool needs_content(const struct entry *l, const struct entry *r)
{
	if (r && (l->flags & ENTRY_UNHASHED))
		return r->type != ENTRY_FILE || r->size != l->size;
	return !r || !entry_same_content(l, r);
}

static bool needs_attrs(const struct entry *l, const struct entry *r)
{
	if (!(r->flags & ENTRY_TRACKED))
		return true; /* adopt what is already there */
	if (l->type == ENTRY_SYMLINK)
		return false;
	return l->mode != r->mode || (l->type == ENTRY_FILE && l->mtime_ns != r->mtime_ns);
}

/* Remote entry at l's path still standing after type-change deletes. */
static struct entry *remote_for(struct client *c, const struct entry *l)
{
	struct entry *r = manifest_find(&c->remote, l->path);
	if (r && c->handled[remote_index(c, r)])
		return NULL;
	return r;
}

static int by_hash(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
	int h = memcmp(x->hash, y->hash, 16);
	return h ? h : (x->size > y->size) - (x->size < y->size);
}

/* Tracked remote files that vanished locally: content a new local file may
 * be renamed from instead of sent. Sorted by hash. */
static int rename_sources(struct client *c, struct entry ***out, size_t *n)
{
	struct entry **v = malloc((c->remote.n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	*n = 0;
	for (size_t i = 0; i < c->remote.n; i++) {
		struct entry *r = &c->remote.v[i];
		if (r->type == ENTRY_FILE && (r->flags & ENTRY_TRACKED) && r->size > 0 &&
		    !c->handled[i] && !manifest_find(&c->local, r->path))
			v[(*n)++] = r;
	}
	qsort(v, *n, sizeof(*v), by_hash);
	*out = v;
	return 0;
}

static bool source_with_size(struct entry **v, size_t n, uint64_t size)
{
	for (size_t i = 0; i < n; i++)
		if (v[i]->size == size)
			return true;
	return false;
}

static struct entry *take_source(struct client *c, struct entry **v, size_t n, const struct entry *l)
{
	struct entry key = *l;
	struct entry *kp = &key;
	struct entry **hit = bsearch(&kp, v, n, sizeof(*v), by_hash);
	if (!hit)
		return NULL;
	/* Several vanished files may share content: take one not used yet. */
	while (hit > v && by_hash(hit - 1, &kp) == 0)
		hit--;
	for (; hit < v + n && by_hash(hit, &kp) == 0; hit++) {
		size_t i = remote_index(c, *hit);
		if (!c->handled[i]) {
			c->handled[i] = true;
			return *hit;
		}
	}
	return NULL;
}

static int plan_and_send(struct client *c)
{
	int rc = 0;
	struct entry **deltas = NULL, **sources = NULL;
	size_t ndeltas = 0, nsources = 0;
	c->handled = calloc(c->remote.n + 1, sizeof(*c->handled));
	deltas = malloc((c->local.n + 1) * sizeof(*deltas));
	if (!c->handled || !deltas) {
		rc = -ENOMEM;
		goto out;
	}

	/* 1. Type changes that involve a directory: clear the way first. */
	for (size_t i = 0; i < c->local.n && !rc; i++) {
		struct entry *l = &c->local.v[i], *r = remote_for(c, l);
		if (is_ignored(l) || !r || r->type == l->type)
			continue;
		if (r->type == ENTRY_DIR)
			rc = delete_remote_tree(c, r);
		else if (l->type == ENTRY_DIR) {
			c->handled[remote_index(c, r)] = true;
			rc = send_delete(c, r, false);
		}
	}
	/* 2. Directories, parents first (sorted order). */
	for (size_t i = 0; i < c->local.n && !rc; i++) {
		struct entry *l = &c->local.v[i], *r = remote_for(c, l);
		if (is_ignored(l) || l->type != ENTRY_DIR)
			continue;
		if (!r)
			rc = send_mkdir(c, l);
		else if (needs_attrs(l, r))
			rc = send_setattr(c, l);
	}
	/* 3. Files and symlinks: rename, attributes only, delta, or whole. */
	if (!rc)
		rc = rename_sources(c, &sources, &nsources);
	for (size_t i = 0; i < c->local.n && !rc && !c->fatal; i++) {
		struct entry *l = &c->local.v[i], *r = remote_for(c, l);
		if (is_ignored(l) || l->type == ENTRY_DIR)
			continue;
		size_t nhr;
		const struct hint_range *hr = hint_for(c, l, r, &nhr);
		if (hr) {
			rc = send_hinted(c, l, r, hr, nhr);
			if (!rc)
				rc = drain(c);
			continue;
		}
		if (l->flags & ENTRY_UNHASHED) {
			bool same_size = r && r->type == ENTRY_FILE && r->size == l->size;
			if (same_size && l->size >= DELTA_THRESHOLD && !c->o->dry_run) {
				deltas[ndeltas++] = l; /* hashed while its signature is made */
				continue;
			}
			if (same_size || source_with_size(sources, nsources, l->size))
				rc = ensure_hash(c, l);
			if (rc)
				break;
			if (l->type == ENTRY_NONE)
				continue; /* vanished */
		}
		if (!needs_content(l, r)) {
			if (needs_attrs(l, r))
				rc = send_setattr(c, l);
			continue;
		}
		if (l->type == ENTRY_SYMLINK) {
			rc = send_symlink(c, l);
			continue;
		}
		struct entry *from = (l->flags & ENTRY_UNHASHED) ? NULL
				     : take_source(c, sources, nsources, l);
		if (from)
			rc = send_rename(c, from, l);
		else if (r && r->type == ENTRY_FILE && l->size >= DELTA_THRESHOLD && !c->o->dry_run)
			deltas[ndeltas++] = l;
		else if (r && r->type == ENTRY_FILE && l->size >= DELTA_THRESHOLD)
			plan_line(c, "update", l->path, " (delta)");
		else
			rc = send_whole(c, l);
		if (!rc && !c->o->dry_run)
			rc = drain(c);
	}
	if (!rc && !c->fatal)
		rc = send_deltas(c, deltas, ndeltas);
	/* 4. What is gone locally, deepest first. */
	for (size_t i = c->remote.n; i-- > 0 && !rc && !c->fatal;) {
		struct entry *r = &c->remote.v[i];
		if (c->handled[i] || !(r->flags & ENTRY_TRACKED))
			continue;
		struct entry *l = manifest_find(&c->local, r->path);
		if (l && !is_ignored(l))
			continue;
		rc = send_delete(c, r, under_ignored(c, r->path));
	}
out:
	free(deltas);
	free(sources);
	free(c->handled);
	c->handled = NULL;
	return rc;
}

static int commit(struct client *c)
{
	struct enc e;
	wire_begin(&c->w, &e);
	int rc = wire_end(&c->w, &e, MSG_COMMIT, 0);
	if (!rc)
		rc = wire_flush(&c->w);
	struct frame f;
	if (!rc)
		rc = expect(c, &f, MSG_COMMITTED);
	if (rc)
		return rc;
	struct dec d;
	dec_init(&d, &f);
	c->generation = dec_uvar(&d);
	dec_uvar(&d); /* the agent's error count; each one was reported */
	return d.err ? -EPROTO : 0;
}

/* Files whose delta did not verify (a weak+strong collision, or the file
 * changed while we read it): look again and send them whole, once. */
static int resend_retries(struct client *c)
{
	char **paths = c->retry;
	size_t n = c->nretry;
	c->retry = NULL;
	c->nretry = 0;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct entry *l = manifest_find(&c->local, paths[i]);
		if (!rc && l && l->type == ENTRY_FILE) {
			rc = entry_refresh(c->root_fd, l, NULL);
			/* Gone meanwhile (renamed away): the host still holds
			 * its old copy, which must go too. */
			if (!rc && l->type == ENTRY_NONE)
				rc = local_vanished(c, l);
			else if (!rc && l->type == ENTRY_FILE)
				rc = send_whole(c, l);
		}
		free(paths[i]);
	}
	free(paths);
	if (!rc)
		rc = commit(c);
	/* A second failure is a real one. */
	for (size_t i = 0; i < c->nretry; i++) {
		log_error("%s: %s/%s kept changing while it was sent; run the sync again",
			  c->o->peer, c->o->local_dir, c->retry[i]);
		c->errors++;
	}
	return rc;
}

/* What the agent holds after a batch that fully succeeded: the local
 * entries that were sent or found equal, all tracked now. */
static int view_from_local(const struct manifest *l, struct manifest *out)
{
	for (size_t i = 0; i < l->n; i++) {
		struct entry e = l->v[i];
		if (e.flags & (ENTRY_IGNORED | ENTRY_UNHASHED))
			continue;
		e.flags = ENTRY_TRACKED;
		int rc = manifest_add(out, &e);
		if (rc)
			return rc;
	}
	manifest_sort(out);
	return 0;
}

/* Keep the local scan as the next run's hash cache, and our view of the
 * remote as of the generation it acknowledged (or none, if in doubt). */
static void save_state(struct client *c, bool remote_ok)
{
	struct manifest keep;
	manifest_init(&keep);
	/* Files still unhashed (their transfer failed) are left out: the next
	 * run looks at them afresh. */
	int rc = view_from_local(&c->local, &keep);
	if (!rc)
		rc = manifest_save(&keep, c->state_fd, HASHCACHE_FILE);
	if (rc)
		log_warn("cannot save %s/%s/state/%s: %s", c->o->local_dir, STATE_DIR,
			 HASHCACHE_FILE, strerror(-rc));
	manifest_free(&keep);
	rc = -EAGAIN;
	if (remote_ok) {
		memcpy(c->remote.root_id, c->root_id, 16);
		c->remote.generation = c->generation;
		rc = manifest_save(&c->remote, c->state_fd, c->remote_state);
	}
	if (rc)
		unlinkat(c->state_fd, c->remote_state, 0);
}

static int scan_local(struct client *c)
{
	struct scan_options so = {
		.use_ignore_files = true,
		.include_vcs = c->o->include_vcs,
		.hash_cache = &c->hash_cache,
		.defer_hash = true,
	};
	struct scan_stats ss = { 0 };
	struct buf serr = BUF_INIT;
	int rc = manifest_scan(c->root_fd, &so, true, &c->local, &ss, &serr);
	if (rc)
		buf_printf(c->err, "scanning %s: %s", c->o->local_dir,
			   serr.len ? (const char *)serr.data : strerror(-rc));
	buf_free(&serr);
	c->st->scanned = ss.entries;
	for (size_t i = 0; i < c->local.n; i++) {
		const struct entry *l = &c->local.v[i];
		if (!is_ignored(l) && l->type == ENTRY_FILE)
			c->progress_total += l->size;
	}
	return rc;
}

/* Errors of the batch just committed, as the batch's result. */
static int batch_result(struct client *c)
{
	if (c->fatal) {
		c->err->len = 0;
		buf_append(c->err, c->fatal_msg.data, c->fatal_msg.len);
		return -EIO;
	}
	if (c->errors) {
		buf_printf(c->err, "sync of %s to %s incomplete: %u error%s", c->o->local_dir,
			   c->o->peer, c->errors, c->errors == 1 ? "" : "s");
		return -EIO;
	}
	return 0;
}

static void batch_reset(struct client *c)
{
	c->errors = 0;
	c->fatal = false;
	buf_reset(&c->fatal_msg);
}

/* Plan, send and commit what the local and remote views (c->local,
 * c->remote) disagree on. */
static int send_batch(struct client *c, int64_t t0)
{
	batch_reset(c);
	int rc = plan_and_send(c);
	log_debug("changes sent after %" PRId64 " ms", mono_ms() - t0);
	if (!rc && !c->o->dry_run)
		rc = commit(c);
	log_debug("committed after %" PRId64 " ms", mono_ms() - t0);
	if (!rc && c->nretry)
		rc = resend_retries(c);
	return rc ? rc : batch_result(c);
}

/* Connect, and bring the whole remote tree in line with the local one. */
static int open_and_reconcile(struct client *c, struct transport *t)
{
	struct manifest cached;
	manifest_init(&cached);
	int rc = open_state(c);
	if (rc) {
		buf_printf(c->err, "cannot create %s/%s/state: %s", c->o->local_dir, STATE_DIR,
			   strerror(-rc));
		return rc;
	}
	state_name_for(c->o->dest_key, c->remote_state);
	manifest_load(&c->hash_cache, c->state_fd, HASHCACHE_FILE);
	manifest_load(&cached, c->state_fd, c->remote_state);

	rc = wire_init(&c->w, t, c->o->zstd_level);
	if (rc)
		return rc;
	c->wire_ready = true;
	rc = wire_handshake(&c->w, HANDSHAKE_TIMEOUT_MS, c->err);
	if (rc)
		goto out;
	int64_t t0 = mono_ms();
	rc = send_open(c, &cached);
	/* The agent looks at its side while we look at ours. */
	if (!rc)
		rc = scan_local(c);
	log_debug("scanned %s: %zu entries in %" PRId64 " ms", c->o->local_dir, c->local.n,
		  mono_ms() - t0);
	if (!rc)
		rc = recv_opened(c, &cached);
	if (rc)
		goto out;
	log_debug("%s answered (%s, %zu entries) after %" PRId64 " ms", c->o->peer,
		  c->st->incremental ? "incremental" : "full", c->remote.n, mono_ms() - t0);
	/* Only files that will actually travel count for the progress bar. */
	c->progress_total = 0;
	for (size_t i = 0; i < c->local.n; i++) {
		const struct entry *l = &c->local.v[i], *r = manifest_find(&c->remote, l->path);
		if (!is_ignored(l) && l->type == ENTRY_FILE && needs_content(l, r))
			c->progress_total += l->size;
	}
	rc = send_batch(c, t0);
	progress(c, 0, true);
	manifest_compact(&c->local); /* files that vanished while sent */
	if (c->o->dry_run)
		goto out;
	if (!rc) {
		struct manifest now;
		manifest_init(&now);
		rc = view_from_local(&c->local, &now);
		manifest_free(&c->remote);
		c->remote = now;
	}
	save_state(c, !rc);
out:
	manifest_free(&cached);
	return rc;
}

/* Our write failed because the agent went away: what it said before
 * leaving (an error report, or bytes that were not the protocol) tells the
 * user more than "broken pipe". Fills c->err if so. */
static void explain_broken_pipe(struct client *c)
{
	struct frame f;
	int rc;
	while ((rc = recv_frame(c, &f, 200)) == 1)
		;
	if (rc == -EAGAIN || rc == -EPIPE)
		c->err->len = 0; /* nothing more to say than the pipe itself */
}

static void client_free(struct client *c)
{
	if (c->wire_ready)
		wire_free(&c->w);
	for (size_t i = 0; i < c->nretry; i++)
		free(c->retry[i]);
	free(c->retry);
	free(c->handled);
	free(c->io);
	buf_free(&c->fatal_msg);
	manifest_free(&c->local);
	manifest_free(&c->remote);
	manifest_free(&c->hash_cache);
	if (c->state_fd >= 0)
		close(c->state_fd);
	if (c->root_fd >= 0)
		close(c->root_fd);
	free(c);
}

/* A failure's message, when the failing step left none. */
static void explain(struct client *c, int rc)
{
	if (rc == -EPIPE && !c->err->len && c->wire_ready)
		explain_broken_pipe(c);
	if (rc && !c->err->len) {
		/* A failed write or read on the way: the peer went away. */
		if (c->fatal_msg.len)
			buf_append(c->err, c->fatal_msg.data, c->fatal_msg.len);
		else
			buf_printf(c->err, "lost the connection to %s: %s", c->o->peer,
				   strerror(-rc));
	}
	if (c->wire_ready) {
		c->st->bytes_sent = c->w.bytes_sent;
		c->st->bytes_recv = c->w.bytes_recv;
	}
}

int sync_session_open(struct transport *t, const struct sync_options *o, struct sync_stats *st,
		      struct sync_session **out, struct buf *err)
{
	*out = NULL;
	memset(st, 0, sizeof(*st));
	struct client *c = calloc(1, sizeof(*c));
	if (!c) {
		buf_printf(err, "out of memory");
		return -ENOMEM;
	}
	c->o = o;
	c->st = st;
	c->err = err;
	c->state_fd = -1;
	c->root_fd = open(o->local_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c->io = malloc(IO_CHUNK);
	int rc = c->root_fd < 0 ? -errno : c->io ? 0 : -ENOMEM;
	if (rc) {
		buf_printf(err, "cannot open %s: %s", o->local_dir, strerror(-rc));
		client_free(c);
		return rc;
	}
	rc = open_and_reconcile(c, t);
	explain(c, rc);
	if (rc) {
		client_free(c);
		return rc;
	}
	*out = (struct sync_session *)c;
	return 0;
}

void sync_session_save(struct sync_session *s)
{
	struct client *c = (struct client *)s;
	if (c && c->state_pending) {
		save_state(c, true);
		c->state_pending = false;
	}
}

void sync_session_close(struct sync_session *s)
{
	if (s) {
		sync_session_save(s);
		client_free((struct client *)s);
	}
}

int sync_run(struct transport *t, const struct sync_options *o, struct sync_stats *st,
	     struct buf *err)
{
	struct sync_session *s;
	int rc = sync_session_open(t, o, st, &s, err);
	sync_session_close(s);
	return rc;
}

/* --- pushing a batch of changed paths ---------------------------------------- */

static bool at_or_under(const char *path, char *const *paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(path, paths[i]) == 0 || path_is_under(path, paths[i]))
			return true;
	return false;
}

/* Copies of the entries of m at or under any of paths. */
static int select_entries(const struct manifest *m, char *const *paths, size_t n,
			  struct manifest *out)
{
	for (size_t i = 0; i < m->n; i++)
		if (at_or_under(m->v[i].path, paths, n)) {
			int rc = manifest_add(out, &m->v[i]);
			if (rc)
				return rc;
		}
	manifest_sort(out);
	return 0;
}

/* Drop the entries of m at or under any of paths. */
static void drop_entries(struct manifest *m, char *const *paths, size_t n)
{
	for (size_t i = 0; i < m->n; i++)
		if (at_or_under(m->v[i].path, paths, n))
			m->v[i].type = ENTRY_NONE;
	manifest_compact(m);
}

/* Move every entry of from into m (which is then re-sorted). */
static int merge_entries(struct manifest *m, struct manifest *from)
{
	int rc = 0;
	for (size_t i = 0; i < from->n && !rc; i++)
		rc = manifest_add(m, &from->v[i]);
	manifest_free(from);
	manifest_sort(m);
	return rc;
}

/* Directory PATH (entry e) and everything under it into out; a directory
 * that vanishes while it is walked adds nothing. */
static int rescan_dir(struct client *c, const struct scan_options *so, const char *path,
		      const struct entry *e, struct manifest *out)
{
	struct manifest sub;
	struct scan_stats ss = { 0 };
	size_t errlen = c->err->len;
	manifest_init(&sub);
	int rc = manifest_add(&sub, e);
	if (!rc)
		rc = manifest_scan_under(c->root_fd, path, so, true, &sub, &ss, c->err);
	if (vanished(rc)) {
		c->err->len = errlen; /* not an error: see vanished() */
		manifest_free(&sub);
		return 0;
	}
	if (rc) {
		manifest_free(&sub);
		return rc;
	}
	for (size_t i = 0; i < sub.n && !rc; i++)
		rc = manifest_add(out, &sub.v[i]);
	manifest_free(&sub);
	return rc;
}

/* The local state of one path, and of everything under it if it is a
 * directory, as a scan would have found it. */
static int rescan_path(struct client *c, const char *path, struct manifest *out)
{
	struct scan_options so = {
		.use_ignore_files = true,
		.include_vcs = c->o->include_vcs,
		.hash_cache = &c->hash_cache,
		.defer_hash = true,
	};
	struct entry e = { .path = (char *)path };
	const struct entry *cached = manifest_find(&c->hash_cache, path);
	int rc = entry_refresh(c->root_fd, &e, cached);
	if (vanished(rc))
		rc = 0, e.type = ENTRY_NONE;
	if (rc || e.type == ENTRY_NONE) {
		free(e.link);
		if (rc)
			buf_printf(c->err, "cannot read %s/%s: %s", c->o->local_dir, path,
				   strerror(-rc));
		return rc;
	}
	rc = manifest_path_ignored(c->root_fd, path, e.type == ENTRY_DIR, &so);
	if (rc == 1) {
		/* Excluded: remote copies under it stop being tracked. */
		e.flags = ENTRY_IGNORED;
		rc = manifest_add(out, &e);
	} else if (rc == 0 && e.type == ENTRY_DIR) {
		rc = rescan_dir(c, &so, path, &e, out);
	} else if (rc == 0) {
		rc = manifest_add(out, &e);
	} else if (vanished(rc)) {
		rc = 0;
	}
	free(e.link);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int sync_session_push(struct sync_session *s, char **paths, size_t n, struct buf *err)
{
	return sync_session_push_hinted(s, paths, n, NULL, err);
}

int sync_session_push_hinted(struct sync_session *s, char **paths, size_t n,
			     const struct hints *hints, struct buf *err)
{
	struct client *c = (struct client *)s;
	c->err = err;
	qsort(paths, n, sizeof(*paths), cmp_str);
	int64_t t0 = mono_ms();
	struct manifest fresh, lsub, rsub, keep_local, keep_remote;
	manifest_init(&fresh);
	manifest_init(&lsub);
	manifest_init(&rsub);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		if (i == 0 || strcmp(paths[i], paths[i - 1]) != 0)
			rc = rescan_path(c, paths[i], &fresh);
	if (!rc) {
		drop_entries(&c->local, paths, n);
		rc = select_entries(&fresh, paths, n, &lsub);
		if (!rc)
			rc = merge_entries(&c->local, &fresh);
	}
	if (!rc)
		rc = select_entries(&c->remote, paths, n, &rsub);
	if (rc) {
		manifest_free(&fresh);
		manifest_free(&lsub);
		manifest_free(&rsub);
		if (!err->len)
			buf_printf(err, "out of memory");
		return rc;
	}
	/* Plan on the two small views, as if they were the whole trees. */
	keep_local = c->local;
	keep_remote = c->remote;
	c->local = lsub;
	c->remote = rsub;
	c->hints = hints;
	rc = send_batch(c, t0);
	c->hints = NULL;
	lsub = c->local; /* entries gained hashes as they were sent */
	manifest_compact(&lsub); /* files that vanished while sent */
	manifest_free(&c->remote);
	c->local = keep_local;
	c->remote = keep_remote;
	if (!rc) {
		struct manifest now;
		manifest_init(&now);
		drop_entries(&c->local, paths, n);
		drop_entries(&c->remote, paths, n);
		rc = view_from_local(&lsub, &now);
		if (!rc)
			rc = merge_entries(&c->local, &lsub);
		if (!rc)
			rc = merge_entries(&c->remote, &now);
	}
	manifest_free(&lsub);
	if (rc) {
		save_state(c, false); /* the views are in doubt: next time, a full exchange */
		c->state_pending = false;
	} else {
		c->state_pending = true;
	}
	explain(c, rc);
	log_debug("pushed %zu paths in %" PRId64 " ms", n, mono_ms() - t0);
	return rc;
}
