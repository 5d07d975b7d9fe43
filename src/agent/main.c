/* hermes-agent: serves one root directory to a Hermes client over
 * stdin/stdout (see agent.h for what it guarantees, proto.h for the wire). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "delta.h"
#include "jobs.h"
#include "log.h"
#include "transport.h"

#define HANDSHAKE_TIMEOUT_MS 30000

static int send_fatal(struct agent *a, int errnum, const char *msg)
{
	struct enc e;
	wire_begin(&a->w, &e);
	enc_uvar(&e, (uint64_t)errnum);
	enc_u8(&e, ERROR_FATAL);
	enc_str(&e, "");
	enc_str(&e, msg);
	wire_end(&a->w, &e, MSG_ERROR, 0);
	return wire_flush(&a->w);
}

static int send_entry(struct agent *a, const struct entry *en)
{
	struct enc e;
	wire_begin(&a->w, &e);
	entry_encode(&e, en);
	return wire_end(&a->w, &e, MSG_ENTRY, 0);
}

static bool entry_drifted(const struct entry *was, const struct entry *now)
{
	if (!entry_same_content(was, now))
		return true;
	/* Symlinks have no mode of their own, and not every file system
	 * keeps their times: only their target counts. */
	if (now->type == ENTRY_SYMLINK)
		return false;
	return was->mode != now->mode ||
	       (now->type == ENTRY_FILE && was->mtime_ns != now->mtime_ns);
}

/* Incremental: the client holds our manifest as of its generation; tell it
 * only which tracked entries changed on this host since (someone edited or
 * removed them here). Found drift becomes our tracked state too. */
static int send_drift(struct agent *a)
{
	int rc = 0;
	for (size_t i = 0; i < a->tracked.n && !rc; i++) {
		struct entry *t = &a->tracked.v[i];
		struct entry now;
		rc = entry_copy(&now, t);
		if (rc)
			break;
		rc = entry_refresh(a->root_fd, &now, t);
		if (!rc && entry_drifted(t, &now)) {
			now.flags = ENTRY_TRACKED;
			rc = send_entry(a, &now);
			entry_free(t);
			*t = now;
			continue;
		}
		entry_free(&now);
	}
	manifest_compact(&a->tracked);
	return rc;
}

/* Full: everything under the root, tracked or not, so the client can reuse
 * whatever is already here. Tracked entries that are gone stop being tracked. */
static int send_everything(struct agent *a, struct buf *err)
{
	struct manifest found;
	struct scan_stats st = { 0 };
	struct scan_options o = { .include_vcs = a->include_vcs, .hash_cache = &a->tracked };
	manifest_init(&found);
	int rc = manifest_scan(a->root_fd, &o, false, &found, &st, err);
	for (size_t i = 0; i < a->tracked.n && !rc; i++) {
		struct entry *t = &a->tracked.v[i];
		struct entry *f = manifest_find(&found, t->path);
		if (f) {
			f->flags |= ENTRY_TRACKED;
			entry_free(t);
			rc = entry_copy(t, f);
			continue;
		}
		/* Tracked but outside the walk (under .git, say): look it up alone. */
		struct entry now;
		rc = entry_copy(&now, t);
		if (rc)
			break;
		rc = entry_refresh(a->root_fd, &now, t);
		entry_free(t);
		*t = now;
		t->flags |= ENTRY_TRACKED;
		if (!rc && t->type != ENTRY_NONE)
			rc = send_entry(a, t);
	}
	for (size_t i = 0; i < found.n && !rc; i++)
		rc = send_entry(a, &found.v[i]);
	manifest_free(&found);
	manifest_compact(&a->tracked);
	return rc;
}

