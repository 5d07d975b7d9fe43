/* podman: libpod REST client; see podman.h. */
#include "podman.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API "http://d/v4.0.0/libpod"

struct podman {
	char *socket;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct podman *podman_new(const char *socket)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return NULL;
	struct podman *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->socket = strdup(socket);
	if (!p->socket) {
		free(p);
		return NULL;
	}
	return p;
}

void podman_free(struct podman *p)
{
	if (!p)
		return;
	free(p->socket);
	free(p);
}

/* ---- errors ---- */

/* Podman's "message" from an error body, on one line, into out. */
static void body_message(const struct buf *resp, char *out, size_t outsz)
{
	snprintf(out, outsz, "no message");
	if (!resp->len)
		return;
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return;
	json_object *o = json_tokener_parse_ex(tok, (const char *)resp->data, (int)resp->len);
	json_object *m;
	if (o && json_object_object_get_ex(o, "message", &m))
		snprintf(out, outsz, "%s", json_object_get_string(m));
	else
		snprintf(out, outsz, "%.*s", (int)(resp->len < 200 ? resp->len : 200),
			 (const char *)resp->data);
	json_object_put(o);
	json_tokener_free(tok);
	for (char *c = out; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
}

static int status_errno(long status)
{
	switch (status) {
	case 404:
		return -ENOENT;
	case 409:
		return -EBUSY;
	default:
		return -EIO;
	}
}

/* One line for a refused request: "Podman at SOCK: WHAT: MESSAGE". */
static int refused(struct podman *p, const char *what, long status, const struct buf *resp,
		   struct buf *err)
{
	char msg[400];
	body_message(resp, msg, sizeof(msg));
	buf_printf(err, "Podman at %s: %s: %s (HTTP %ld)", p->socket, what, msg, status);
	return status_errno(status);
}

static int transport_error(struct podman *p, const char *what, CURLcode rc, struct buf *err)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		buf_printf(err, "cannot reach Podman at %s: %s (is `podman system service` running?)",
			   p->socket, curl_easy_strerror(rc));
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		buf_printf(err, "Podman at %s: %s: timed out", p->socket, what);
		return -ETIMEDOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	default:
		buf_printf(err, "Podman at %s: %s: %s", p->socket, what, curl_easy_strerror(rc));
		return -EIO;
	}
}

/* ---- plain requests ---- */

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;
	return buf_append(b, data, size * n) ? 0 : size * n;
}

static CURL *easy_new(struct podman *p, const char *method, const char *url,
		      struct curl_slist **hdrs)
{
	CURL *c = curl_easy_init();
	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, p->socket);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	*hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
	return c;
}

/* method PATH (below /v4.0.0/libpod) with an optional JSON body. The
 * response body goes to resp (NUL-terminated), the status to *status. */
static int request(struct podman *p, const char *method, const char *path, const char *body,
		   long timeout_ms, struct buf *resp, long *status, const char *what,
		   struct buf *err)
{
	char url[1024];
	if ((size_t)snprintf(url, sizeof(url), API "%s", path) >= sizeof(url)) {
		buf_printf(err, "Podman at %s: %s: request path too long", p->socket, what);
		return -ENAMETOOLONG;
	}
	struct curl_slist *hdrs = NULL;
	CURL *c = easy_new(p, method, url, &hdrs);
	if (!c) {
		buf_printf(err, "Podman at %s: %s: out of memory", p->socket, what);
		return -ENOMEM;
	}
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	else if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	buf_reset(resp);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK)
		return transport_error(p, what, rc, err);
	if (buf_append(resp, "", 1))
		return -ENOMEM;
	resp->len--;
	return 0;
}

/* A request whose success is any 2xx; other statuses become errors, except
 * `ok_status` (e.g. 404 for a remove), treated as success. */
static int simple(struct podman *p, const char *method, const char *path, const char *body,
		  long ok_status, const char *what, struct buf *err)
{
	struct buf resp = BUF_INIT;
	long status = 0;
	int rc = request(p, method, path, body, 0, &resp, &status, what, err);
	if (rc == 0 && (status < 200 || status > 299) && status != ok_status)
		rc = refused(p, what, status, &resp, err);
	buf_free(&resp);
	return rc;
}

