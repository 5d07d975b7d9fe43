/* hermes mount / hermes umount: a FUSE workspace over LOCALDIR whose
 * changes are mirrored live to DEST (src/fs does the file system,
 * src/sync/mirror.c the mirroring; this file wires them together). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "connect.h"
#include "fs.h"
#include "log.h"
#include "jobclient.h"
#include "mirror.h"
#include "vjobs.h"

#define FLUSH_TIMEOUT_MS (5 * 60 * 1000) /* a read of .hermes/flush */
#define UMOUNT_FLUSH_MS 15000            /* what unmounting waits for */
#define MOUNT_WAIT_MS 10000

struct mount_args {
	struct ssh_options ssh;
	const char *agent_path;
	const char *podman_socket; /* for the agent's jobs; NULL: its default */
	const char *fuse_opts;
	bool foreground, debug, include_vcs;
	char local_dir[PATH_MAX];
	char mountpoint[PATH_MAX];
	const char *dest;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hermes mount [OPTIONS] LOCALDIR MOUNTPOINT DEST\n"
		"  Mount LOCALDIR at MOUNTPOINT; every change is mirrored to DEST.\n"
		"  -o OPTIONS                 FUSE mount options (allow_other, ...)\n"
		"  -f, --foreground           stay in the foreground\n"
		"  -d, --debug                log every operation and sync batch\n"
		"  -p, --port PORT            SSH port\n"
		"  -i, --identity KEYFILE     SSH private key\n"
		"      --accept-new-host-key  trust and record an unknown host key\n"
		"      --agent-path PATH      hermes-agent on the destination\n"
		"      --include-vcs          also mirror .git\n"
		"      --podman-socket PATH   Podman's API socket on the host, for jobs\n"
		"usage: hermes umount MOUNTPOINT\n");
}

static int parse_args(int argc, char **argv, struct mount_args *a)
{
	enum { O_ACCEPT = 256, O_AGENT, O_VCS, O_PODMAN };
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "port", required_argument, NULL, 'p' },
		{ "identity", required_argument, NULL, 'i' },
		{ "accept-new-host-key", no_argument, NULL, O_ACCEPT },
		{ "agent-path", required_argument, NULL, O_AGENT },
		{ "include-vcs", no_argument, NULL, O_VCS },
		{ "podman-socket", required_argument, NULL, O_PODMAN },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "o:fdp:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': a->fuse_opts = optarg; break;
		case 'f': a->foreground = true; break;
		case 'd': a->debug = true; log_set_verbose(1); break;
		case 'p':
			a->ssh.port = (int)strtol(optarg, &end, 10);
			if (*end || a->ssh.port <= 0 || a->ssh.port > 65535) {
				log_error("invalid port '%s'", optarg);
				return 2;
			}
			break;
		case 'i': a->ssh.identity = optarg; break;
		case O_ACCEPT: a->ssh.accept_new_host_key = true; break;
		case O_AGENT: a->agent_path = optarg; break;
		case O_VCS: a->include_vcs = true; break;
		case O_PODMAN: a->podman_socket = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind != 3) {
		usage(stderr);
		return 2;
	}
	/* Absolute: the daemon leaves the current directory. */
	const char *names[2] = { argv[optind], argv[optind + 1] };
	char *outs[2] = { a->local_dir, a->mountpoint };
	for (int i = 0; i < 2; i++) {
		struct stat st;
		if (!realpath(names[i], outs[i]) || stat(outs[i], &st) < 0) {
			log_error("%s: %s", names[i], strerror(errno));
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			log_error("%s: not a directory", names[i]);
			return 1;
		}
	}
	if (!strcmp(a->local_dir, a->mountpoint)) {
		log_error("%s: LOCALDIR and MOUNTPOINT must differ", names[0]);
		return 1;
	}
	a->dest = argv[optind + 2];
	return -1;
}

/* --- the glue -------------------------------------------------------------- */

static struct mirror *the_mirror; /* for the signal handler's sake only */

static int connect_cb(void *ctx, struct transport **t, struct buf *err)
{
	return connect_open(ctx, t, err);
}

static void on_changed(void *ctx, const char *path) { mirror_changed(ctx, path); }

