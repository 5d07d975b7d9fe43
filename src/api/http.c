#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "unpack.h"

struct http {
	const struct config *cfg;
	struct queue *q;
	struct MHD_Daemon *d;
};

/* Per request; freed by request_done. */
struct req {
	bool upload;        /* POST /v1/jobs with a body being received */
	int fd;             /* the upload's temp file */
	char path[PATH_MAX];
	uint64_t received;
	bool too_big;
	bool answered;      /* a response was queued on the first call */
};

/* ------------------------------------------------------------ responses */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     const char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
								 MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"hermesd\"");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_object *o)
{
	enum MHD_Result ret = reply(c, status, "application/json",
				    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(msg));
	return reply_json(c, status, o);
}

static unsigned status_of(int r)
{
	switch (r) {
	case -ENOENT: return MHD_HTTP_NOT_FOUND;
	case -EPERM: return MHD_HTTP_FORBIDDEN;
	case -EDQUOT: return MHD_HTTP_TOO_MANY_REQUESTS;
	case -ESTALE: return MHD_HTTP_CONFLICT;
	case -EFBIG: return MHD_HTTP_CONTENT_TOO_LARGE;
	case -EINVAL: case -EIO: return MHD_HTTP_BAD_REQUEST;
	default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

static enum MHD_Result reply_err(struct MHD_Connection *c, int r, struct buf *err)
{
	if (err->len == 0)
		buf_printf(err, "%s", strerror(-r));
	enum MHD_Result ret = reply_error(c, status_of(r), "%.*s", (int)err->len, (char *)err->data);
	buf_free(err);
	return ret;
}

static json_object *time_or_null(double t)
{
	return t > 0 ? json_object_new_double(t) : NULL;
}

static json_object *job_json(const struct job_row *row)
{
	json_object *o = json_object_new_object();
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)row->id);
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "state", json_object_new_string(row->state));
	json_object_object_add(o, "exit_code", row->has_exit ? json_object_new_int(row->exit_code) : NULL);
	json_object_object_add(o, "message", json_object_new_string(row->message));
	json_object_object_add(o, "created", time_or_null(row->created));
	json_object_object_add(o, "started", time_or_null(row->started));
	json_object_object_add(o, "ended", time_or_null(row->ended));
	json_object_object_add(o, "host", json_object_new_string(row->host));
	json_object_object_add(o, "gpu", json_object_new_string(row->gpu));
	json_object_object_add(o, "backend_id", json_object_new_string(row->backend_id));
	json_object_object_add(o, "runs", json_object_new_int((int)row->runs));
	json_object_object_add(o, "spec", json_tokener_parse(row->spec));
	return o;
}

/* ------------------------------------------------------------- job logs */

struct follow {
	struct queue *q;
	int64_t id;
	char path[PATH_MAX];
	int fd;
};

static void follow_free(void *cls)
{
	struct follow *f = cls;
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

/* Blocking is fine here: each connection has its own thread. Returns 0
 * after a second without news so MHD can notice a client that left. */
static ssize_t follow_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct follow *f = cls;
	for (int i = 0; i < 10; i++) {
		if (f->fd < 0)
			f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
		bool live = queue_job_live(f->q, f->id);
		if (f->fd >= 0) {
			ssize_t n = pread(f->fd, out, max, (off_t)pos);
			if (n > 0)
				return n;
			if (n < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		/* `live` was read before the last pread: output written before
		 * the job ended has been seen. */
		if (!live)
			return MHD_CONTENT_READER_END_OF_STREAM;
		nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	}
	return 0;
}

static enum MHD_Result get_logs(struct http *h, struct MHD_Connection *c, int64_t id)
{
	struct follow *f = calloc(1, sizeof(*f));
	struct buf p = BUF_INIT;
	if (!f || queue_job_path(h->q, id, "log", &p) < 0 || p.len > sizeof(f->path)) {
		free(f);
		buf_free(&p);
		return reply_error(c, 500, "out of memory");
	}
	memcpy(f->path, p.data, p.len);
	buf_free(&p);
	f->q = h->q;
	f->id = id;
	f->fd = -1;
	const char *fl = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "follow");
	struct MHD_Response *r;
	if (fl && strcmp(fl, "0")) {
		/* A job may print nothing for longer than the idle timeout; the
		 * stream ends when the job does. */
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, follow_read, f,
						      follow_free);
	} else {
		int fd = open(f->path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		free(f);
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (fd >= 0)
				close(fd);
			return reply(c, 200, "text/plain", ""); /* nothing printed yet */
		}
		r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	}
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ------------------------------------------------------------ artifacts */

static enum MHD_Result get_file(struct http *h, struct MHD_Connection *c, int64_t id,
				const char *path)
{
	struct buf ws = BUF_INIT;
	if (queue_job_path(h->q, id, "ws", &ws) < 0)
		return reply_error(c, 500, "out of memory");
	int root = open((char *)ws.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	buf_free(&ws);
	if (root < 0)
		return reply_error(c, 404, "job %lld has no workspace", (long long)id);
	int fd = open_beneath(root, path, O_RDONLY, 0);
	close(root);
	struct stat st;
	if (fd == -EINVAL)
		return reply_error(c, 400, "%s: not a relative path inside the workspace", path);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return reply_error(c, 404, "%s: no such file in the workspace of job %lld (symlinks are not followed)",
				   path, (long long)id);
	}
	struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ------------------------------------------------------------- routing */

static const struct token *authenticate(struct http *h, struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!a || strncasecmp(a, "Bearer ", 7))
		return NULL;
	return config_find_token(h->cfg, a + 7);
}

/* "/v1/jobs/ID[/REST]": id and the rest ("" when none). */
static bool parse_job_url(const char *url, int64_t *id, const char **rest)
{
	const char *p = url + strlen("/v1/jobs/");
	char *end;
	errno = 0;
	long long v = strtoll(p, &end, 10);
	if (errno || end == p || v <= 0 || (*end && *end != '/') || *p == '+' || *p == '-')
		return false;
	*id = v;
	*rest = *end ? end + 1 : end;
	return true;
}

static enum MHD_Result list_jobs(struct http *h, struct MHD_Connection *c, const struct token *t)
{
	struct job_row *rows;
	size_t n;
	struct buf err = BUF_INIT;
	int r = queue_list(h->q, t->name, &rows, &n, &err);
	if (r < 0)
		return reply_err(c, r, &err);
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, job_json(&rows[i]));
	store_rows_free(rows, n);
	return reply_json(c, 200, arr);
}

