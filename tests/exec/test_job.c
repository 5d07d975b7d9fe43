/* job.h against a real, private Podman service (tests/exec/job_podman.sh
 * starts it and exports PODMAN_SOCK, PODMAN_IMAGE, PODMAN_CDI_DIR).
 *
 * Every test runs real containers and checks bytes, exit codes, states and
 * error text; after each one no container with this process's owner label
 * may be left (the container is removed on every path).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "job.h"
#include "podman.h"

#define S(b) ((const char *)(b).data)

static const char *sock, *image, *cdi_dir;
static char owner[64], tmpdir[256], workspace[300], emptydir[300];
static int counter;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What the callbacks saw. */
struct cap {
	struct buf out, err;
	double t_first_out, t_started;
	char id[80];
	struct job *job;
	const char *cancel_on; /* cancel from another thread once stdout holds this */
	pthread_t canceller;
	bool cancel_sent;
	struct buf inspect; /* the container's inspect JSON, taken when it started */
};

static void *cancel_thread(void *arg)
{
	job_cancel(arg);
	return NULL;
}

static void cb_started(void *ctx, const char *id)
{
	struct cap *c = ctx;
	c->t_started = now_s();
	snprintf(c->id, sizeof(c->id), "%s", id);
	struct podman *p = podman_new(sock);
	struct buf e = BUF_INIT;
	assert_non_null(p);
	assert_int_equal(podman_inspect(p, id, &c->inspect, &e), 0);
	podman_free(p);
	buf_free(&e);
}

static void cb_output(void *ctx, int stream, const void *data, size_t len)
{
	struct cap *c = ctx;
	if (!c->t_first_out)
		c->t_first_out = now_s();
	assert_int_equal(buf_append(stream == 1 ? &c->out : &c->err, data, len), 0);
	if (c->cancel_on && !c->cancel_sent && stream == 1 &&
	    memmem(c->out.data, c->out.len, c->cancel_on, strlen(c->cancel_on))) {
		c->cancel_sent = true;
		assert_int_equal(pthread_create(&c->canceller, NULL, cancel_thread, c->job), 0);
	}
}

static const char *str(struct buf *b)
{
	if (buf_append(b, "", 1))
		abort();
	b->len--;
	return (const char *)b->data;
}

static struct job_spec base_spec(const char *command)
{
	static char name[64];
	snprintf(name, sizeof(name), "hermes-test-%d-%d", (int)getpid(), ++counter);
	return (struct job_spec){
		.podman_socket = sock, .name = name, .owner = owner, .image = image,
		.workspace = workspace, .command = command, .wall_time_s = 60,
		.memory_bytes = 256u << 20, .pids = 256, .output_bytes = 64u << 20,
	};
}

static void assert_no_containers(void)
{
	struct podman *p = podman_new(sock);
	struct buf ids = BUF_INIT, e = BUF_INIT;
	size_t n = 99;
	assert_int_equal(podman_list_label(p, "hermes.owner", owner, &ids, &n, &e), 0);
	if (n)
		fprintf(stderr, "left behind: %s\n", S(ids));
	assert_int_equal(n, 0);
	buf_free(&ids);
	buf_free(&e);
	podman_free(p);
}

/* Run spec; returns job_run's value; result and err filled. */
static int run(const struct job_spec *spec, struct cap *c, struct job_result *r, struct buf *err)
{
	struct job *j = job_new();
	assert_non_null(j);
	c->job = j;
	struct job_callbacks cb = { cb_started, cb_output, c };
	int rc = job_run(j, spec, &cb, r, err);
	if (c->cancel_sent)
		pthread_join(c->canceller, NULL);
	job_free(j);
	str(&c->out);
	str(&c->err);
	str(err);
	fprintf(stderr, "[%s] rc=%d state=%s exit=%d %.2fs out=%zu err=%zu msg='%s' errtxt='%s'\n",
		spec->command, rc, job_state_name(r->state), r->exit_code, r->duration_s,
		c->out.len, c->err.len, r->message, (char *)err->data);
	assert_no_containers();
	return rc;
}

static void cap_free(struct cap *c, struct buf *err)
{
	buf_free(&c->out);
	buf_free(&c->err);
	buf_free(&c->inspect);
	buf_free(err);
}