int podman_ping(struct podman *p, struct buf *err)
{
	return simple(p, "GET", "/_ping", NULL, 0, "ping", err);
}

/* ---- create ---- */

static int add_str(json_object *o, const char *key, const char *val)
{
	json_object *s = json_object_new_string(val);
	return s ? json_object_object_add(o, key, s) : -ENOMEM;
}

static json_object *str_array(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; a && i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static json_object *env_map(const char *const *env, size_t n)
{
	json_object *m = json_object_new_object();
	for (size_t i = 0; m && i < n; i++) {
		const char *eq = strchr(env[i], '=');
		if (!eq)
			continue; /* conf.c rejects these; a bare name has no value to pass */
		char *name = strndup(env[i], (size_t)(eq - env[i]));
		if (!name || add_str(m, name, eq + 1)) {
			free(name);
			json_object_put(m);
			return NULL;
		}
		free(name);
	}
	return m;
}

static json_object *bind_array(const struct podman_bind *b, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; a && i < n; i++) {
		json_object *m = json_object_new_object();
		add_str(m, "destination", b[i].dst);
		add_str(m, "source", b[i].src);
		add_str(m, "type", "bind");
		const char *opts[] = { "rbind", b[i].readonly ? "ro" : "rw" };
		json_object_object_add(m, "options", str_array(opts, 2));
		json_object_array_add(a, m);
	}
	return a;
}

/* Writable scratch space on a read-only root, as `podman run --read-only`
 * gives (the API leaves it to the client); it counts against the memory
 * limit. */
static void add_tmpfs(json_object *mounts, const char *dst)
{
	json_object *m = json_object_new_object();
	add_str(m, "destination", dst);
	add_str(m, "source", "tmpfs");
	add_str(m, "type", "tmpfs");
	/* notmpcopyup: never copy what the rootfs has there (with rootfs "/",
	 * the host's /tmp) into the container */
	const char *opts[] = { "rw", "nosuid", "nodev", "mode=1777", "notmpcopyup" };
	json_object_object_add(m, "options", str_array(opts, 5));
	json_object_array_add(mounts, m);
}

static json_object *device_array(const char *const *dev, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; a && i < n; i++) {
		json_object *d = json_object_new_object();
		add_str(d, "path", dev[i]);
		json_object_array_add(a, d);
	}
	return a;
}

static json_object *limits(const struct podman_spec *s)
{
	json_object *r = json_object_new_object();
	if (s->memory_bytes) {
		json_object *m = json_object_new_object();
		json_object_object_add(m, "limit", json_object_new_int64((int64_t)s->memory_bytes));
		/* same as limit: no swap on top of it */
		json_object_object_add(m, "swap", json_object_new_int64((int64_t)s->memory_bytes));
		json_object_object_add(r, "memory", m);
	}
	if (s->pids) {
		json_object *pl = json_object_new_object();
		json_object_object_add(pl, "limit", json_object_new_int64(s->pids));
		json_object_object_add(r, "pids", pl);
	}
	return r;
}

/* Add v under key; a NULL v or a failed add (out of memory) clears *ok. */
static void put(json_object *o, const char *key, json_object *v, bool *ok)
{
	if (!v || json_object_object_add(o, key, v)) {
		json_object_put(v);
		*ok = false;
	}
}

static json_object *label_map(const char *key, const char *value)
{
	json_object *l = json_object_new_object();
	if (l && add_str(l, key, value)) {
		json_object_put(l);
		return NULL;
	}
	return l;
}

static json_object *netns_none(void)
{
	return label_map("nsmode", "none");
}