static int handle_open(struct agent *a, const struct frame *f)
{
	struct dec d;
	uint8_t id[16];
	dec_init(&d, f);
	uint8_t flags = dec_u8(&d);
	dec_fixed(&d, id, 16);
	uint64_t gen = dec_uvar(&d);
	if (d.err || a->opened)
		return -EPROTO;
	a->include_vcs = flags & OPEN_INCLUDE_VCS;

	struct buf err = BUF_INIT;
	int rc = agent_open_root(a, &err);
	if (rc) {
		send_fatal(a, -rc, (const char *)err.data);
		buf_free(&err);
		return rc;
	}
	a->opened = true;
	bool incremental = a->tracked.generation > 0 && gen == a->tracked.generation &&
			   memcmp(id, a->tracked.root_id, 16) == 0;
	struct enc e;
	wire_begin(&a->w, &e);
	enc_fixed(&e, a->tracked.root_id, 16);
	enc_uvar(&e, a->tracked.generation);
	enc_u8(&e, incremental ? OPENED_INCREMENTAL : OPENED_FULL);
	rc = wire_end(&a->w, &e, MSG_OPENED, 0);
	if (!rc)
		rc = incremental ? send_drift(a) : send_everything(a, &err);
	if (rc && err.len) {
		send_fatal(a, -rc, (const char *)err.data);
	} else if (!rc) {
		wire_begin(&a->w, &e);
		rc = wire_end(&a->w, &e, MSG_END, 0);
	}
	buf_free(&err);
	return rc ? rc : wire_flush(&a->w);
}

/* Signature of our copy of a file, for the client's delta. An empty
 * signature (block_len 0) means "no usable copy: send it whole". */
static int handle_sigreq(struct agent *a, const struct frame *f)
{
	struct dec d;
	char path[PATH_MAX];
	dec_init(&d, f);
	dec_path(&d, path);
	if (d.err || !a->opened)
		return -EPROTO;
	struct delta_sig sig = { 0 };
	int fd = agent_open_beneath(a, path, O_RDONLY);
	struct stat st;
	bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		  delta_sig_from_fd(fd, (uint64_t)st.st_size, 0, 0, &sig) == 0 &&
		  sig.count * (4 + sig.strong_len) < PROTO_MAX_FRAME - 64;
	if (fd >= 0)
		close(fd);
	struct enc e;
	wire_begin(&a->w, &e);
	enc_uvar(&e, ok ? sig.file_size : 0);
	enc_uvar(&e, ok ? sig.block_len : 0);
	enc_uvar(&e, ok ? sig.strong_len : 0);
	enc_uvar(&e, ok ? sig.count : 0);
	for (uint64_t i = 0; ok && i < sig.count; i++) {
		uint8_t w[4] = { (uint8_t)sig.weak[i], (uint8_t)(sig.weak[i] >> 8),
				 (uint8_t)(sig.weak[i] >> 16), (uint8_t)(sig.weak[i] >> 24) };
		enc_fixed(&e, w, 4);
	}
	if (ok)
		enc_fixed(&e, sig.strong, sig.count * sig.strong_len);
	delta_sig_free(&sig);
	int rc = wire_end(&a->w, &e, MSG_SIG, f->id);
	return rc ? rc : wire_flush(&a->w);
}

static int handle_commit(struct agent *a)
{
	if (!a->opened || a->cur.active)
		return -EPROTO;
	struct buf err = BUF_INIT;
	int rc = agent_commit(a, &err);
	if (rc)
		agent_report(a, -rc, NULL, "%s", (const char *)err.data);
	buf_free(&err);
	struct enc e;
	wire_begin(&a->w, &e);
	enc_uvar(&e, a->tracked.generation);
	enc_uvar(&e, a->errors);
	rc = wire_end(&a->w, &e, MSG_COMMITTED, 0);
	a->errors = a->errors_sent = 0;
	a->failed = false;
	return rc ? rc : wire_flush(&a->w);
}

static int dispatch(struct agent *a, const struct frame *f)
{
	switch (f->type) {
	case MSG_FILE:
		break; /* inline files go on in parallel; file_begin syncs the rest */
	default:
		/* Anything else may depend on files still being installed. */
		agent_writers_sync(a);
		break;
	}
	switch (f->type) {
	case MSG_HELLO:
		return 0;
	case MSG_OPEN:
		return handle_open(a, f);
	case MSG_SIGREQ:
		return handle_sigreq(a, f);
	case MSG_COMMIT:
		return handle_commit(a);
	default:
		if (!a->opened)
			return -EPROTO;
		/* File-system errors were reported to the client; the session
		 * goes on. Only a malformed message ends it. */
		return agent_apply(a, f) == -EPROTO ? -EPROTO : 0;
	}
}