/* ---- tests ---- */

static void test_stream_exit_stderr(void **state)
{
	(void)state;
	struct job_spec s = base_spec("echo out1; echo err1 >&2; sleep 2; echo out2; exit 7");
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	double t0 = now_s();
	assert_int_equal(run(&s, &c, &r, &err), 0);
	double t_end = now_s();
	assert_int_equal(r.state, JOB_EXITED);
	assert_int_equal(r.exit_code, 7);
	assert_string_equal(S(c.out), "out1\nout2\n");
	assert_string_equal(S(c.err), "err1\n");
	assert_string_equal(r.message, "");
	assert_false(r.output_truncated);
	assert_true(r.container_id[0] != '\0');
	/* streamed: the first line came while the job still slept */
	assert_true(c.t_first_out > 0 && c.t_first_out < t_end - 1.5);
	assert_true(c.t_started >= t0 && c.t_started <= c.t_first_out);
	assert_true(r.duration_s >= 2.0 && r.duration_s < 30);
	cap_free(&c, &err);
}

static void test_workspace_and_user(void **state)
{
	(void)state;
	struct job_spec s = base_spec("pwd; id -u; echo made >made.txt; cat input.txt");
	char path[400];
	snprintf(path, sizeof(path), "%s/input.txt", workspace);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("from the host\n", f);
	fclose(f);
	s.user = "0:0";
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(S(c.out), JOB_WORKDIR "\n0\nfrom the host\n");
	snprintf(path, sizeof(path), "%s/made.txt", workspace);
	f = fopen(path, "r");
	assert_non_null(f);
	char line[32] = "";
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	assert_string_equal(line, "made\n");
	cap_free(&c, &err);

	/* a non-root user inside, as asked */
	s = base_spec("id -u; id -g");
	s.user = "1000:1000";
	struct cap c2 = { 0 };
	assert_int_equal(run(&s, &c2, &r, &err), 0);
	assert_string_equal(S(c2.out), "1000\n1000\n");
	cap_free(&c2, &err);
}

/* hermes.conf's user auto: a project owned by uid 1000 runs as 1000:1000,
 * and what the job makes belongs to that owner on the host. */
static void test_conf_user_auto(void **state)
{
	(void)state;
	char ws[400], made[500];
	snprintf(ws, sizeof(ws), "%s/owned-ws", tmpdir);
	snprintf(made, sizeof(made), "%s/made", ws);
	assert_int_equal(mkdir(ws, 0755), 0);
	assert_int_equal(chown(ws, 1000, 1000), 0);
	struct hermes_conf conf;
	struct buf err = BUF_INIT;
	char text[300];
	snprintf(text, sizeof(text), "image = %s\ngpus = none\n", image);
	conf_init(&conf);
	assert_int_equal(conf_parse(&conf, text, strlen(text), "hermes.conf", &err), 0);
	struct job_spec s = base_spec("id -u; id -g; touch made; touch /workspace/../escape");
	s.workspace = ws;
	assert_int_equal(conf_to_spec(&conf, &s, &err), 0);
	assert_string_equal(s.user, "1000:1000");
	struct cap c = { 0 };
	struct job_result r;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_string_equal(S(c.out), "1000\n1000\n");
	assert_int_not_equal(r.exit_code, 0); /* / is read-only */
	struct stat st;
	assert_int_equal(stat(made, &st), 0);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 1000);
	conf_free(&conf);
	cap_free(&c, &err);
}

static void test_env_and_mounts(void **state)
{
	(void)state;
	char extra[400];
	snprintf(extra, sizeof(extra), "%s/extra", tmpdir);
	mkdir(extra, 0755);
	const char *env[] = { "GREETING=hello world", "HOME=/workspace" };
	struct job_mount m[] = { { extra, "/cache", true } };
	struct job_spec s = base_spec("echo \"$GREETING\" $HOME; ls -d /cache; touch /cache/x");
	s.env = env;
	s.nenv = 2;
	s.mounts = m;
	s.nmounts = 1;
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_int_not_equal(r.exit_code, 0); /* /cache is read-only */
	assert_string_equal(S(c.out), "hello world /workspace\n/cache\n");
	assert_non_null(strstr(S(c.err), "Read-only file system"));
	cap_free(&c, &err);
}