static void on_written(void *ctx, const char *path, uint64_t off, uint64_t len)
{
	mirror_written(ctx, path, off, len);
}

static void on_renamed(void *ctx, const char *from, const char *to)
{
	mirror_changed(ctx, from);
	mirror_changed(ctx, to);
}

static int vfile_sync(void *ctx, struct buf *content)
{
	mirror_status(ctx, content);
	return 0;
}

/* .hermes/flush: blocks until every change made before the open is on the
 * host, then reads as the generation reached. */
static int vfile_flush(void *ctx, struct buf *content)
{
	/* Files still open (an editor's, a build's) count as changed too. */
	fs_report_open_files();
	int64_t gen = mirror_flush(ctx, FLUSH_TIMEOUT_MS);
	if (gen < 0)
		return (int)gen;
	return buf_printf(content, "%" PRId64 "\n", gen);
}

/* Jobs run through a second connection, to the agent in job mode. */
struct jobs_glue {
	const struct connect_spec *cs;
	const char *podman_socket;
};

static int connect_jobs_cb(void *ctx, struct transport **t, struct buf *err)
{
	const struct jobs_glue *g = ctx;
	return connect_open_jobs(g->cs, g->podman_socket, t, err);
}

static void jobs_changed(void *ctx)
{
	(void)ctx;
	fs_vwake();
}

static int64_t jobs_barrier(void *ctx)
{
	return mirror_flush(ctx, FLUSH_TIMEOUT_MS);
}

static int start_jobs(const struct mount_args *a, struct jobs_glue *glue, struct jobclient **jc)
{
	char dir[PATH_MAX + 16];
	struct buf err = BUF_INIT;
	snprintf(dir, sizeof(dir), "%s/.hermes", a->local_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_error("cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	snprintf(dir, sizeof(dir), "%s/.hermes/jobs", a->local_dir);
	struct jobclient_config jcc = {
		.state_dir = dir, .host = glue->cs->peer,
		.connect = connect_jobs_cb, .changed = jobs_changed, .ctx = glue,
	};
	int rc = jobclient_start(&jcc, jc, &err);
	if (rc)
		log_error("%s", (const char *)err.data);
	buf_free(&err);
	return rc;
}

static void on_signal(int sig)
{
	(void)sig;
	fs_request_exit();
}

static int serve(struct mount_args *a, struct connect_spec *cs)
{
	struct mirror_config mc = {
		.so = {
			.local_dir = a->local_dir,
			.dest_key = (const char *)cs->key.data,
			.peer = cs->peer,
			.include_vcs = a->include_vcs,
			.zstd_level = 1,
		},
		.dest = a->dest,
		.connect = connect_cb,
		.ctx = cs,
	};
	int rc = mirror_start(&mc, &the_mirror);
	if (rc) {
		log_error("cannot start mirroring to %s: %s", a->dest, strerror(-rc));
		return 1;
	}
	struct jobs_glue glue = { .cs = cs, .podman_socket = a->podman_socket };
	struct jobclient *jobs = NULL;
	if (start_jobs(a, &glue, &jobs)) {
		mirror_stop(the_mirror, 0);
		return 1;
	}
	struct vjobs_config vjc = { .jobs = jobs, .barrier = jobs_barrier, .ctx = the_mirror };
	struct fs_vops vops;
	vjobs_ops(&vjc, &vops);
	const struct fs_vfile vfiles[] = {
		{ .name = "sync", .open_fn = vfile_sync, .ctx = the_mirror },
		/* slow: a reader waits without holding a FUSE thread, and Ctrl-C
		 * (or hermes umount's alarm) ends its wait at once. */
		{ .name = "flush", .open_fn = vfile_flush, .ctx = the_mirror, .slow = true },
	};
	struct fs_options fo = {
		.backing = a->local_dir,
		.mountpoint = a->mountpoint,
		.foreground = true,
		.debug = a->debug,
		.fuse_opts = a->fuse_opts,
		.observer = { .changed = on_changed, .written = on_written,
			      .removed = on_changed, .renamed = on_renamed, .ctx = the_mirror },
		.vfiles = vfiles,
		.nvfiles = sizeof(vfiles) / sizeof(vfiles[0]),
		.vops = &vops,
		.nvops = 1,
	};
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct buf err = BUF_INIT;
	rc = fs_run(&fo, &err);
	if (rc)
		log_error("%s", err.len ? (const char *)err.data : strerror(-rc));
	buf_free(&err);
	/* Unmounted: send what is still pending, for a bounded time. */
	jobclient_stop(jobs);
	int left = mirror_stop(the_mirror, UMOUNT_FLUSH_MS);
	return rc || left ? 1 : 0;
}

static bool is_mounted(const char *mountpoint)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX];
		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && !strcmp(mp, mountpoint))
			found = strstr(line, " - fuse") != NULL;
	}
	fclose(f);
	return found;
}

