/* hermes run / status / logs / cancel: the job commands of a mount, done
 * entirely through its virtual files (.hermes/run, .hermes/jobs/ID/...),
 * so they work from any shell inside the mount and need no connection of
 * their own. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "fdio.h"
#include "jobclient.h"
#include "log.h"

#define EXIT_TIMED_OUT 124  /* as timeout(1) */
#define EXIT_NOT_STARTED 125
#define EXIT_CANCELLED 130  /* as a shell after SIGINT */

/* The .hermes directory of the mount holding dir (dir or a parent). */
static int find_vdir(const char *dir, char *out, size_t n)
{
	char cur[PATH_MAX];
	if (!realpath(dir, cur)) {
		log_error("%s: %s", dir, strerror(errno));
		return -1;
	}
	for (;;) {
		struct stat st;
		char probe[PATH_MAX + 16];
		snprintf(probe, sizeof(probe), "%s%s.hermes/run", cur, strcmp(cur, "/") ? "/" : "");
		if (stat(probe, &st) == 0 && S_ISREG(st.st_mode) && strlen(probe) - 4 < n) {
			snprintf(out, n, "%.*s", (int)(strlen(probe) - 4), probe);
			return 0;
		}
		char *slash = strrchr(cur, '/');
		if (!slash || slash == cur) {
			if (!strcmp(cur, "/"))
				break;
			strcpy(cur, "/");
			continue;
		}
		*slash = '\0';
	}
	log_error("%s is not inside a hermes mount (no .hermes/run above it); "
		  "start one with 'hermes mount', or use --url for hermesd", dir);
	return -1;
}

static int read_small(const char *path, struct buf *out, int oflags)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | oflags);
	if (fd < 0)
		return -errno;
	int rc = fd_read_all(fd, out, 1 << 20);
	close(fd);
	if (!rc)
		rc = buf_append(out, "", 1);
	if (!rc)
		out->len--;
	return rc;
}

/* ------------------------------------------------------------ hermes run --- */

static bool needs_quotes(const char *s)
{
	if (!*s)
		return true;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *s))
			return true;
	return false;
}

/* One argument: a shell command as it is; several: words quoted for sh -c. */
static void join_command(int argc, char **argv, struct buf *cmd)
{
	if (argc == 1) {
		buf_append_str(cmd, argv[0]);
		return;
	}
	for (int i = 0; i < argc; i++) {
		if (i)
			buf_append_str(cmd, " ");
		if (!needs_quotes(argv[i])) {
			buf_append_str(cmd, argv[i]);
			continue;
		}
		buf_append_str(cmd, "'");
		for (const char *s = argv[i]; *s; s++)
			buf_append_str(cmd, *s == '\'' ? "'\\''" : (char[]){ *s, 0 });
		buf_append_str(cmd, "'");
	}
}

/* Submit through .hermes/run: the write is handed over by closing a
 * duplicate (FUSE flush), then the same open file reads back the job id or
 * the error text. */
static int submit(const char *vdir, const char *command, unsigned long long *id)
{
	char path[PATH_MAX + 8], reply[1024];
	snprintf(path, sizeof(path), "%s/run", vdir);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		log_error("%s: %s", path, strerror(errno));
		return -1;
	}
	struct buf line = BUF_INIT;
	buf_printf(&line, "%s\n", command);
	int rc = write_full(fd, line.data, line.len);
	buf_free(&line);
	int dup_fd = rc ? -1 : dup(fd);
	if (!rc && (dup_fd < 0 || close(dup_fd) < 0))
		rc = -errno;
	ssize_t n = pread(fd, reply, sizeof(reply) - 1, 0);
	close(fd);
	reply[n > 0 ? n : 0] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	if (rc) {
		log_error("run '%s': %s", command,
			  !strncmp(reply, "error: ", 7) ? reply + 7 : strerror(-rc));
		return -1;
	}
	*id = strtoull(reply, NULL, 10);
	if (*id == 0) {
		log_error("run '%s': %s gave no job id", command, path);
		return -1;
	}
	return 0;
}

struct copier {
	char path[PATH_MAX + 64];
	int out_fd;
	int err;
	pthread_t thread;
};

/* Copy a streaming job file to out_fd until the job ends (end of file). */
static void *copy_stream(void *arg)
{
	struct copier *c = arg;
	char chunk[65536];
	int fd = open(c->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		c->err = errno;
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			c->err = n < 0 ? errno : 0;
			break;
		}
		if (write_full(c->out_fd, chunk, (size_t)n))
			break; /* our stdout is gone (a closed pipe): keep the job going */
	}
	close(fd);
	return NULL;
}

struct canceller {
	char path[PATH_MAX + 16];
	sigset_t set;
	volatile bool cancelled;
};