static void test_flood_limited(void **state)
{
	(void)state;
	/* 100 MB against a 64 MiB limit: the first 64 MiB arrive, the rest is
	 * dropped, the job ends by itself */
	struct job_spec s = base_spec("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 100000000");
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	double t0 = now_s();
	assert_int_equal(run(&s, &c, &r, &err), 0);
	double took = now_s() - t0;
	fprintf(stderr, "flood 100 MB, limit 64 MiB: %.2f s\n", took);
	assert_int_equal(r.state, JOB_EXITED);
	assert_int_equal(r.exit_code, 0);
	assert_true(r.output_truncated);
	assert_int_equal(c.out.len, 64u << 20);
	assert_memory_equal(S(c.out), "0123456789abcdefghijklmnopqrstuvwxyz\n0123", 41);
	assert_true(took < 120);
	cap_free(&c, &err);
}

static void test_flood_killed(void **state)
{
	(void)state;
	/* endless output: dropped past 1 MiB, killed once far beyond it */
	struct job_spec s = base_spec("echo start; yes flood; echo never");
	s.output_bytes = 1u << 20;
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_int_equal(r.state, JOB_EXITED);
	assert_int_equal(r.exit_code, 137);
	assert_true(r.output_truncated);
	assert_int_equal(c.out.len, 1u << 20);
	assert_memory_equal(S(c.out), "start\nflood\n", 12);
	assert_non_null(strstr(r.message, "1048576-byte limit: killed"));
	assert_true(r.duration_s < 60);
	cap_free(&c, &err);
}

static void test_cancel(void **state)
{
	(void)state;
	struct job_spec s = base_spec("echo ready; sleep 300");
	struct cap c = { .cancel_on = "ready\n" };
	struct job_result r;
	struct buf err = BUF_INIT;
	double t0 = now_s();
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_true(c.cancel_sent);
	assert_int_equal(r.state, JOB_CANCELLED);
	assert_string_equal(r.message, "cancelled");
	assert_string_equal(S(c.out), "ready\n");
	assert_true(now_s() - t0 < 30);
	cap_free(&c, &err);

	/* cancelled before it ran: ends at once, nothing created */
	struct job *j = job_new();
	s = base_spec("echo must-not-run");
	job_cancel(j);
	struct cap c2 = { 0 };
	struct job_callbacks cb = { cb_started, cb_output, &c2 };
	assert_int_equal(job_run(j, &s, &cb, &r, &err), 0);
	job_free(j);
	assert_int_equal(r.state, JOB_CANCELLED);
	assert_int_equal(c2.out.len, 0);
	assert_no_containers();
	cap_free(&c2, &err);
}

static void expect_timeout(const char *command)
{
	struct job_spec s = base_spec(command);
	s.wall_time_s = 2;
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	double t0 = now_s();
	assert_int_equal(run(&s, &c, &r, &err), 0);
	double took = now_s() - t0;
	assert_int_equal(r.state, JOB_TIMED_OUT);
	assert_string_equal(r.message, "wall time of 2s exceeded: killed");
	assert_true(took >= 2.0 && took < 30);
	cap_free(&c, &err);
}

static void test_timeout_sleep(void **state)
{
	(void)state;
	expect_timeout("echo going; sleep 1000");
}

static void test_timeout_busy_loop(void **state)
{
	(void)state;
	expect_timeout("while :; do :; done");
}

static void test_timeout_closed_output(void **state)
{
	(void)state;
	/* the output stream ends long before the job does */
	expect_timeout("exec >/dev/null 2>&1; sleep 1000");
}

static void test_fork_bomb(void **state)
{
	(void)state;
	struct job_spec s = base_spec("bomb() { bomb | bomb & }; bomb; sleep 3; echo survived");
	s.pids = 64;
	s.wall_time_s = 60;
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_int_equal(r.state, JOB_EXITED);
	assert_string_equal(S(c.out), "survived\n");
	assert_non_null(strstr(S(c.err), "can't fork"));
	cap_free(&c, &err);
}

