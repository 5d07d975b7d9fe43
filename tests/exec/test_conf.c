/* hermes.conf: parsing, defaults, errors with line numbers, and the job
 * spec made from it (gpus auto against a CDI spec dir made here). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"

static char tmp[256];

static int parse(struct hermes_conf *c, const char *text, struct buf *err)
{
	conf_init(c);
	buf_reset(err);
	return conf_parse(c, text, strlen(text), "hermes.conf", err);
}

static void expect_error(const char *text, const char *msg)
{
	struct hermes_conf c;
	struct buf err = BUF_INIT;
	assert_int_equal(parse(&c, text, &err), -EINVAL);
	assert_string_equal((const char *)err.data, msg);
	conf_free(&c);
	buf_free(&err);
}

static void test_defaults(void **state)
{
	(void)state;
	struct hermes_conf c;
	struct buf err = BUF_INIT;
	assert_int_equal(parse(&c, "", &err), 0);
	assert_null(c.image);
	assert_null(c.rootfs);
	struct job_spec s = { 0 };
	assert_int_equal(conf_to_spec(&c, &s, &err), 0);
	assert_string_equal(s.image, CONF_DEFAULT_IMAGE);
	assert_null(s.user); /* auto without a workspace: the image's user */
	assert_int_equal(c.gpus, CONF_GPUS_AUTO);
	assert_int_equal(c.wall_time_s, 600);
	assert_int_equal(c.memory_bytes, 8ull << 30);
	assert_int_equal(c.pids, 1024);
	assert_int_equal(c.output_bytes, 64ull << 20);
	assert_false(c.network);
	assert_int_equal(c.user_mode, CONF_USER_AUTO);
	assert_int_equal(c.nenv + c.nmounts + c.nignore, 0);
	conf_free(&c);
	buf_free(&err);
}

static void test_all_keys(void **state)
{
	(void)state;
	const char *text =
		"# a comment\n"
		"\n"
		"image = localhost/cuda:12\n"
		"  gpus=0,2\n"
		"wall_time = 30s\n"
		"memory = 4G\n"
		"pids = 200\n"
		"output = 512k\n"
		"env = CCACHE_DIR=/ccache\n"
		"env = \"MSG=a = b # not a comment\"\n"
		"mount = /var/cache/ccache:/ccache\n"
		"mount = /usr/local/cuda:/usr/local/cuda:ro\n"
		"user = 1000:1000\n"
		"network = on\r\n"
		"ignore = build/\n"
		"ignore = *.o\n";
	struct hermes_conf c;
	struct buf err = BUF_INIT;
	assert_int_equal(parse(&c, text, &err), 0);
	assert_string_equal(c.image, "localhost/cuda:12");
	assert_int_equal(c.gpus, CONF_GPUS_LIST);
	assert_int_equal(c.ngpu_names, 2);
	assert_string_equal(c.gpu_names[0], "nvidia.com/gpu=0");
	assert_string_equal(c.gpu_names[1], "nvidia.com/gpu=2");
	assert_int_equal(c.wall_time_s, 30);
	assert_int_equal(c.memory_bytes, 4ull << 30);
	assert_int_equal(c.pids, 200);
	assert_int_equal(c.output_bytes, 512u << 10);
	assert_int_equal(c.nenv, 2);
	assert_string_equal(c.env[0], "CCACHE_DIR=/ccache");
	assert_string_equal(c.env[1], "MSG=a = b # not a comment");
	assert_int_equal(c.nmounts, 2);
	assert_string_equal(c.mounts[0].src, "/var/cache/ccache");
	assert_string_equal(c.mounts[0].dst, "/ccache");
	assert_false(c.mounts[0].readonly);
	assert_true(c.mounts[1].readonly);
	assert_int_equal(c.user_mode, CONF_USER_GIVEN);
	assert_string_equal(c.user, "1000:1000");
	assert_true(c.network);
	assert_int_equal(c.nignore, 2);
	assert_string_equal(c.ignore[1], "*.o");

	struct job_spec s = { .workspace = tmp };
	assert_int_equal(conf_to_spec(&c, &s, &err), 0);
	assert_string_equal(s.image, "localhost/cuda:12");
	assert_int_equal(s.ngpus, 2);
	assert_string_equal(s.gpus[1], "nvidia.com/gpu=2");
	assert_string_equal(s.user, "1000:1000");
	assert_int_equal(s.nmounts, 2);
	assert_int_equal(s.nenv, 2);
	assert_true(s.network);
	assert_int_equal(s.wall_time_s, 30);
	assert_int_equal(s.output_bytes, 512u << 10);
	conf_free(&c);
	buf_free(&err);
}

