/* vjobs.c: see vjobs.h. Job output lives in the jobclient's files; this
 * layer only names them and decides where a reader waits. */
#include "vjobs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"

enum vkind {
	V_RUN,
	V_WAIT,
	V_CANCEL,
	V_DIR_OUT,  /* out/ */
	V_DIR_JOBS, /* jobs/ */
	V_DIR_JOB,  /* jobs/ID/ */
	V_STDOUT,
	V_STDERR,
	V_STATUS,
	V_COMMAND,
};

/* What a vpath names: a kind and the job (0: the current one, under out/). */
struct vref {
	enum vkind kind;
	uint64_t id;
};

static const struct {
	const char *name;
	enum vkind kind;
} top_names[] = {
	{ "run", V_RUN }, { "wait", V_WAIT }, { "cancel", V_CANCEL },
	{ "out", V_DIR_OUT }, { "jobs", V_DIR_JOBS },
}, job_files[] = {
	{ "stdout", V_STDOUT }, { "stderr", V_STDERR }, { "status", V_STATUS },
	{ "command", V_COMMAND },
};
#define N_TOP (sizeof(top_names) / sizeof(top_names[0]))
#define N_JOB_FILES (sizeof(job_files) / sizeof(job_files[0]))
#define N_OUT_FILES 3 /* out/ has no command */

static int kind_of(const char *name, bool in_out, enum vkind *kind)
{
	size_t count = in_out ? N_OUT_FILES : N_JOB_FILES;
	for (size_t i = 0; i < count; i++) {
		if (!strcmp(job_files[i].name, name)) {
			*kind = job_files[i].kind;
			return 0;
		}
	}
	return -ENOENT;
}

/* Parse vpath; jobs/ID must be a job the client knows. */
static int parse(struct vjobs_config *cfg, const char *vpath, struct vref *r)
{
	*r = (struct vref){ 0 };
	for (size_t i = 0; i < N_TOP; i++) {
		if (!strcmp(vpath, top_names[i].name)) {
			r->kind = top_names[i].kind;
			return 0;
		}
	}
	if (!strncmp(vpath, "out/", 4))
		return kind_of(vpath + 4, true, &r->kind);
	if (strncmp(vpath, "jobs/", 5))
		return -ENOENT;
	char *end;
	unsigned long long id = strtoull(vpath + 5, &end, 10);
	struct jobinfo ji;
	if (end == vpath + 5 || id == 0 || (*end && *end != '/') ||
	    jobclient_info(cfg->jobs, id, &ji))
		return -ENOENT;
	r->id = id;
	if (!*end) {
		r->kind = V_DIR_JOB;
		return 0;
	}
	return kind_of(end + 1, false, &r->kind);
}

static int vj_stat(void *ctx, const char *vpath, struct fs_vstat *st)
{
	struct vref r;
	int rc = parse(ctx, vpath, &r);
	if (rc)
		return rc;
	*st = (struct fs_vstat){ .perm = 0444 };
	switch (r.kind) {
	case V_DIR_OUT:
	case V_DIR_JOBS:
	case V_DIR_JOB:
		st->dir = true;
		st->perm = 0555;
		break;
	case V_RUN:
		st->perm = 0644;
		break;
	case V_CANCEL:
		st->perm = 0200;
		break;
	default:
		break;
	}
	return 0;
}

static int vj_list(void *ctx, const char *vpath, struct fs_vnames *names)
{
	struct vjobs_config *cfg = ctx;
	struct vref r;
	int rc = 0;
	if (!*vpath) {
		for (size_t i = 0; i < N_TOP && !rc; i++)
			rc = fs_vnames_add(names, top_names[i].name);
		return rc;
	}
	rc = parse(cfg, vpath, &r);
	if (rc)
		return rc;
	if (r.kind == V_DIR_JOBS) {
		uint64_t ids[JOBCLIENT_KEPT];
		size_t n = jobclient_list(cfg->jobs, ids, JOBCLIENT_KEPT);
		for (size_t i = 0; i < n && !rc; i++) {
			char name[24];
			snprintf(name, sizeof(name), "%llu", (unsigned long long)ids[i]);
			rc = fs_vnames_add(names, name);
		}
		return rc;
	}
	if (r.kind != V_DIR_OUT && r.kind != V_DIR_JOB)
		return -ENOTDIR;
	size_t count = r.kind == V_DIR_OUT ? N_OUT_FILES : N_JOB_FILES;
	for (size_t i = 0; i < count && !rc; i++)
		rc = fs_vnames_add(names, job_files[i].name);
	return rc;
}