static void test_memory_bomb(void **state)
{
	(void)state;
	struct job_spec s = base_spec("x=0123456789; while :; do x=\"$x$x\"; done");
	s.memory_bytes = 64u << 20;
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_int_equal(r.state, JOB_EXITED);
	assert_int_equal(r.exit_code, 137);
	assert_non_null(strstr(r.message, "out of memory"));
	assert_non_null(strstr(r.message, "memory limit"));
	assert_non_null(strstr(r.message, "67108864"));
	cap_free(&c, &err);
}

static void test_no_network(void **state)
{
	(void)state;
	struct job_spec s = base_spec("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ';"
				      "nc -w 5 1.1.1.1 80 </dev/null");
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_int_equal(r.state, JOB_EXITED);
	assert_int_not_equal(r.exit_code, 0);
	assert_string_equal(S(c.out), "lo\n"); /* loopback only */
	assert_non_null(strstr(S(c.err), "Network is unreachable"));
	cap_free(&c, &err);

	/* network = on: Podman's default network */
	s = base_spec("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort");
	s.network = true;
	struct cap c2 = { 0 };
	assert_int_equal(run(&s, &c2, &r, &err), 0);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(S(c2.out), "eth0\nlo\n");
	cap_free(&c2, &err);
}

static void test_outside_workspace(void **state)
{
	(void)state;
	/* a host file next to the workspace, and a link to it inside */
	char secret[400], link[400];
	snprintf(secret, sizeof(secret), "%s/secret", tmpdir);
	snprintf(link, sizeof(link), "%s/to-secret", workspace);
	FILE *f = fopen(secret, "w");
	assert_non_null(f);
	fputs("host secret\n", f);
	fclose(f);
	unlink(link);
	assert_int_equal(symlink(secret, link), 0);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "cat %s; cat to-secret; cat ../secret; cat /etc/shadow;"
		 "echo x >/etc/owned; echo x >/bin/owned; echo x >%s/owned; echo done",
		 secret, tmpdir);
	struct job_spec s = base_spec(cmd);
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_string_equal(S(c.out), "done\n");
	assert_null(strstr(S(c.err), "host secret"));
	assert_non_null(strstr(S(c.err), "Read-only file system"));
	char owned[400];
	snprintf(owned, sizeof(owned), "%s/owned", tmpdir);
	assert_int_equal(access(owned, F_OK), -1);
	assert_int_equal(access("/etc/owned", F_OK), -1);
	assert_int_equal(access("/bin/owned", F_OK), -1);
	unlink(link);
	cap_free(&c, &err);
}

static void test_unknown_image(void **state)
{
	(void)state;
	struct job_spec s = base_spec("true");
	s.image = "localhost/no-such-image:1";
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	assert_int_equal(run(&s, &c, &r, &err), -ENOENT);
	assert_int_equal(r.state, JOB_FAILED);
	assert_non_null(strstr(S(err), "unknown image 'localhost/no-such-image:1'"));
	assert_non_null(strstr(S(err), sock));
	assert_null(strchr(S(err), '\n'));
	assert_non_null(strstr(r.message, "unknown image"));
	cap_free(&c, &err);
}

static void test_unreachable(void **state)
{
	(void)state;
	struct job_spec s = base_spec("true");
	char bad[400];
	snprintf(bad, sizeof(bad), "%s/no-podman.sock", tmpdir);
	s.podman_socket = bad;
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	struct job *j = job_new();
	assert_int_equal(job_run(j, &s, NULL, &r, &err), -ECONNREFUSED);
	job_free(j);
	str(&err);
	assert_int_equal(r.state, JOB_FAILED);
	char want[500];
	snprintf(want, sizeof(want), "cannot reach Podman at %s: ", bad);
	assert_non_null(strstr(S(err), want));

	/* the same from a ping, and a ping of the real service */
	struct podman *p = podman_new(bad);
	buf_reset(&err);
	assert_int_equal(podman_ping(p, &err), -ECONNREFUSED);
	assert_non_null(strstr(str(&err), want));
	podman_free(p);
	p = podman_new(sock);
	assert_int_equal(podman_ping(p, &err), 0);
	podman_free(p);
	cap_free(&c, &err);
}