static void test_units_and_none(void **state)
{
	(void)state;
	struct hermes_conf c;
	struct buf err = BUF_INIT;
	assert_int_equal(parse(&c, "wall_time = 2h\nmemory = 512MiB\noutput = none\npids = none\n"
				   "rootfs = /\ngpus = none\nuser = image\nnetwork = off\n", &err), 0);
	assert_int_equal(c.wall_time_s, 7200);
	assert_int_equal(c.memory_bytes, 512u << 20);
	assert_int_equal(c.output_bytes, 0);
	assert_int_equal(c.pids, 0);
	assert_null(c.image);
	assert_string_equal(c.rootfs, "/");
	struct job_spec s = { .workspace = tmp };
	assert_int_equal(conf_to_spec(&c, &s, &err), 0);
	assert_null(s.image);
	assert_string_equal(s.rootfs, "/");
	assert_int_equal(s.ngpus, 0);
	assert_null(s.user);
	conf_free(&c);
	assert_int_equal(parse(&c, "wall_time = 90\nmemory = 1000\n", &err), 0);
	assert_int_equal(c.wall_time_s, 90);
	assert_int_equal(c.memory_bytes, 1000);
	conf_free(&c);
	buf_free(&err);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("image = a\n\nfoo = 1\n", "hermes.conf:3: unknown key 'foo'");
	expect_error("just words\n", "hermes.conf:1: expected 'key = value'");
	expect_error(" = x\n", "hermes.conf:1: expected 'key = value' (no key)");
	expect_error("wall_time = 10 minutes\n",
		     "hermes.conf:1: wall_time '10 minutes': not a duration like 30s, 10m or 2h");
	expect_error("wall_time = -1\n",
		     "hermes.conf:1: wall_time '-1': not a duration like 30s, 10m or 2h");
	expect_error("memory = 4X\n", "hermes.conf:1: memory '4X': not a size like 512M or 4G");
	expect_error("output = \n", "hermes.conf:1: output: no value");
	expect_error("pids = many\n", "hermes.conf:1: pids 'many': expected a number of processes");
	expect_error("gpus = 0,x\n",
		     "hermes.conf:1: gpus '0,x': expected auto, none, all, or indices like 0 or 0,1");
	expect_error("env = 1X=2\n", "hermes.conf:1: env '1X=2': expected NAME=value");
	expect_error("env = NOVALUE\n", "hermes.conf:1: env 'NOVALUE': expected NAME=value");
	expect_error("mount = rel:/x\n",
		     "hermes.conf:1: mount 'rel:/x': expected /HOST/PATH:/CONTAINER/PATH[:ro]");
	expect_error("mount = /a:/b:rx\n", "hermes.conf:1: mount '/a:/b:rx': option 'rx' is not ro or rw");
	expect_error("mount = /a:/workspace/x\n",
		     "hermes.conf:1: mount '/a:/workspace/x': /workspace is the workspace");
	expect_error("network = maybe\n", "hermes.conf:1: network 'maybe': expected on or off");
	expect_error("user = a b\n",
		     "hermes.conf:1: user 'a b': expected auto, image, NAME or UID[:GID]");
	expect_error("rootfs = relative\n", "hermes.conf:1: rootfs 'relative': expected an absolute path");
	expect_error("# x\nimage = a\nimage = b\n", "hermes.conf:3: image given twice");

	struct hermes_conf c;
	struct buf err = BUF_INIT;
	conf_init(&c);
	static const char nul[] = "image = a\nimage\0 = b\n";
	assert_int_equal(conf_parse(&c, nul, sizeof(nul) - 1, "hermes.conf", &err), -EINVAL);
	assert_string_equal((const char *)err.data, "hermes.conf:2: NUL byte in line");
	conf_free(&c);
	buf_free(&err);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void test_load_and_gpus_auto(void **state)
{
	(void)state;
	char cdi[300], dev[300], spec[400], conf[300];
	snprintf(cdi, sizeof(cdi), "%s/cdi", tmp);
	snprintf(dev, sizeof(dev), "%s/fake-nvidia0", tmp);
	snprintf(spec, sizeof(spec), "%s/nvidia.yaml", cdi);
	snprintf(conf, sizeof(conf), "%s/hermes.conf", tmp);
	mkdir(cdi, 0755);
	setenv("HERMES_CDI_DIR", cdi, 1);

	struct hermes_conf c;
	struct buf err = BUF_INIT;
	/* missing file: defaults; no CDI spec: auto gives no GPU */
	assert_int_equal(conf_load(&c, conf, &err), 0);
	struct job_spec s = { .workspace = tmp };
	assert_int_equal(conf_to_spec(&c, &s, &err), 0);
	assert_int_equal(s.ngpus, 0);
	/* user auto: the workspace owner */
	char want[32];
	snprintf(want, sizeof(want), "%u:%u", (unsigned)getuid(), (unsigned)getgid());
	assert_string_equal(s.user, want);
	conf_free(&c);

	/* the YAML nvidia-ctk writes, naming a node that exists: auto gives all */
	char yaml[1024];
	snprintf(yaml, sizeof(yaml),
		 "---\ncdiVersion: 0.5.0\ncontainerEdits:\n  deviceNodes:\n  - path: /dev/null\n"
		 "devices:\n- containerEdits:\n    deviceNodes:\n    - path: %s\n  name: \"0\"\n"
		 "kind: nvidia.com/gpu\n", dev);
	write_file(spec, yaml);
	write_file(dev, "");
	write_file(conf, "wall_time = 1m\n");
	assert_int_equal(conf_load(&c, conf, &err), 0);
	assert_int_equal(c.wall_time_s, 60);
	assert_int_equal(conf_to_spec(&c, &s, &err), 0);
	assert_int_equal(s.ngpus, 1);
	assert_string_equal(s.gpus[0], "nvidia.com/gpu=all");
	conf_free(&c);

	/* the node gone: auto gives none, an explicit GPU fails the check */
	unlink(dev);
	assert_int_equal(conf_load(&c, conf, &err), 0);
	assert_int_equal(conf_to_spec(&c, &s, &err), 0);
	assert_int_equal(s.ngpus, 0);
	conf_free(&c);
	const char *gpu0[] = { "nvidia.com/gpu=0" };
	assert_int_equal(job_check_gpus(gpu0, 1, &err), -ENODEV);
	char msg[800];
	snprintf(msg, sizeof(msg), "no nvidia device: %s missing (named by %s for nvidia.com/gpu=0)",
		 dev, spec);
	assert_string_equal((const char *)err.data, msg);

	/* an error names the file and line */
	write_file(conf, "image = x\nbogus = 1\n");
	buf_reset(&err);
	assert_int_equal(conf_load(&c, conf, &err), -EINVAL);
	snprintf(msg, sizeof(msg), "%s:2: unknown key 'bogus'", conf);
	assert_string_equal((const char *)err.data, msg);
	conf_free(&c);
	unlink(spec);
	unlink(conf);
	rmdir(cdi);
	buf_free(&err);
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "%s/conf-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_units_and_none),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_load_and_gpus_auto),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(tmp);
	return failed ? 1 : 0;
}
