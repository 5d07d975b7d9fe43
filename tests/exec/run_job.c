/* run_job: run one job through job.h, for tests, benchmarks and the GPU
 * check, outside the agent.
 *
 *   run_job [-n REPEAT] SOCKET PROJECTDIR COMMAND
 *
 * Reads PROJECTDIR/hermes.conf (defaults without it), runs COMMAND with
 * PROJECTDIR as the workspace, streams its output to stdout/stderr, prints
 * the result on stderr ("run_job: exited 0 in 0.31 s") and exits with the
 * job's exit code (1 when it did not run or was cancelled / timed out).
 * With -n, runs it REPEAT times and prints each run's wall time in seconds,
 * from job_run's call to its return, one per line on stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "job.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_output(void *ctx, int stream, const void *data, size_t len)
{
	(void)ctx;
	fwrite(data, 1, len, stream == 2 ? stderr : stdout);
	fflush(stream == 2 ? stderr : stdout);
}

static int run_once(struct job_spec *spec, bool quiet, double *took)
{
	static int seq;
	char name[64];
	snprintf(name, sizeof(name), "hermes-run-job-%d-%d", (int)getpid(), ++seq);
	spec->name = name;
	struct job *j = job_new();
	if (!j)
		return 1;
	struct job_callbacks cb = { NULL, quiet ? NULL : on_output, NULL };
	struct job_result r;
	struct buf err = BUF_INIT;
	double t0 = now_s();
	int rc = job_run(j, spec, &cb, &r, &err);
	*took = now_s() - t0;
	job_free(j);
	if (rc) {
		fprintf(stderr, "run_job: %s\n", err.len ? (char *)err.data : strerror(-rc));
		buf_free(&err);
		return 1;
	}
	buf_free(&err);
	if (!quiet || r.state != JOB_EXITED)
		fprintf(stderr, "run_job: %s %d in %.2f s%s%s%s\n", job_state_name(r.state),
			r.exit_code, r.duration_s, r.output_truncated ? " (output truncated)" : "",
			r.message[0] ? ": " : "", r.message);
	return r.state == JOB_EXITED ? r.exit_code : 1;
}

int main(int argc, char **argv)
{
	int repeat = 0;
	if (argc > 2 && strcmp(argv[1], "-n") == 0) {
		repeat = atoi(argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc != 4) {
		fprintf(stderr, "usage: run_job [-n REPEAT] SOCKET PROJECTDIR COMMAND\n");
		return 2;
	}
	char confpath[4096];
	snprintf(confpath, sizeof(confpath), "%s/" CONF_FILE, argv[2]);
	struct hermes_conf conf;
	struct buf err = BUF_INIT;
	struct job_spec spec = { .podman_socket = argv[1], .owner = "hermes-run-job",
				 .workspace = argv[2], .command = argv[3] };
	if (conf_load(&conf, confpath, &err) || conf_to_spec(&conf, &spec, &err)) {
		fprintf(stderr, "run_job: %s\n", (char *)err.data);
		conf_free(&conf);
		buf_free(&err);
		return 2;
	}
	int rc = 0;
	double took;
	if (repeat <= 0) {
		rc = run_once(&spec, false, &took);
	} else {
		for (int i = 0; i < repeat && rc == 0; i++) {
			rc = run_once(&spec, true, &took);
			printf("%.4f\n", took);
		}
	}
	conf_free(&conf);
	buf_free(&err);
	return rc;
}