/* The SpecGenerator JSON for s, or NULL when out of memory. */
static json_object *spec_json(const struct podman_spec *s)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	bool ok = true;
	if (s->name)
		put(o, "name", json_object_new_string(s->name), &ok);
	if (s->image) {
		put(o, "image", json_object_new_string(s->image), &ok);
	} else {
		put(o, "rootfs", json_object_new_string(s->rootfs), &ok);
		put(o, "rootfs_overlay", json_object_new_boolean(1), &ok);
	}
	/* The command replaces any image entrypoint. */
	put(o, "entrypoint", str_array(s->argv, s->argc), &ok);
	put(o, "command", json_object_new_array(), &ok);
	put(o, "env", env_map(s->env, s->nenv), &ok);
	json_object *mounts = bind_array(s->binds, s->nbinds);
	if (mounts) {
		add_tmpfs(mounts, "/tmp");
		add_tmpfs(mounts, "/var/tmp");
	}
	put(o, "mounts", mounts, &ok);
	if (s->workdir)
		put(o, "work_dir", json_object_new_string(s->workdir), &ok);
	if (s->user)
		put(o, "user", json_object_new_string(s->user), &ok);
	if (s->ndevices)
		put(o, "devices", device_array(s->devices, s->ndevices), &ok);
	if (s->label_key)
		put(o, "labels", label_map(s->label_key, s->label_value), &ok);
	if (!s->network)
		put(o, "netns", netns_none(), &ok);
	put(o, "resource_limits", limits(s), &ok);
	/* Writes go to the workspace and tmpfs /tmp only; no privileges gained. */
	put(o, "read_only_filesystem", json_object_new_boolean(1), &ok);
	put(o, "no_new_privileges", json_object_new_boolean(1), &ok);
	const char *drop[] = { "ALL" };
	put(o, "cap_drop", str_array(drop, 1), &ok);
	if (s->stop_timeout_s)
		put(o, "timeout", json_object_new_int64(s->stop_timeout_s), &ok);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int parse_id(const struct buf *resp, char *id, size_t idsz)
{
	json_object *o = json_tokener_parse((const char *)resp->data);
	json_object *v;
	int rc = -EIO;
	if (o && json_object_object_get_ex(o, "Id", &v) &&
	    (size_t)snprintf(id, idsz, "%s", json_object_get_string(v)) < idsz)
		rc = 0;
	json_object_put(o);
	return rc;
}

static bool is_unknown_image(long status, const struct buf *resp)
{
	if (status == 404)
		return true;
	/* Podman 4.3 answers 500 {"cause":"image not known", ...} */
	return resp->len && strstr((const char *)resp->data, "image not known");
}

int podman_create(struct podman *p, const struct podman_spec *s, char *id, size_t idsz,
		  struct buf *err)
{
	json_object *o = spec_json(s);
	if (!o) {
		buf_printf(err, "Podman at %s: create: out of memory", p->socket);
		return -ENOMEM;
	}
	struct buf resp = BUF_INIT;
	long status = 0;
	int rc = request(p, "POST", "/containers/create",
			 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), 0, &resp,
			 &status, "create container", err);
	json_object_put(o);
	if (rc == 0 && status != 201 && status != 200) {
		if (s->image && is_unknown_image(status, &resp)) {
			char msg[400];
			body_message(&resp, msg, sizeof(msg));
			buf_printf(err, "unknown image '%s' (Podman at %s: %s)", s->image,
				   p->socket, msg);
			rc = -ENOENT;
		} else {
			rc = refused(p, "create container", status, &resp, err);
		}
	} else if (rc == 0 && parse_id(&resp, id, idsz)) {
		buf_printf(err, "Podman at %s: create container: no Id in the answer", p->socket);
		rc = -EIO;
	}
	buf_free(&resp);
	return rc;
}

static int id_path(char *out, size_t outsz, const char *id, const char *suffix)
{
	if ((size_t)snprintf(out, outsz, "/containers/%s%s", id, suffix) >= outsz)
		return -ENAMETOOLONG;
	return 0;
}

int podman_start(struct podman *p, const char *id, struct buf *err)
{
	char path[256];
	if (id_path(path, sizeof(path), id, "/start"))
		return -ENAMETOOLONG;
	return simple(p, "POST", path, NULL, 0, "start container", err);
}

int podman_kill(struct podman *p, const char *id, struct buf *err)
{
	char path[256];
	if (id_path(path, sizeof(path), id, "/kill?signal=SIGKILL"))
		return -ENAMETOOLONG;
	/* 409: not running, so nothing to kill */
	return simple(p, "POST", path, NULL, 409, "kill container", err);
}

int podman_remove(struct podman *p, const char *id, struct buf *err)
{
	char path[256];
	if (id_path(path, sizeof(path), id, "?force=true&v=true"))
		return -ENAMETOOLONG;
	return simple(p, "DELETE", path, NULL, 404, "remove container", err);
}