/* ---------------------------------------------------------- open files --- */

struct vhandle {
	enum vkind kind;
	uint64_t id;           /* the job; 0: none */
	int fd;                /* stdout/stderr backing file, or -1 */
	bool nonblock;
	pthread_mutex_t lock;  /* run: input and content */
	struct buf content;    /* what reads return (except streams and wait) */
	struct buf input;      /* run: written, not submitted yet */
};

#define NO_JOB_TEXT "no job has run in this mount\n"

static int open_stream(struct vjobs_config *cfg, struct vhandle *h, int flags)
{
	char path[PATH_MAX];
	h->nonblock = flags & O_NONBLOCK;
	if (!h->id)
		return 0; /* nothing ran: empty */
	jobclient_path(cfg->jobs, h->id, h->kind == V_STDOUT ? "stdout" : "stderr", path,
		       sizeof(path));
	h->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (h->fd < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int read_command(struct vjobs_config *cfg, struct vhandle *h)
{
	char path[PATH_MAX];
	jobclient_path(cfg->jobs, h->id, "command", path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int rc = fd_read_all(fd, &h->content, 1 << 20);
	close(fd);
	if (!rc)
		rc = buf_append_str(&h->content, "\n");
	return rc;
}

static int vj_open(void *ctx, const char *vpath, int flags, void **fh)
{
	struct vjobs_config *cfg = ctx;
	struct vref r;
	struct jobinfo ji;
	int rc = parse(cfg, vpath, &r);
	if (rc)
		return rc;
	if (r.kind == V_DIR_OUT || r.kind == V_DIR_JOBS || r.kind == V_DIR_JOB)
		return -EISDIR;
	bool writes = (flags & O_ACCMODE) != O_RDONLY;
	if (writes && r.kind != V_RUN && r.kind != V_CANCEL)
		return -EACCES;
	struct vhandle *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->kind = r.kind;
	h->fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	bool known = jobclient_info(cfg->jobs, r.id, &ji) == 0;
	/* The job this handle follows: the named one, or the latest (id 0
	 * when none ran or the latest run was refused). */
	h->id = known && r.kind != V_RUN && r.kind != V_CANCEL ? ji.id : 0;
	switch (r.kind) {
	case V_STDOUT:
	case V_STDERR:
		rc = open_stream(cfg, h, flags);
		break;
	case V_STATUS:
		if (known)
			jobinfo_format(&ji, &h->content);
		else
			buf_append_str(&h->content, NO_JOB_TEXT);
		break;
	case V_COMMAND:
		rc = read_command(cfg, h);
		break;
	case V_WAIT:
		if (!known)
			buf_append_str(&h->content, NO_JOB_TEXT);
		break;
	default:
		break;
	}
	if (rc) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return rc;
	}
	*fh = h;
	return 0;
}

static ssize_t serve_buf(const struct buf *b, char *out, size_t size, off_t off)
{
	if ((uint64_t)off >= b->len)
		return 0;
	size_t n = b->len - (size_t)off < size ? b->len - (size_t)off : size;
	memcpy(out, b->data + off, n);
	return (ssize_t)n;
}

static bool job_over(struct vjobs_config *cfg, uint64_t id)
{
	struct jobinfo ji;
	return jobclient_info(cfg->jobs, id, &ji) || job_state_final(ji.state);
}

static ssize_t read_stream(struct vjobs_config *cfg, struct vhandle *h, char *out, size_t size,
			   off_t off)
{
	if (h->fd < 0)
		return 0;
	/* The state first: output is all on disk before a job is marked over. */
	bool over = job_over(cfg, h->id);
	ssize_t n = pread(h->fd, out, size, off);
	if (n < 0)
		return -errno;
	if (n == 0 && !over && !h->nonblock)
		return -EAGAIN;
	return n;
}

/* .hermes/wait: the status, once the job it opened on has ended. */
static ssize_t read_wait(struct vjobs_config *cfg, struct vhandle *h, char *out, size_t size,
			 off_t off)
{
	struct jobinfo ji;
	pthread_mutex_lock(&h->lock);
	if (!h->content.len && h->id) {
		if (jobclient_info(cfg->jobs, h->id, &ji) == 0 && !job_state_final(ji.state)) {
			pthread_mutex_unlock(&h->lock);
			return -EAGAIN;
		}
		jobinfo_format(&ji, &h->content);
	}
	ssize_t n = serve_buf(&h->content, out, size, off);
	pthread_mutex_unlock(&h->lock);
	return n;
}

static ssize_t vj_read(void *ctx, void *fh, char *out, size_t size, off_t off)
{
	struct vhandle *h = fh;
	switch (h->kind) {
	case V_STDOUT:
	case V_STDERR:
		return read_stream(ctx, h, out, size, off);
	case V_WAIT:
		return read_wait(ctx, h, out, size, off);
	default: {
		pthread_mutex_lock(&h->lock);
		ssize_t n = serve_buf(&h->content, out, size, off);
		pthread_mutex_unlock(&h->lock);
		return n;
	}
	}
}

/* ---------------------------------------------------------- submitting --- */

/* Run one command line: barrier, then the job; the reply (id or error) goes
 * to h->content. Caller holds h->lock. */
static int submit(struct vjobs_config *cfg, struct vhandle *h, char *line)
{
	while (*line == ' ' || *line == '\t')
		line++;
	size_t len = strlen(line);
	while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (!len)
		return 0;
	struct buf err = BUF_INIT;
	uint64_t id = 0;
	int rc;
	int64_t gen = cfg->barrier(cfg->ctx);
	if (gen < 0) {
		rc = (int)gen;
		buf_printf(&err, "edits have not reached the host, the job was not sent: %s",
			   strerror(-rc));
	} else {
		rc = jobclient_run(cfg->jobs, line, &id, &err);
	}
	buf_reset(&h->content);
	if (rc)
		buf_printf(&h->content, "error: %.*s\n", (int)err.len, (const char *)err.data);
	else
		buf_printf(&h->content, "%llu\n", (unsigned long long)id);
	if (rc)
		log_warn("run '%s': %.*s", line, (int)err.len, (const char *)err.data);
	buf_free(&err);
	return rc;
}

/* Each complete line written is a job, sent before write() returns, so a
 * shell's `echo cmd > .hermes/run` sees the failure (shells ignore close's). */
static ssize_t write_run(struct vjobs_config *cfg, struct vhandle *h, const char *data,
			 size_t size)
{
	int rc = 0;
	pthread_mutex_lock(&h->lock);
	if (buf_append(&h->input, data, size)) {
		pthread_mutex_unlock(&h->lock);
		return -ENOMEM;
	}
	char *nl;
	while (!rc && (nl = memchr(h->input.data, '\n', h->input.len))) {
		size_t line_len = (size_t)(nl - (char *)h->input.data);
		char *line = strndup((const char *)h->input.data, line_len);
		buf_consume(&h->input, line_len + 1);
		rc = line ? submit(cfg, h, line) : -ENOMEM;
		free(line);
	}
	if (rc)
		buf_reset(&h->input); /* what followed a refused job is not run */
	pthread_mutex_unlock(&h->lock);
	return rc ? rc : (ssize_t)size;
}

static ssize_t vj_write(void *ctx, void *fh, const char *data, size_t size, off_t off)
{
	struct vhandle *h = fh;
	(void)off;
	if (h->kind == V_RUN)
		return write_run(ctx, h, data, size);
	if (h->kind == V_CANCEL) {
		int rc = jobclient_cancel(((struct vjobs_config *)ctx)->jobs);
		return rc ? rc : (ssize_t)size;
	}
	return -EBADF;
}

/* close(): a last line without its newline is a job too. */
static int vj_flush(void *ctx, void *fh)
{
	struct vhandle *h = fh;
	if (h->kind != V_RUN)
		return 0;
	pthread_mutex_lock(&h->lock);
	int rc = 0;
	if (h->input.len) {
		char *line = strndup((const char *)h->input.data, h->input.len);
		buf_reset(&h->input);
		rc = line ? submit(ctx, h, line) : -ENOMEM;
		free(line);
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static void vj_release(void *ctx, void *fh)
{
	struct vhandle *h = fh;
	(void)ctx;
	if (h->fd >= 0)
		close(h->fd);
	buf_free(&h->content);
	buf_free(&h->input);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void vjobs_ops(struct vjobs_config *cfg, struct fs_vops *ops)
{
	*ops = (struct fs_vops){
		.stat = vj_stat, .list = vj_list, .open = vj_open, .read = vj_read,
		.write = vj_write, .flush = vj_flush, .release = vj_release, .ctx = cfg,
	};
}