/* Fork the daemon; come back once the mount is there (or the daemon died). */
static int daemonize(struct mount_args *a, struct connect_spec *cs)
{
	char logpath[PATH_MAX + 32];
	snprintf(logpath, sizeof(logpath), "%s/.hermes/mount.log", a->local_dir);
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		setsid();
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		mkdir(a->local_dir, 0755);
		char dir[PATH_MAX + 16];
		snprintf(dir, sizeof(dir), "%s/.hermes", a->local_dir);
		mkdir(dir, 0755);
		int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
		}
		if (logfd >= 0)
			dup2(logfd, STDERR_FILENO);
		if (chdir("/") < 0)
			_exit(1);
		_exit(serve(a, cs));
	}
	for (int waited = 0; waited < MOUNT_WAIT_MS; waited += 20) {
		if (is_mounted(a->mountpoint))
			return 0;
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			log_error("mounting %s failed (see %s)", a->mountpoint, logpath);
			return 1;
		}
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	log_error("%s did not appear within %d s (see %s)", a->mountpoint, MOUNT_WAIT_MS / 1000,
		  logpath);
	return 1;
}

int cmd_mount(int argc, char **argv)
{
	struct mount_args a = { 0 };
	int code = parse_args(argc, argv, &a);
	if (code >= 0)
		return code;
	signal(SIGPIPE, SIG_IGN);
	struct connect_spec cs;
	struct buf err = BUF_INIT;
	if (connect_prepare(&cs, a.dest, &a.ssh, a.agent_path, &err)) {
		log_error("%.*s", (int)err.len, err.data ? (const char *)err.data : "");
		buf_free(&err);
		connect_free(&cs);
		return 1;
	}
	buf_free(&err);
	code = a.foreground ? serve(&a, &cs) : daemonize(&a, &cs);
	connect_free(&cs);
	return code;
}

/* hermes umount: flush (bounded), unmount, and wait for the daemon to send
 * what was still pending. */
int cmd_umount(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		usage(argc == 2 ? stdout : stderr);
		return argc == 2 ? 0 : 2;
	}
	char mp[PATH_MAX];
	if (!realpath(argv[1], mp)) {
		log_error("%s: %s", argv[1], strerror(errno));
		return 1;
	}
	if (!is_mounted(mp)) {
		log_error("%s is not mounted", mp);
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		/* A read of .hermes/flush is the barrier; bounded by an alarm. */
		char path[PATH_MAX + 16];
		snprintf(path, sizeof(path), "%s/.hermes/flush", mp);
		alarm(UMOUNT_FLUSH_MS / 1000);
		int fd = open(path, O_RDONLY);
		char b[64];
		_exit(fd >= 0 && read(fd, b, sizeof(b)) > 0 ? 0 : 1);
	}
	int status = 0;
	if (pid > 0)
		waitpid(pid, &status, 0);
	if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		log_warn("%s: changes are still on their way to the host; the daemon keeps "
			 "trying for %d s after unmounting", mp, UMOUNT_FLUSH_MS / 1000);
	pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", mp, (char *)NULL);
		_exit(127);
	}
	status = 0;
	if (pid > 0)
		waitpid(pid, &status, 0);
	if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_error("fusermount3 -u %s failed%s", mp,
			  WIFEXITED(status) && WEXITSTATUS(status) == 127 ? " (is fuse3 installed?)" : "");
		return 1;
	}
	return 0;
}