int podman_inspect(struct podman *p, const char *id, struct buf *out, struct buf *err)
{
	char path[256];
	if (id_path(path, sizeof(path), id, "/json"))
		return -ENAMETOOLONG;
	long status = 0;
	int rc = request(p, "GET", path, NULL, 0, out, &status, "inspect container", err);
	if (rc == 0 && status != 200)
		rc = refused(p, "inspect container", status, out, err);
	return rc;
}

/* The exit code from inspect, when the container has stopped. */
static int exit_from_state(struct podman *p, const char *id, int *exit_code)
{
	struct buf out = BUF_INIT, e = BUF_INIT;
	int rc = podman_inspect(p, id, &out, &e);
	json_object *o = rc ? NULL : json_tokener_parse((const char *)out.data), *st, *v;
	rc = -EIO;
	if (o && json_object_object_get_ex(o, "State", &st) &&
	    json_object_object_get_ex(st, "Status", &v) &&
	    (!strcmp(json_object_get_string(v), "exited") ||
	     !strcmp(json_object_get_string(v), "stopped")) &&
	    json_object_object_get_ex(st, "ExitCode", &v)) {
		*exit_code = json_object_get_int(v);
		rc = 0;
	}
	json_object_put(o);
	buf_free(&out);
	buf_free(&e);
	return rc;
}

int podman_wait(struct podman *p, const char *id, long timeout_ms, int *exit_code,
		struct buf *err)
{
	char path[256];
	/* Podman polls the container's state at `interval` (250 ms by
	 * default), which would be most of a short job's latency. */
	if (id_path(path, sizeof(path), id, "/wait?interval=10ms"))
		return -ENAMETOOLONG;
	struct buf resp = BUF_INIT;
	long status = 0;
	int rc = request(p, "POST", path, NULL, timeout_ms, &resp, &status, "wait for container",
			 err);
	/* Podman 4.3 sometimes answers a wait on a just-killed container with
	 * 500 "no such exit code"; the state then says how it ended. */
	if (rc == 0 && status != 200 && exit_from_state(p, id, exit_code) == 0) {
		buf_free(&resp);
		return 0;
	}
	if (rc == 0 && status != 200)
		rc = refused(p, "wait for container", status, &resp, err);
	if (rc == 0 && sscanf((const char *)resp.data, "%d", exit_code) != 1) {
		buf_printf(err, "Podman at %s: wait for container: no exit code in the answer",
			   p->socket);
		rc = -EIO;
	}
	buf_free(&resp);
	return rc;
}

int podman_list_label(struct podman *p, const char *key, const char *value, struct buf *out,
		      size_t *count, struct buf *err)
{
	/* filters={"label":["KEY=VALUE"]}, built by json-c for the quoting */
	char label[512];
	snprintf(label, sizeof(label), "%s=%s", key, value);
	json_object *f = json_object_new_object();
	json_object_object_add(f, "label", str_array((const char *const[]){ label }, 1));
	const char *filter = json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN);
	char *enc = curl_easy_escape(NULL, filter, 0);
	json_object_put(f);
	if (!enc)
		return -ENOMEM;
	char path[1024];
	snprintf(path, sizeof(path), "/containers/json?all=true&filters=%s", enc);
	curl_free(enc);
	struct buf resp = BUF_INIT;
	long status = 0;
	int rc = request(p, "GET", path, NULL, 0, &resp, &status, "list containers", err);
	if (rc == 0 && status != 200)
		rc = refused(p, "list containers", status, &resp, err);
	json_object *a = rc ? NULL : json_tokener_parse((const char *)resp.data);
	if (rc == 0 && !json_object_is_type(a, json_type_array)) {
		buf_printf(err, "Podman at %s: list containers: not a JSON array", p->socket);
		rc = -EIO;
	}
	*count = 0;
	buf_reset(out);
	for (size_t i = 0; rc == 0 && i < json_object_array_length(a); i++) {
		json_object *v;
		if (!json_object_object_get_ex(json_object_array_get_idx(a, i), "Id", &v))
			continue;
		const char *s = json_object_get_string(v);
		if ((rc = buf_append(out, s, strlen(s) + 1)) == 0)
			(*count)++;
	}
	json_object_put(a);
	buf_free(&resp);
	return rc;
}