/* Ctrl-C or SIGTERM while following: cancel the job, then let the streams end. */
static void *wait_signal(void *arg)
{
	struct canceller *c = arg;
	int sig;
	if (sigwait(&c->set, &sig) != 0 || sig == SIGUSR1)
		return NULL;
	c->cancelled = true;
	int fd = open(c->path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write_full(fd, "cancel\n", 7))
			log_warn("%s: %s", c->path, strerror(errno));
		close(fd);
	}
	return NULL;
}

static int exit_code_of(const struct buf *status)
{
	struct jobinfo ji;
	if (jobinfo_parse((const char *)status->data, &ji))
		return EXIT_NOT_STARTED;
	if (ji.state == JOB_EXITED)
		return ji.exit_code;
	if (ji.message[0])
		log_error("%s", ji.message);
	if (ji.state == JOB_TIMED_OUT)
		return EXIT_TIMED_OUT;
	if (ji.state == JOB_CANCELLED)
		return EXIT_CANCELLED;
	return EXIT_NOT_STARTED;
}

/* Stream job id's stdout and stderr to ours; return its exit code. */
static int follow(const char *vdir, unsigned long long id, bool cancel_on_signal)
{
	struct copier out = { .out_fd = STDOUT_FILENO }, err = { .out_fd = STDERR_FILENO };
	struct canceller can = { 0 };
	pthread_t sig_thread;
	snprintf(out.path, sizeof(out.path), "%s/jobs/%llu/stdout", vdir, id);
	snprintf(err.path, sizeof(err.path), "%s/jobs/%llu/stderr", vdir, id);
	snprintf(can.path, sizeof(can.path), "%s/cancel", vdir);
	sigemptyset(&can.set);
	sigaddset(&can.set, SIGINT);
	sigaddset(&can.set, SIGTERM);
	sigaddset(&can.set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &can.set, NULL);
	bool sig_live = cancel_on_signal && pthread_create(&sig_thread, NULL, wait_signal, &can) == 0;
	pthread_create(&out.thread, NULL, copy_stream, &out);
	copy_stream(&err);
	pthread_join(out.thread, NULL);
	if (sig_live) {
		pthread_kill(sig_thread, SIGUSR1);
		pthread_join(sig_thread, NULL);
	}
	if (out.err || err.err) {
		log_error("job %llu: reading its output: %s", id, strerror(out.err ? out.err : err.err));
		return EXIT_NOT_STARTED;
	}
	char path[PATH_MAX + 64];
	struct buf status = BUF_INIT;
	snprintf(path, sizeof(path), "%s/jobs/%llu/status", vdir, id);
	int rc = read_small(path, &status, 0);
	int code = rc ? EXIT_NOT_STARTED : exit_code_of(&status);
	if (rc)
		log_error("%s: %s", path, strerror(-rc));
	buf_free(&status);
	return code;
}

static void run_usage(FILE *out)
{
	fprintf(out, "usage: hermes run [-C DIR] [--] COMMAND [ARGS...]\n"
		     "  Run COMMAND on the host of the mount holding DIR (default: .), once every\n"
		     "  edit is there; stream its output here; exit with its exit code\n"
		     "  (124: timed out, 125: could not run, 130: cancelled).\n");
}

int cmd_run(int argc, char **argv)
{
	const char *dir = ".";
	int c;
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	while ((c = getopt_long(argc, argv, "+C:h", opts, NULL)) != -1) {
		switch (c) {
		case 'C': dir = optarg; break;
		case 'h': run_usage(stdout); return 0;
		default: run_usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		run_usage(stderr);
		return 2;
	}
	char vdir[PATH_MAX];
	if (find_vdir(dir, vdir, sizeof(vdir)))
		return EXIT_NOT_STARTED;
	struct buf cmd = BUF_INIT;
	join_command(argc - optind, argv + optind, &cmd);
	buf_append(&cmd, "", 1);
	unsigned long long id;
	int rc = submit(vdir, (const char *)cmd.data, &id);
	buf_free(&cmd);
	return rc ? EXIT_NOT_STARTED : follow(vdir, id, true);
}

/* ------------------------------------------------- status, logs, cancel --- */

/* Print a status text as a JSON object (numbers as numbers). */
static void print_json(const struct buf *status)
{
	const char *p = (const char *)status->data;
	bool first = true;
	printf("{");
	while (p && *p) {
		const char *colon = strstr(p, ": ");
		const char *nl = strchr(p, '\n');
		if (!colon || (nl && colon > nl))
			break;
		const char *v = colon + 2;
		size_t vlen = nl ? (size_t)(nl - v) : strlen(v);
		bool number = !strncmp(p, "id", 2) || !strncmp(p, "exit_code", 9) ||
			      !strncmp(p, "duration", 8) || !strncmp(p, "started", 7);
		printf("%s\"%.*s\": ", first ? "" : ", ", (int)(colon - p), p);
		if (number) {
			printf("%.*s", (int)vlen, v);
		} else {
			putchar('"');
			for (size_t i = 0; i < vlen; i++) {
				unsigned char ch = (unsigned char)v[i];
				if (ch == '"' || ch == '\\')
					printf("\\%c", ch);
				else if (ch < 0x20)
					printf("\\u%04x", ch);
				else
					putchar(ch);
			}
			putchar('"');
		}
		first = false;
		p = nl ? nl + 1 : NULL;
	}
	printf("}\n");
}

struct job_args {
	const char *dir;
	const char *id;
	bool json, follow;
};

static int parse_job_args(int argc, char **argv, struct job_args *a, const char *usage)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	a->dir = ".";
	while ((c = getopt_long(argc, argv, "C:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'C': a->dir = optarg; break;
		case 'j': a->json = true; break;
		case 'f': a->follow = true; break;
		case 'h': printf("%s", usage); return 0;
		default: fprintf(stderr, "%s", usage); return 2;
		}
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "%s", usage);
		return 2;
	}
	a->id = optind < argc ? argv[optind] : NULL;
	if (a->id && strspn(a->id, "0123456789") != strlen(a->id)) {
		log_error("'%s' is not a job id (a number, see .hermes/jobs/)", a->id);
		return 2;
	}
	return -1;
}

