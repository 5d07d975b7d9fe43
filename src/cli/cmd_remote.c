/* hermes submit / jobs / logs / cancel against a hermesd (see remote.h). */
#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ignore.h"
#include "log.h"
#include "remote.h"

#define EXIT_TIMED_OUT 124
#define EXIT_NOT_STARTED 125
#define EXIT_CANCELLED 130

struct remote {
	const char *url;   /* no trailing '/' needed */
	const char *token;
	bool follow;
};

enum { OPT_URL = 256, OPT_TOKEN, OPT_IMAGE, OPT_GPUS, OPT_WALL, OPT_WAIT };

/* --url/--token or the environment; 0, or -1 after saying what is missing. */
static int remote_check(struct remote *r)
{
	if (!r->url)
		r->url = getenv("HERMES_URL");
	if (!r->token)
		r->token = getenv("HERMES_TOKEN");
	if (!r->url || !*r->url) {
		log_error("no hermesd URL: pass --url URL or set HERMES_URL");
		return -1;
	}
	if (!r->token || !*r->token) {
		log_error("no token for %s: pass --token T or set HERMES_TOKEN", r->url);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ HTTP */

struct sink {
	struct buf body;
	CURL *curl;
	bool stream; /* copy a 200 body to stdout as it comes */
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;
	long status = 0;
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	if (s->stream && status == 200) {
		size_t w = fwrite(p, size, n, stdout);
		fflush(stdout);
		return w * size;
	}
	return buf_append(&s->body, p, size * n) ? 0 : size * n;
}

/* The "error" of a JSON error body, or the body itself. */
static void report(const char *method, const char *url, long status, struct buf *body)
{
	buf_append(body, "", 1);
	json_object *o = json_tokener_parse((char *)body->data);
	json_object *e = NULL;
	const char *msg = o && json_object_object_get_ex(o, "error", &e) ? json_object_get_string(e)
									: (char *)body->data;
	log_error("%s %s: HTTP %ld: %s", method, url, status, msg);
	json_object_put(o);
}

/* One request. Returns the HTTP status (0 on a transport error, already
 * reported); a body that is not streamed ends up in out (NUL-terminated). */
static long request(const struct remote *r, const char *method, const char *path,
		    const char *job_header, const struct buf *upload, bool stream, struct buf *out)
{
	struct buf url = BUF_INIT, auth = BUF_INIT, jh = BUF_INIT;
	struct sink s = { BUF_INIT, curl_easy_init(), stream };
	long status = 0;
	if (!s.curl || buf_printf(&url, "%s%s%s", r->url,
				  r->url[strlen(r->url) - 1] == '/' ? "" : "/", path + 1) ||
	    buf_append(&url, "", 1) || buf_printf(&auth, "Authorization: Bearer %s", r->token) ||
	    buf_append(&auth, "", 1)) {
		log_error("out of memory");
		goto out;
	}
	struct curl_slist *hdr = curl_slist_append(NULL, (char *)auth.data);
	if (job_header && !buf_printf(&jh, "X-Hermes-Job: %s", job_header) && !buf_append(&jh, "", 1))
		hdr = curl_slist_append(hdr, (char *)jh.data);
	if (upload)
		hdr = curl_slist_append(hdr, "Content-Type: application/zstd");
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(s.curl, CURLOPT_URL, (char *)url.data);
	curl_easy_setopt(s.curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(s.curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(s.curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(s.curl, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(s.curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(s.curl, CURLOPT_NOSIGNAL, 1L);
	if (upload) {
		curl_easy_setopt(s.curl, CURLOPT_POSTFIELDS, (char *)upload->data);
		curl_easy_setopt(s.curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)upload->len);
	}
	CURLcode rc = curl_easy_perform(s.curl);
	curl_slist_free_all(hdr);
	if (rc != CURLE_OK) {
		log_error("%s %s: %s", method, (char *)url.data, errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 300) {
		report(method, (char *)url.data, status, &s.body);
	} else if (out) {
		buf_append(&s.body, "", 1);
		*out = s.body;
		s.body = (struct buf)BUF_INIT;
	}
out:
	if (s.curl)
		curl_easy_cleanup(s.curl);
	buf_free(&s.body);
	buf_free(&url);
	buf_free(&auth);
	buf_free(&jh);
	return status;
}

/* --------------------------------------------------------------- packing */

static la_ssize_t write_cb(struct archive *a, void *ctx, const void *p, size_t n)
{
	(void)a;
	return buf_append(ctx, p, n) ? -1 : (la_ssize_t)n;
}

/* The walk's view of ignore rules: the directories entered, innermost last,
 * mirrored on the ignore stack (ignore.h). */
struct walk_dirs {
	struct ignore *ig;
	char **rel;  /* "" for the root */
	size_t n, cap;
};

static int dirs_push(struct walk_dirs *d, const char *rel)
{
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 16;
		char **v = realloc(d->rel, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->rel = v;
		d->cap = ncap;
	}
	int fd = open(*rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = ignore_push_dir(d->ig, fd, rel);
	close(fd);
	if (r < 0)
		return r;
	if (!(d->rel[d->n] = strdup(rel))) {
		ignore_pop_dir(d->ig);
		return -ENOMEM;
	}
	d->n++;
	return 0;
}

static bool is_ancestor(const char *dir, const char *path, size_t plen)
{
	size_t dl = strlen(dir);
	return dl == 0 || (dl <= plen && !strncmp(dir, path, dl) && (dl == plen || path[dl] == '/'));
}

/* Make the stack hold exactly the directories above rel: libarchive may
 * come back to a directory after visiting others, so leave the ones that
 * are not ancestors and enter the missing ones, component by component. */
static int dirs_enter_parent(struct walk_dirs *d, const char *rel)
{
	const char *slash = strrchr(rel, '/');
	size_t plen = slash ? (size_t)(slash - rel) : 0;
	while (d->n > 1 && !is_ancestor(d->rel[d->n - 1], rel, plen)) {
		ignore_pop_dir(d->ig);
		free(d->rel[--d->n]);
	}
	size_t have = strlen(d->rel[d->n - 1]);
	while (have < plen) {
		size_t next = have ? have + 1 : 0;
		while (next < plen && rel[next] != '/')
			next++;
		char *sub = strndup(rel, next);
		int r = sub ? dirs_push(d, sub) : -ENOMEM;
		free(sub);
		if (r < 0)
			return r;
		have = next;
	}
	return 0;
}

static void dirs_free(struct walk_dirs *d)
{
	while (d->n > 0) {
		ignore_pop_dir(d->ig);
		free(d->rel[--d->n]);
	}
	free(d->rel);
	ignore_free(d->ig);
}

static int copy_data(struct archive *disk, struct archive *out, const char *dir, const char *name)
{
	char chunk[65536];
	la_ssize_t n;
	while ((n = archive_read_data(disk, chunk, sizeof(chunk))) > 0)
		if (archive_write_data(out, chunk, (size_t)n) != n)
			return -1;
	if (n < 0)
		log_error("%s/%s: %s", dir, name + 2, archive_error_string(disk));
	return n < 0 ? -1 : 0;
}

/* Every entry under the working directory that .gitignore/.hermesignore
 * (as hermes sync reads them) keep; .git and .hermes never go. */
static int walk(struct archive *disk, struct archive *out, const char *dir)
{
	struct walk_dirs d = { ignore_new(false), NULL, 0, 0 };
	struct archive_entry *e = archive_entry_new();
	int rc = ARCHIVE_OK, r = d.ig && e ? dirs_push(&d, "") : -ENOMEM;
	if (r == 0)
		r = ignore_add_text(d.ig, "", "/.hermes/\n");
	if (r < 0)
		log_error("%s: reading ignore files: %s", dir, strerror(-r));
	while (r == 0 && (rc = archive_read_next_header2(disk, e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		if (!strcmp(name, ".")) {
			archive_read_disk_descend(disk);
			continue;
		}
		const char *rel = name + 2; /* "./a/b" */
		bool is_dir = archive_entry_filetype(e) == AE_IFDIR;
		if ((r = dirs_enter_parent(&d, rel)) < 0) {
			log_error("%s/%s: reading ignore files: %s", dir, rel, strerror(-r));
			break;
		}
		if (ignore_match(d.ig, rel, is_dir))
			continue; /* an ignored directory is not entered */
		if (is_dir && archive_read_disk_can_descend(disk))
			archive_read_disk_descend(disk);
		if (archive_write_header(out, e) != ARCHIVE_OK) {
			log_error("%s/%s: %s", dir, rel, archive_error_string(out));
			r = -1;
		} else if (archive_entry_filetype(e) == AE_IFREG) {
			r = copy_data(disk, out, dir, name);
		}
	}
	if (r == 0 && rc != ARCHIVE_EOF) {
		log_error("%s: %s", dir, archive_error_string(disk));
		r = -1;
	}
	archive_entry_free(e);
	dirs_free(&d);
	return r;
}

/* DIR as a tar.zst in out. */
static int pack(const char *dir, struct buf *out)
{
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || chdir(dir) < 0) {
		log_error("%s: %s", dir, strerror(errno));
		if (cwd >= 0)
			close(cwd);
		return -1;
	}
	struct archive *disk = archive_read_disk_new(), *a = archive_write_new();
	int r = -1;
	archive_read_disk_set_symlink_physical(disk);
	archive_read_disk_set_standard_lookup(disk);
	archive_write_add_filter_zstd(a);
	archive_write_set_format_pax_restricted(a);
	/* No padding to 10 KiB blocks: zeros after the zstd frame are garbage. */
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open2(a, out, NULL, write_cb, NULL, NULL) != ARCHIVE_OK)
		log_error("packing %s: %s", dir, archive_error_string(a));
	else if (archive_read_disk_open(disk, ".") != ARCHIVE_OK)
		log_error("%s: %s", dir, archive_error_string(disk));
	else
		r = walk(disk, a, dir);
	if (archive_write_close(a) != ARCHIVE_OK && r == 0) {
		log_error("packing %s: %s", dir, archive_error_string(a));
		r = -1;
	}
	archive_write_free(a);
	archive_read_free(disk);
	if (fchdir(cwd) < 0 && r == 0) {
		log_error("cannot return to the working directory: %s", strerror(errno));
		r = -1;
	}
	close(cwd);
	return r;
}

/* ------------------------------------------------------------- the jobs */

/* The command: one argument as it is (a shell line), several joined with
 * each quoted for /bin/sh when it needs to be. */
static int command_line(int argc, char **argv, struct buf *out)
{
	if (argc == 1)
		return buf_append_str(out, argv[0]);
	int r = 0;
	for (int i = 0; r == 0 && i < argc; i++) {
		const char *a = argv[i];
		bool plain = *a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "0123456789_-./=:,+@%") == strlen(a);
		r = i ? buf_append_str(out, " ") : 0;
		if (r == 0 && plain) {
			r = buf_append_str(out, a);
			continue;
		}
		r = r ? r : buf_append_str(out, "'");
		for (; r == 0 && *a; a++)
			r = *a == '\'' ? buf_append_str(out, "'\\''") : buf_append(out, a, 1);
		r = r ? r : buf_append_str(out, "'");
	}
	return r;
}

static int exit_code_of(json_object *job)
{
	json_object *st = NULL, *code = NULL, *msg = NULL;
	json_object_object_get_ex(job, "state", &st);
	json_object_object_get_ex(job, "exit_code", &code);
	json_object_object_get_ex(job, "message", &msg);
	const char *state = json_object_get_string(st);
	const char *m = msg ? json_object_get_string(msg) : "";
	if (state && !strcmp(state, "exited"))
		return json_object_get_int(code);
	if (state && (!strcmp(state, "running") || !strcmp(state, "queued"))) {
		log_error("the output stream ended but the job is still %s", state);
		return EXIT_NOT_STARTED;
	}
	if (m && *m)
		log_error("job %s: %s", state ? state : "?", m);
	if (state && !strcmp(state, "timed-out"))
		return EXIT_TIMED_OUT;
	if (state && !strcmp(state, "cancelled"))
		return EXIT_CANCELLED;
	return EXIT_NOT_STARTED;
}

/* Stream the output until the job ends, then its exit code. */
static int follow_job(const struct remote *r, const char *id)
{
	char path[128];
	snprintf(path, sizeof(path), "/v1/jobs/%s/logs?follow=1", id);
	if (request(r, "GET", path, NULL, NULL, true, NULL) != 200)
		return EXIT_NOT_STARTED;
	snprintf(path, sizeof(path), "/v1/jobs/%s", id);
	struct buf body = BUF_INIT;
	int code = EXIT_NOT_STARTED;
	if (request(r, "GET", path, NULL, NULL, false, &body) == 200) {
		json_object *o = json_tokener_parse((char *)body.data);
		if (o)
			code = exit_code_of(o);
		json_object_put(o);
	}
	buf_free(&body);
	return code;
}

static void usage_submit(FILE *f)
{
	fprintf(f, "usage: hermes submit [--url URL] [--token T] [--image I] [--gpus N] [-C DIR]\n"
		   "                     [-e NAME=VALUE]... [--wall-time S] [--wait|-f] -- CMD...\n");
}

static int add_env(json_object *env, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv) {
		log_error("-e %s: expected NAME=VALUE", kv);
		return -1;
	}
	char *name = strndup(kv, (size_t)(eq - kv));
	if (!name)
		return -1;
	json_object_object_add(env, name, json_object_new_string(eq + 1));
	free(name);
	return 0;
}

static int submit_parse(int argc, char **argv, struct remote *rm, json_object *job,
			const char **dir)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, OPT_URL },
		{ "token", required_argument, NULL, OPT_TOKEN },
		{ "image", required_argument, NULL, OPT_IMAGE },
		{ "gpus", required_argument, NULL, OPT_GPUS },
		{ "wall-time", required_argument, NULL, OPT_WALL },
		{ "wait", no_argument, NULL, 'f' },
		{ "env", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_object *env = json_object_new_object(), *lim = json_object_new_object();
	json_object_object_add(job, "env", env);
	json_object_object_add(job, "limits", lim);
	optind = 1;
	for (int o; (o = getopt_long(argc, argv, "+C:e:fh", opts, NULL)) != -1;) {
		switch (o) {
		case OPT_URL: rm->url = optarg; break;
		case OPT_TOKEN: rm->token = optarg; break;
		case OPT_IMAGE: json_object_object_add(job, "image", json_object_new_string(optarg)); break;
		case OPT_GPUS: json_object_object_add(job, "gpus", json_object_new_int(atoi(optarg))); break;
		case OPT_WALL: json_object_object_add(lim, "wall_time_s", json_object_new_int(atoi(optarg))); break;
		case 'C': *dir = optarg; break;
		case 'f': rm->follow = true; break;
		case 'e':
			if (add_env(env, optarg) < 0)
				return -1;
			break;
		case 'h': usage_submit(stdout); return 1;
		default: usage_submit(stderr); return -1;
		}
	}
	if (optind >= argc) {
		usage_submit(stderr);
		return -1;
	}
	struct buf cmd = BUF_INIT;
	if (command_line(argc - optind, argv + optind, &cmd) || buf_append(&cmd, "", 1)) {
		buf_free(&cmd);
		return -1;
	}
	json_object_object_add(job, "command", json_object_new_string((char *)cmd.data));
	buf_free(&cmd);
	return remote_check(rm);
}

int cmd_submit(int argc, char **argv)
{
	struct remote rm = { 0 };
	const char *dir = ".";
	json_object *job = json_object_new_object();
	int pr = submit_parse(argc, argv, &rm, job, &dir);
	if (pr != 0) {
		json_object_put(job);
		return pr > 0 ? 0 : 2;
	}
	struct buf tar = BUF_INIT, body = BUF_INIT;
	int code = 1;
	if (pack(dir, &tar) == 0 &&
	    request(&rm, "POST", "/v1/jobs", json_object_to_json_string_ext(job, JSON_C_TO_STRING_PLAIN),
		    &tar, false, &body) == 201) {
		json_object *o = json_tokener_parse((char *)body.data), *id = NULL;
		if (o && json_object_object_get_ex(o, "id", &id)) {
			const char *ids = json_object_get_string(id);
			if (rm.follow) {
				fprintf(stderr, "hermes: job %s submitted to %s\n", ids, rm.url);
				code = follow_job(&rm, ids);
			} else {
				printf("%s\n", ids);
				code = 0;
			}
		} else {
			log_error("POST %s/v1/jobs: no job id in the answer", rm.url);
		}
		json_object_put(o);
	}
	buf_free(&tar);
	buf_free(&body);
	json_object_put(job);
	return code;
}

/* --url/--token (and -f when follow is not NULL), then one ID when want_id. */
static int common_parse(int argc, char **argv, struct remote *rm, bool *follow, const char **id,
			const char *usage)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, OPT_URL },
		{ "token", required_argument, NULL, OPT_TOKEN },
		{ "follow", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	optind = 1;
	for (int o; (o = getopt_long(argc, argv, follow ? "f" : "", opts, NULL)) != -1;) {
		if (o == OPT_URL)
			rm->url = optarg;
		else if (o == OPT_TOKEN)
			rm->token = optarg;
		else if (o == 'f' && follow)
			*follow = true;
		else
			goto bad;
	}
	if (id) {
		if (optind != argc - 1 || !*argv[optind] ||
		    strspn(argv[optind], "0123456789") != strlen(argv[optind]))
			goto bad;
		*id = argv[optind];
	} else if (optind != argc) {
		goto bad;
	}
	return remote_check(rm);
bad:
	fprintf(stderr, "usage: %s\n", usage);
	return -1;
}

static void print_job_line(json_object *j)
{
	json_object *id, *st, *code, *spec, *cmd = NULL, *created;
	json_object_object_get_ex(j, "id", &id);
	json_object_object_get_ex(j, "state", &st);
	json_object_object_get_ex(j, "exit_code", &code);
	json_object_object_get_ex(j, "created", &created);
	if (json_object_object_get_ex(j, "spec", &spec))
		json_object_object_get_ex(spec, "command", &cmd);
	char when[32] = "-";
	time_t t = (time_t)json_object_get_double(created);
	struct tm tm;
	if (t && localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%-8s %-10s %-5s %-19s %s\n", json_object_get_string(id), json_object_get_string(st),
	       code ? json_object_get_string(code) : "-", when, cmd ? json_object_get_string(cmd) : "");
}

int cmd_jobs(int argc, char **argv)
{
	struct remote rm = { 0 };
	if (common_parse(argc, argv, &rm, NULL, NULL, "hermes jobs [--url URL] [--token T]") < 0)
		return 2;
	struct buf body = BUF_INIT;
	int code = 1;
	if (request(&rm, "GET", "/v1/jobs", NULL, NULL, false, &body) == 200) {
		json_object *arr = json_tokener_parse((char *)body.data);
		if (json_object_is_type(arr, json_type_array)) {
			printf("%-8s %-10s %-5s %-19s %s\n", "ID", "STATE", "EXIT", "CREATED", "COMMAND");
			for (size_t i = 0; i < json_object_array_length(arr); i++)
				print_job_line(json_object_array_get_idx(arr, i));
			code = 0;
		} else {
			log_error("GET %s/v1/jobs: the answer is not a JSON array", rm.url);
		}
		json_object_put(arr);
	}
	buf_free(&body);
	return code;
}

int cmd_remote_logs(int argc, char **argv)
{
	struct remote rm = { 0 };
	bool follow = false;
	const char *id;
	if (common_parse(argc, argv, &rm, &follow, &id,
			 "hermes logs [-f] [--url URL] [--token T] ID") < 0)
		return 2;
	char path[128];
	snprintf(path, sizeof(path), "/v1/jobs/%s/logs%s", id, follow ? "?follow=1" : "");
	return request(&rm, "GET", path, NULL, NULL, true, NULL) == 200 ? 0 : 1;
}

int cmd_remote_cancel(int argc, char **argv)
{
	struct remote rm = { 0 };
	const char *id;
	if (common_parse(argc, argv, &rm, NULL, &id, "hermes cancel [--url URL] [--token T] ID") < 0)
		return 2;
	char path[128];
	snprintf(path, sizeof(path), "/v1/jobs/%s", id);
	return request(&rm, "DELETE", path, NULL, NULL, false, NULL) / 100 == 2 ? 0 : 1;
}