/* Preambles both ways, then our HELLO. */
static int greet(struct wire *w)
{
	struct buf err = BUF_INIT;
	int rc = wire_handshake(w, HANDSHAKE_TIMEOUT_MS, &err);
	if (rc) {
		log_error("handshake failed: %s", err.len ? (const char *)err.data : strerror(-rc));
		buf_free(&err);
		return rc;
	}
	buf_free(&err);
	struct enc e;
	wire_begin(w, &e);
	enc_uvar(&e, 0);
	enc_str(&e, HERMES_VERSION);
	rc = wire_end(w, &e, MSG_HELLO, 0);
	return rc ? rc : wire_flush(w);
}

static int serve(struct agent *a)
{
	int rc = greet(&a->w);
	while (!rc) {
		struct frame f;
		rc = wire_recv(&a->w, &f, -1);
		if (rc == 0)
			return 0; /* the client is done */
		if (rc < 0)
			break;
		rc = dispatch(a, &f);
		if (rc == -EPROTO)
			log_error("protocol error on a %s message from the client", msg_name(f.type));
	}
	if (rc == -EPROTO)
		send_fatal(a, EPROTO, "protocol error: malformed message; closing the session");
	return rc;
}

static int serve_jobs(const struct jobs_options *o)
{
	struct wire w;
	struct transport *t = transport_fd_new(STDIN_FILENO, STDOUT_FILENO);
	if (!t || wire_init(&w, t, 1)) {
		log_error("out of memory");
		return 1;
	}
	int rc = greet(&w);
	if (!rc)
		rc = jobs_serve(&w, o);
	wire_free(&w);
	transport_close(t, NULL);
	return rc ? 1 : 0;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: hermes-agent --stdio --root DIR\n"
		     "       hermes-agent --jobs --root DIR [--podman-socket PATH]\n"
		     "Serve DIR to a hermes client over stdin/stdout: its files (--stdio),\n"
		     "or jobs run in Podman containers over it (--jobs).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stdio", no_argument, NULL, 's' },
		{ "root", required_argument, NULL, 'r' },
		{ "jobs", no_argument, NULL, 'j' },
		{ "podman-socket", required_argument, NULL, 'P' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *root = NULL, *podman_socket = NULL;
	bool stdio = false, jobs = false;
	int c;
	log_init("hermes-agent");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': stdio = true; break;
		case 'r': root = optarg; break;
		case 'j': jobs = true; break;
		case 'P': podman_socket = optarg; break;
		case 'V': printf("hermes-agent %s (protocol %d)\n", HERMES_VERSION, PROTO_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (stdio == jobs || !root || optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (jobs) {
		struct jobs_options o = {
			.root = root,
			.podman_socket = podman_socket ? podman_socket : jobs_default_socket(),
		};
		return serve_jobs(&o);
	}
	/* Files we create get exactly the modes the client asks for. */
	umask(0);

	struct agent a = { .root_path = root, .root_fd = -1, .state_fd = -1, .lock_fd = -1,
 };
	dircache_init(&a.parents);
	a.cur.fd = a.cur.basis_fd = a.cur.dirfd = -1;
	struct transport *t = transport_fd_new(STDIN_FILENO, STDOUT_FILENO);
	if (!t || wire_init(&a.w, t, 1)) {
		log_error("out of memory");
		return 1;
	}
	int rc = serve(&a);
	/* The client went away mid-batch: what was applied is on disk, so
	 * track it (a new generation tells the client to look again). */
	agent_writers_sync(&a);
	if (a.opened && a.changes.n > 0) {
		struct buf err = BUF_INIT;
		agent_file_abort(&a);
		if (agent_commit(&a, &err))
			log_error("%s", (const char *)err.data);
		buf_free(&err);
	}
	agent_close_root(&a);
	wire_free(&a.w);
	transport_close(t, NULL);
	return rc ? 1 : 0;
}