/* ---- attach: the multiplexed stream ---- */

/* Frames are an 8-byte header (byte 0: stream, bytes 4-7: big-endian
 * length) then the payload; one frame may span many curl chunks. */
struct attach {
	const struct podman_attach_cb *cb;
	CURL *curl;
	bool headers_done;
	long status;
	struct buf errbody; /* the body when status is not 200 */
	unsigned char hdr[8];
	size_t hdr_have;
	size_t left; /* payload bytes of the current frame still to come */
	int stream;
};

static size_t attach_header(char *data, size_t size, size_t n, void *ctx)
{
	struct attach *a = ctx;
	size_t len = size * n;
	if (a->headers_done || !(len == 2 && data[0] == '\r'))
		return len;
	a->headers_done = true;
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &a->status);
	if (a->status == 200 && a->cb->attached)
		a->cb->attached(a->cb->ctx);
	return len;
}

static void demux(struct attach *a, const unsigned char *p, size_t len)
{
	while (len) {
		if (a->left == 0) {
			size_t take = 8 - a->hdr_have < len ? 8 - a->hdr_have : len;
			memcpy(a->hdr + a->hdr_have, p, take);
			a->hdr_have += take;
			p += take;
			len -= take;
			if (a->hdr_have < 8)
				return;
			a->hdr_have = 0;
			a->stream = a->hdr[0];
			a->left = (size_t)a->hdr[4] << 24 | (size_t)a->hdr[5] << 16 |
				  (size_t)a->hdr[6] << 8 | a->hdr[7];
			continue;
		}
		size_t take = a->left < len ? a->left : len;
		/* stream 0 is stdin and 3 Podman's own errors: only 1 and 2 are output */
		if ((a->stream == 1 || a->stream == 2) && a->cb->frame)
			a->cb->frame(a->cb->ctx, a->stream, p, take);
		a->left -= take;
		p += take;
		len -= take;
	}
}

static size_t attach_write(char *data, size_t size, size_t n, void *ctx)
{
	struct attach *a = ctx;
	size_t len = size * n;
	if (a->status != 200)
		return buf_append(&a->errbody, data, len) ? 0 : len;
	if (a->cb->abort_fn && a->cb->abort_fn(a->cb->ctx))
		return 0;
	demux(a, (const unsigned char *)data, len);
	return len;
}

static int attach_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	struct attach *a = ctx;
	return a->cb->abort_fn && a->cb->abort_fn(a->cb->ctx);
}

int podman_attach(struct podman *p, const char *id, const struct podman_attach_cb *cb,
		  struct buf *err)
{
	char url[512];
	if ((size_t)snprintf(url, sizeof(url),
			     API "/containers/%s/attach?stream=true&stdout=true&stderr=true",
			     id) >= sizeof(url))
		return -ENAMETOOLONG;
	struct attach a = { .cb = cb, .errbody = BUF_INIT };
	struct curl_slist *hdrs = NULL;
	a.curl = easy_new(p, "POST", url, &hdrs);
	if (!a.curl) {
		buf_printf(err, "Podman at %s: attach: out of memory", p->socket);
		return -ENOMEM;
	}
	curl_easy_setopt(a.curl, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(a.curl, CURLOPT_HEADERFUNCTION, attach_header);
	curl_easy_setopt(a.curl, CURLOPT_HEADERDATA, &a);
	curl_easy_setopt(a.curl, CURLOPT_WRITEFUNCTION, attach_write);
	curl_easy_setopt(a.curl, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(a.curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(a.curl, CURLOPT_XFERINFOFUNCTION, attach_progress);
	curl_easy_setopt(a.curl, CURLOPT_XFERINFODATA, &a);
	CURLcode crc = curl_easy_perform(a.curl);
	curl_easy_cleanup(a.curl);
	curl_slist_free_all(hdrs);
	int rc = 0;
	if (a.status && a.status != 200)
		rc = refused(p, "attach to container", a.status, &a.errbody, err);
	else if (crc == CURLE_WRITE_ERROR && cb->abort_fn && cb->abort_fn(cb->ctx))
		rc = -ECANCELED;
	else if (crc != CURLE_OK)
		rc = transport_error(p, "attach to container", crc, err);
	buf_free(&a.errbody);
	return rc;
}