static enum MHD_Result job_request(struct http *h, struct MHD_Connection *c, const char *method,
				   const char *url, const struct token *t)
{
	int64_t id;
	const char *rest;
	if (!parse_job_url(url, &id, &rest))
		return reply_error(c, 404, "%s: no such resource", url);
	struct job_row row;
	struct buf err = BUF_INIT;
	int r = queue_get(h->q, t->name, id, &row, &err);
	if (r == -ENOENT)
		return reply_error(c, 404, "job %lld: no such job", (long long)id);
	if (r < 0)
		return reply_err(c, r, &err);
	enum MHD_Result ret;
	bool get = !strcmp(method, "GET");
	if (!*rest && get) {
		ret = reply_json(c, 200, job_json(&row));
	} else if (!*rest && !strcmp(method, "DELETE")) {
		if (!queue_job_live(h->q, id))
			ret = reply_error(c, 409, "job %lld already ended (%s)", (long long)id, row.state);
		else if ((r = queue_cancel(h->q, t->name, id, &err)) < 0)
			ret = reply_err(c, r, &err);
		else
			ret = reply(c, 202, "application/json", "{\"cancelling\":true}");
	} else if (!strcmp(rest, "logs") && get) {
		ret = get_logs(h, c, id);
	} else if (!strncmp(rest, "files/", 6) && get) {
		ret = get_file(h, c, id, rest + 6);
	} else {
		ret = reply_error(c, get ? 404 : 405, "%s %s: not supported", method, url);
	}
	store_row_free(&row);
	buf_free(&err);
	return ret;
}

static enum MHD_Result submit(struct http *h, struct MHD_Connection *c, struct req *rq,
			      const struct token *t)
{
	if (rq->too_big)
		return reply_error(c, 413, "upload larger than max_upload (%llu bytes)",
				   (unsigned long long)h->cfg->max_upload);
	const char *spec = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Hermes-Job");
	if (!spec)
		return reply_error(c, 400, "missing header X-Hermes-Job (the job as JSON)");
	int64_t id;
	struct buf err = BUF_INIT;
	int r = queue_submit(h->q, t, spec, rq->upload ? rq->path : NULL, &id, &err);
	if (r < 0)
		return reply_err(c, r, &err);
	json_object *o = json_object_new_object();
	char ids[32];
	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	json_object_object_add(o, "id", json_object_new_string(ids));
	return reply_json(c, 201, o);
}

