/* hermes sync: mirror a local directory to a destination, once. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "connect.h"
#include "log.h"
#include "transport.h"

#define EXIT_NOT_FOUND 127

struct sync_args {
	struct ssh_options ssh;
	const char *agent_path;
	bool stats, dry_run, include_vcs, no_progress;
	int level;
	const char *local_dir;
	const char *dest;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hermes sync [OPTIONS] LOCALDIR DEST\n"
		"  DEST is [user@]host:/path (over SSH) or a local path / local:/path\n"
		"  -p, --port PORT            SSH port\n"
		"  -i, --identity KEYFILE     SSH private key\n"
		"      --accept-new-host-key  trust and record an unknown host key\n"
		"      --agent-path PATH      hermes-agent on the destination\n"
		"      --include-vcs          also sync .git\n"
		"      --dry-run              show what would change, change nothing\n"
		"      --stats                print transfer statistics\n"
		"  -z, --compress-level N     zstd level (default 1)\n"
		"      --no-progress          no progress bar\n"
		"  -v, --verbose              more messages\n");
}

static int parse_args(int argc, char **argv, struct sync_args *a)
{
	enum { O_STATS = 256, O_DRY, O_ACCEPT, O_AGENT, O_VCS, O_NOPROG };
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "identity", required_argument, NULL, 'i' },
		{ "stats", no_argument, NULL, O_STATS },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "accept-new-host-key", no_argument, NULL, O_ACCEPT },
		{ "agent-path", required_argument, NULL, O_AGENT },
		{ "include-vcs", no_argument, NULL, O_VCS },
		{ "compress-level", required_argument, NULL, 'z' },
		{ "no-progress", no_argument, NULL, O_NOPROG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	char *end;
	a->level = 1;
	while ((c = getopt_long(argc, argv, "p:i:z:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			a->ssh.port = (int)strtol(optarg, &end, 10);
			if (*end || a->ssh.port <= 0 || a->ssh.port > 65535) {
				log_error("invalid port '%s'", optarg);
				return 2;
			}
			break;
		case 'i': a->ssh.identity = optarg; break;
		case 'z':
			a->level = (int)strtol(optarg, &end, 10);
			if (*end || a->level < -5 || a->level > 19) {
				log_error("invalid compression level '%s' (-5..19)", optarg);
				return 2;
			}
			break;
		case 'v':
			/* -v: our timings; -vv and up: libssh's own log too. */
			log_set_verbose(log_verbose() + 1);
			a->ssh.verbosity = log_verbose() - 1;
			break;
		case O_STATS: a->stats = true; break;
		case O_DRY: a->dry_run = true; break;
		case O_ACCEPT: a->ssh.accept_new_host_key = true; break;
		case O_AGENT: a->agent_path = optarg; break;
		case O_VCS: a->include_vcs = true; break;
		case O_NOPROG: a->no_progress = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	a->local_dir = argv[optind];
	a->dest = argv[optind + 1];
	return -1;
}

/* A local destination inside the source would sync into itself. */
static int check_local_dest(const char *local_dir, const char *dest)
{
	char src[PATH_MAX], dst[PATH_MAX];
	if (!realpath(local_dir, src) || !realpath(dest, dst))
		return 0; /* a new destination cannot be inside anything yet */
	size_t n = strlen(src);
	if (strncmp(dst, src, n) == 0 && (dst[n] == '\0' || dst[n] == '/' || n == 1)) {
		log_error("destination %s is inside %s", dest, local_dir);
		return -EINVAL;
	}
	return 0;
}

static void print_stats(const struct sync_stats *st)
{
	printf("files scanned: %" PRIu64 "\n"
	       "files sent: %" PRIu64 "\n"
	       "files deleted: %" PRIu64 "\n"
	       "literal bytes: %" PRIu64 "\n"
	       "matched bytes: %" PRIu64 "\n"
	       "bytes sent: %" PRIu64 "\n"
	       "bytes received: %" PRIu64 "\n",
	       st->scanned, st->files_sent, st->files_deleted, st->literal_bytes,
	       st->matched_bytes, st->bytes_sent, st->bytes_recv);
}

static const char *cstr(struct buf *b)
{
	if (buf_reserve(b, 1))
		return "out of memory";
	b->data[b->len] = '\0';
	return (const char *)b->data;
}

/* One line for a failed sync: what went wrong and, when the transport saw
 * why (the agent was killed, the connection dropped), that reason too. */
static void report_failure(struct buf *err, struct buf *diag)
{
	while (diag->len && diag->data[diag->len - 1] == '\n')
		diag->len--;
	if (!diag->len) {
		log_error("%s", cstr(err));
		return;
	}
	const char *last = cstr(diag);
	const char *nl = strrchr(last, '\n');
	log_error("%s (%s)", cstr(err), nl ? nl + 1 : last);
}

int cmd_sync(int argc, char **argv)
{
	struct sync_args a = { 0 };
	int code = parse_args(argc, argv, &a);
	if (code >= 0)
		return code;
	signal(SIGPIPE, SIG_IGN);

	struct stat st;
	if (stat(a.local_dir, &st) < 0) {
		log_error("%s: %s", a.local_dir, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error("%s: not a directory", a.local_dir);
		return 1;
	}
	struct connect_spec cs;
	struct buf err = BUF_INIT, diag = BUF_INIT;
	struct transport *t = NULL;
	code = 1;
	if (connect_prepare(&cs, a.dest, &a.ssh, a.agent_path, &err)) {
		log_error("%s", cstr(&err));
		goto out;
	}
	if (cs.dest.local && check_local_dest(a.local_dir, cs.dest.path))
		goto out;
	if (connect_open(&cs, &t, &err)) {
		log_error("%s", cstr(&err));
		goto out;
	}
	struct sync_options o = {
		.local_dir = a.local_dir,
		.dest_key = (const char *)cs.key.data,
		.peer = cs.peer,
		.dry_run = a.dry_run,
		.include_vcs = a.include_vcs,
		.progress = !a.no_progress && isatty(STDERR_FILENO),
		.zstd_level = a.level,
	};
	struct sync_stats stats;
	int rc = sync_run(t, &o, &stats, &err);
	int status = transport_close(t, &diag);
	if (rc && status == EXIT_NOT_FOUND)
		connect_report_not_found(&cs);
	else if (rc)
		report_failure(&err, &diag);
	else if (diag.len)
		fputs(cstr(&diag), stderr); /* the agent's warnings, as it wrote them */
	if (!rc && status != 0) {
		/* Everything arrived, yet the agent did not end cleanly (a crash
		 * at exit, a sanitizer report): worth failing loudly. */
		log_error("%s on %s exited with status %d after the sync", AGENT_NAME,
			  cs.dest.local ? "this machine" : cs.dest.host, status);
		rc = -EIO;
	}
	if (a.stats)
		print_stats(&stats);
	code = rc ? 1 : 0;
out:
	connect_free(&cs);
	buf_free(&err);
	buf_free(&diag);
	return code;
}