static void test_gpu_missing(void **state)
{
	(void)state;
	setenv("HERMES_CDI_DIR", emptydir, 1);
	const char *all[] = { "nvidia.com/gpu=all" };
	struct buf err = BUF_INIT;
	assert_int_equal(job_check_gpus(all, 1, &err), -ENODEV);
	str(&err);
	char want[500];
	snprintf(want, sizeof(want), "no CDI spec for nvidia.com/gpu in %s", emptydir);
	assert_non_null(strstr(S(err), want));
	buf_reset(&err);

	struct job_spec s = base_spec("true");
	s.gpus = all;
	s.ngpus = 1;
	struct cap c = { 0 };
	struct job_result r;
	assert_int_equal(run(&s, &c, &r, &err), -ENODEV);
	assert_int_equal(r.state, JOB_FAILED);
	assert_non_null(strstr(S(err), want));
	assert_null(c.t_started ? "started" : NULL);
	cap_free(&c, &err);
	setenv("HERMES_CDI_DIR", cdi_dir, 1);
}

static void test_gpu_fake_cdi(void **state)
{
	(void)state;
	setenv("HERMES_CDI_DIR", cdi_dir, 1);
	const char *gpu0[] = { "nvidia.com/gpu=0" }, *gpu3[] = { "nvidia.com/gpu=3" };
	struct buf err = BUF_INIT;
	assert_int_equal(job_check_gpus(gpu0, 1, &err), 0);
	assert_int_equal(job_check_gpus(gpu3, 1, &err), -ENODEV);
	assert_non_null(strstr(str(&err), "no CDI device nvidia.com/gpu=3 in "));
	assert_non_null(strstr(S(err), "(it names: 0)"));
	buf_reset(&err);

	struct job_spec s = base_spec("echo gpu=$HERMES_FAKE_GPU");
	s.gpus = gpu0;
	s.ngpus = 1;
	struct cap c = { 0 };
	struct job_result r;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_int_equal(r.exit_code, 0);
	/* the CDI edits were applied: its env inside, its device node in the
	 * container's HostConfig at the API */
	assert_string_equal(S(c.out), "gpu=0\n");
	str(&c.inspect);
	json_object *o = json_tokener_parse(S(c.inspect)), *hc, *devs, *path;
	assert_true(json_object_object_get_ex(o, "HostConfig", &hc));
	assert_true(json_object_object_get_ex(hc, "Devices", &devs));
	assert_int_equal(json_object_array_length(devs), 1);
	assert_true(json_object_object_get_ex(json_object_array_get_idx(devs, 0), "PathOnHost", &path));
	assert_string_equal(json_object_get_string(path), "/dev/null");
	json_object_put(o);
	cap_free(&c, &err);
}

/* nvcc compiles contrib/cuda-example inside a container whose root is the
 * host's / (overlaid, read-only: that is where nvcc is), and running it
 * without a GPU fails with one clear line. */