/* PATH of job file `file` of a->id, or of the current job (out/). */
static void job_file(const char *vdir, const struct job_args *a, const char *file, char *out,
		     size_t n)
{
	if (a->id)
		snprintf(out, n, "%s/jobs/%s/%s", vdir, a->id, file);
	else
		snprintf(out, n, "%s/out/%s", vdir, file);
}

int cmd_status(int argc, char **argv)
{
	struct job_args a = { 0 };
	int rc = parse_job_args(argc, argv, &a, "usage: hermes status [-C DIR] [--json] [ID]\n");
	char vdir[PATH_MAX], path[PATH_MAX + 64];
	if (rc >= 0)
		return rc;
	if (find_vdir(a.dir, vdir, sizeof(vdir)))
		return 1;
	job_file(vdir, &a, "status", path, sizeof(path));
	struct buf status = BUF_INIT;
	rc = read_small(path, &status, 0);
	if (rc) {
		log_error("%s: %s", path, rc == -ENOENT ? "no such job" : strerror(-rc));
		buf_free(&status);
		return 1;
	}
	if (a.json)
		print_json(&status);
	else
		fwrite(status.data, 1, status.len, stdout);
	buf_free(&status);
	return 0;
}

int cmd_logs(int argc, char **argv)
{
	struct job_args a = { 0 };
	int rc = parse_job_args(argc, argv, &a, "usage: hermes logs [-C DIR] [-f] [ID]\n");
	char vdir[PATH_MAX], path[PATH_MAX + 64];
	if (rc >= 0)
		return rc;
	if (find_vdir(a.dir, vdir, sizeof(vdir)))
		return 1;
	if (a.follow) {
		struct buf status = BUF_INIT;
		struct jobinfo ji = { 0 };
		job_file(vdir, &a, "status", path, sizeof(path));
		rc = read_small(path, &status, 0);
		if (!rc)
			jobinfo_parse((const char *)status.data, &ji);
		buf_free(&status);
		if (!ji.id) {
			log_error("%s: no such job", path);
			return 1;
		}
		follow(vdir, ji.id, false);
		return 0;
	}
	/* A snapshot: O_NONBLOCK reads end at what has arrived so far. */
	static const char *const streams[] = { "stdout", "stderr" };
	for (int i = 0; i < 2; i++) {
		struct buf out = BUF_INIT;
		job_file(vdir, &a, streams[i], path, sizeof(path));
		rc = read_small(path, &out, O_NONBLOCK);
		if (rc) {
			log_error("%s: %s", path, rc == -ENOENT ? "no such job" : strerror(-rc));
			buf_free(&out);
			return 1;
		}
		if (write_full(i ? STDERR_FILENO : STDOUT_FILENO, out.data, out.len))
			rc = 1;
		buf_free(&out);
	}
	return rc;
}

int cmd_cancel(int argc, char **argv)
{
	struct job_args a = { 0 };
	int rc = parse_job_args(argc, argv, &a, "usage: hermes cancel [-C DIR]\n");
	char vdir[PATH_MAX], path[PATH_MAX + 16];
	if (rc >= 0)
		return rc;
	if (find_vdir(a.dir, vdir, sizeof(vdir)))
		return 1;
	snprintf(path, sizeof(path), "%s/cancel", vdir);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		log_error("%s: %s", path, strerror(errno));
		return 1;
	}
	rc = write_full(fd, "cancel\n", 7);
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (rc == -ESRCH) {
		log_error("no job is running in this mount");
		return 1;
	}
	if (rc) {
		log_error("%s: %s", path, strerror(-rc));
		return 1;
	}
	return 0;
}