static enum MHD_Result route(struct http *h, struct MHD_Connection *c, const char *url,
			     const char *method, struct req *rq)
{
	bool get = !strcmp(method, "GET");
	if (!strcmp(url, "/healthz"))
		return get ? reply(c, 200, "application/json", "{\"ok\":true}")
			   : reply_error(c, 405, "%s %s: not supported", method, url);
	if (!strcmp(url, "/metrics") && get) {
		struct buf m = BUF_INIT;
		int r = queue_metrics(h->q, &m);
		enum MHD_Result ret = r < 0 ? reply_error(c, 500, "metrics: %s", strerror(-r))
					    : (buf_append(&m, "", 1) ? MHD_NO
					       : reply(c, 200, "text/plain; version=0.0.4", (char *)m.data));
		buf_free(&m);
		return ret;
	}
	if (strncmp(url, "/v1/", 4))
		return reply_error(c, 404, "%s: no such resource", url);
	const struct token *t = authenticate(h, c);
	if (!t)
		return reply_error(c, 401, "missing or unknown bearer token");
	if (!strcmp(url, "/v1/gpus") && get) {
		struct buf o = BUF_INIT, err = BUF_INIT;
		int r = queue_gpus_json(h->q, &o, &err);
		enum MHD_Result ret = r < 0 ? reply_err(c, r, &err)
					    : (buf_append(&o, "", 1) ? MHD_NO
					       : reply(c, 200, "application/json", (char *)o.data));
		buf_free(&o);
		buf_free(&err);
		return ret;
	}
	if (!strcmp(url, "/v1/jobs"))
		return get ? list_jobs(h, c, t)
			   : !strcmp(method, "POST") ? submit(h, c, rq, t)
			   : reply_error(c, 405, "%s %s: not supported", method, url);
	if (!strncmp(url, "/v1/jobs/", 9))
		return job_request(h, c, method, url, t);
	return reply_error(c, 404, "%s: no such resource", url);
}

/* --------------------------------------------------------- the handler */

/* First call of a POST /v1/jobs: refuse early (bad token, declared size
 * over the limit) so the body is never read, else open the temp file. */
static enum MHD_Result begin_upload(struct http *h, struct MHD_Connection *c, struct req *rq)
{
	if (!authenticate(h, c)) {
		rq->answered = true;
		return reply_error(c, 401, "missing or unknown bearer token");
	}
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > h->cfg->max_upload) {
		rq->answered = true;
		return reply_error(c, 413, "upload of %s bytes is larger than max_upload (%llu bytes)", cl,
				   (unsigned long long)h->cfg->max_upload);
	}
	snprintf(rq->path, sizeof(rq->path), "%s/tmp/upload-XXXXXX", h->cfg->state_dir);
	rq->fd = mkostemp(rq->path, O_CLOEXEC);
	if (rq->fd < 0) {
		rq->answered = true;
		return reply_error(c, 500, "%s: %s", rq->path, strerror(errno));
	}
	rq->upload = true;
	return MHD_YES;
}

static void upload_chunk(struct http *h, struct req *rq, const char *data, size_t n)
{
	rq->received += n;
	if (rq->received > h->cfg->max_upload)
		rq->too_big = true; /* keep reading, answer 413 at the end */
	if (rq->too_big)
		return;
	while (n > 0) {
		ssize_t w = write(rq->fd, data, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_error("%s: write: %s", rq->path, strerror(errno));
			rq->too_big = true;
			return;
		}
		data += w;
		n -= (size_t)w;
	}
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	(void)version;
	struct req *rq = *con_cls;
	if (!rq) {
		if (!(rq = calloc(1, sizeof(*rq))))
			return MHD_NO;
		rq->fd = -1;
		*con_cls = rq;
		if (!strcmp(method, "POST") && !strcmp(url, "/v1/jobs"))
			return begin_upload(h, c, rq);
		return MHD_YES;
	}
	if (rq->answered) {
		*upload_size = 0; /* the answer is out; drop the rest of the body */
		return MHD_YES;
	}
	if (*upload_size) {
		if (rq->upload)
			upload_chunk(h, rq, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	rq->answered = true;
	return route(h, c, url, method, rq);
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct req *rq = *con_cls;
	if (!rq)
		return;
	if (rq->fd >= 0) {
		close(rq->fd);
		unlink(rq->path);
	}
	free(rq);
	*con_cls = NULL;
}

int http_start(struct http **out, const struct config *cfg, struct queue *q, unsigned *port,
	       struct buf *err)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%u", cfg->listen_port);
	int rc = getaddrinfo(cfg->listen_host, portstr, &hints, &ai);
	if (rc) {
		buf_printf(err, "listen = %s:%u: %s", cfg->listen_host, cfg->listen_port,
			   gai_strerror(rc));
		return -EINVAL;
	}
	struct http *h = calloc(1, sizeof(*h));
	if (!h) {
		freeaddrinfo(ai);
		return -ENOMEM;
	}
	h->cfg = cfg;
	h->q = q;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	h->d = MHD_start_daemon(flags, (uint16_t)cfg->listen_port, NULL, NULL, handle, h,
				MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				MHD_OPTION_NOTIFY_COMPLETED, request_done, h,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
				MHD_OPTION_CONNECTION_LIMIT, 512u,
				MHD_OPTION_CONNECTION_TIMEOUT, 300u,
				MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!h->d) {
		buf_printf(err, "cannot listen on %s:%u (in use, or not an address of this host)",
			   cfg->listen_host, cfg->listen_port);
		free(h);
		return -EADDRINUSE;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	*port = info ? info->port : cfg->listen_port;
	*out = h;
	return 0;
}

void http_stop(struct http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}