static void test_cuda_example(void **state)
{
	(void)state;
	const char *src = getenv("SRCDIR");
	assert_non_null(src);
	char ws[400], cmd[1200];
	snprintf(ws, sizeof(ws), "%s/cuda", tmpdir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp %s/contrib/cuda-example/* %s/", ws, src, ws);
	assert_int_equal(system(cmd), 0);
	struct job_spec s = base_spec("make && ./vector_add 1024");
	s.image = NULL;
	s.rootfs = "/";
	s.workspace = ws;
	s.memory_bytes = 4ull << 30;
	s.pids = 1024;
	s.wall_time_s = 300;
	struct cap c = { 0 };
	struct job_result r;
	struct buf err = BUF_INIT;
	assert_int_equal(run(&s, &c, &r, &err), 0);
	assert_int_equal(r.state, JOB_EXITED);
	assert_non_null(strstr(S(c.out), "nvcc -O2 -o vector_add vector_add.cu"));
	char bin[500];
	snprintf(bin, sizeof(bin), "%s/vector_add", ws);
	assert_int_equal(access(bin, X_OK), 0);
	assert_int_equal(r.exit_code, 2);
	assert_non_null(strstr(S(c.err), "vector_add: no CUDA device: "));
	cap_free(&c, &err);
}

/* A job whose client is gone (the agent died) is still killed by conmon
 * after its stop timeout; job_sweep removes what is left. */
static void test_backstop(void **state)
{
	(void)state;
	struct podman *p = podman_new(sock);
	const char *argv[] = { "/bin/sh", "-c", "sleep 300" };
	struct podman_spec ps = { .image = image, .argv = argv, .argc = 3, .stop_timeout_s = 2,
				  .label_key = "hermes.owner", .label_value = owner };
	char id[80];
	struct buf err = BUF_INIT;
	assert_int_equal(podman_create(p, &ps, id, sizeof(id), &err), 0);
	double t0 = now_s();
	assert_int_equal(podman_start(p, id, &err), 0);
	int code = -1;
	assert_int_equal(podman_wait(p, id, 60000, &code, &err), 0);
	double took = now_s() - t0;
	fprintf(stderr, "backstop: ended after %.2f s with %d\n", took, code);
	assert_true(took >= 1.5 && took < 30);
	assert_int_not_equal(code, 0);
	assert_int_equal(job_sweep(sock, owner, &err), 1);
	assert_no_containers();
	podman_free(p);
	buf_free(&err);
}

static void test_sweep(void **state)
{
	(void)state;
	/* a container left behind by a crashed owner */
	struct podman *p = podman_new(sock);
	const char *argv[] = { "/bin/sh", "-c", "sleep 300" };
	struct podman_spec ps = { .image = image, .argv = argv, .argc = 3,
				  .label_key = "hermes.owner", .label_value = owner };
	char id[80];
	struct buf err = BUF_INIT;
	assert_int_equal(podman_create(p, &ps, id, sizeof(id), &err), 0);
	assert_int_equal(podman_start(p, id, &err), 0);
	assert_int_equal(job_sweep(sock, owner, &err), 1);
	assert_no_containers();
	assert_int_equal(job_sweep(sock, owner, &err), 0);
	podman_free(p);
	buf_free(&err);
}

int main(void)
{
	sock = getenv("PODMAN_SOCK");
	image = getenv("PODMAN_IMAGE");
	cdi_dir = getenv("PODMAN_CDI_DIR");
	if (!sock || !image || !cdi_dir) {
		fprintf(stderr, "test_job: run through tests/exec/job_podman.sh "
				"(PODMAN_SOCK, PODMAN_IMAGE, PODMAN_CDI_DIR)\n");
		return 1;
	}
	snprintf(owner, sizeof(owner), "hermes-test-%d", (int)getpid());
	snprintf(tmpdir, sizeof(tmpdir), "%s/job-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(workspace, sizeof(workspace), "%s/ws", tmpdir);
	snprintf(emptydir, sizeof(emptydir), "%s/no-cdi", tmpdir);
	mkdir(workspace, 0755);
	mkdir(emptydir, 0755);
	setenv("HERMES_CDI_DIR", cdi_dir, 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_exit_stderr),
		cmocka_unit_test(test_workspace_and_user),
		cmocka_unit_test(test_conf_user_auto),
		cmocka_unit_test(test_env_and_mounts),
		cmocka_unit_test(test_flood_limited),
		cmocka_unit_test(test_flood_killed),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_timeout_sleep),
		cmocka_unit_test(test_timeout_busy_loop),
		cmocka_unit_test(test_timeout_closed_output),
		cmocka_unit_test(test_fork_bomb),
		cmocka_unit_test(test_memory_bomb),
		cmocka_unit_test(test_no_network),
		cmocka_unit_test(test_outside_workspace),
		cmocka_unit_test(test_unknown_image),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_gpu_missing),
		cmocka_unit_test(test_gpu_fake_cdi),
		cmocka_unit_test(test_cuda_example),
		cmocka_unit_test(test_backstop),
		cmocka_unit_test(test_sweep),
	};
	/* TEST_JOB_FILTER=test_cancel (a glob) runs only the matching tests */
	if (getenv("TEST_JOB_FILTER"))
		cmocka_set_test_filter(getenv("TEST_JOB_FILTER"));
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_job: could not remove %s\n", tmpdir);
	return failed ? 1 : 0;
}
