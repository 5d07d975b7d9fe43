/* test_dest: dest_parse on a table of destination strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "transport.h"

struct dest_case {
	const char *in;
	int rc;           /* 0 or -EINVAL */
	bool local;
	const char *user; /* NULL: none */
	const char *host;
	const char *path;
};

static const struct dest_case cases[] = {
	/* SSH */
	{ "host:/srv/x", 0, false, NULL, "host", "/srv/x" },
	{ "host:rel/dir", 0, false, NULL, "host", "rel/dir" },
	{ "host:.", 0, false, NULL, "host", "." },
	{ "host:~/proj", 0, false, NULL, "host", "~/proj" },
	{ "alice@gpu1:/data", 0, false, "alice", "gpu1", "/data" },
	{ "a@b@gpu1:p", 0, false, "a@b", "gpu1", "p" },
	{ "gpu1.example.com:/a:b", 0, false, NULL, "gpu1.example.com", "/a:b" },
	{ "10.0.0.7:/x", 0, false, NULL, "10.0.0.7", "/x" },
	{ "[::1]:/path", 0, false, NULL, "::1", "/path" },
	{ "bob@[fe80::1%eth0]:d", 0, false, "bob", "fe80::1%eth0", "d" },
	{ "host:with space", 0, false, NULL, "host", "with space" },
	/* local */
	{ "/abs/path", 0, true, NULL, NULL, "/abs/path" },
	{ "/abs/a:b", 0, true, NULL, NULL, "/abs/a:b" },
	{ "./x:y", 0, true, NULL, NULL, "./x:y" },
	{ "../up", 0, true, NULL, NULL, "../up" },
	{ "rel/dir", 0, true, NULL, NULL, "rel/dir" },
	{ "rel/a:b", 0, true, NULL, NULL, "rel/a:b" },
	{ "plain", 0, true, NULL, NULL, "plain" },
	{ ".", 0, true, NULL, NULL, "." },
	{ "user@host", 0, true, NULL, NULL, "user@host" },
	{ "local:/tmp/x", 0, true, NULL, NULL, "/tmp/x" },
	{ "local:rel", 0, true, NULL, NULL, "rel" },
	{ "local:host:/p", 0, true, NULL, NULL, "host:/p" },
	{ "x[1]/y", 0, true, NULL, NULL, "x[1]/y" },
	{ "[draft", 0, true, NULL, NULL, "[draft" },
	{ "[a]b", 0, true, NULL, NULL, "[a]b" },
	/* errors */
	{ "", -EINVAL, false, NULL, NULL, NULL },
	{ "host:", -EINVAL, false, NULL, NULL, NULL },
	{ "user@host:", -EINVAL, false, NULL, NULL, NULL },
	{ ":/path", -EINVAL, false, NULL, NULL, NULL },
	{ "@host:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "user@:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "-oProxyCommand=x:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "-l@host:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "ho st:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "ho\tst:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "[::1]", 0, true, NULL, NULL, "[::1]" },
	{ "[::1]:", -EINVAL, false, NULL, NULL, NULL },
	{ "[::1:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "[::1]x:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "[]:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "host[1]:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "::1:/p", -EINVAL, false, NULL, NULL, NULL },
	{ "local:", -EINVAL, false, NULL, NULL, NULL },
};

static void check_str(const char *want, const char *got, const char *what, const char *in)
{
	if (!want && !got)
		return;
	if (!want || !got || strcmp(want, got) != 0)
		fail_msg("\"%s\": %s is \"%s\", expected \"%s\"", in, what, got ? got : "(null)",
			 want ? want : "(null)");
}

static void check_case(const struct dest_case *c)
{
	struct dest d;
	struct buf err = BUF_INIT;
	int rc = dest_parse(c->in, &d, &err);

	if (rc != c->rc)
		fail_msg("\"%s\": rc %d, expected %d (err: %.*s)", c->in, rc, c->rc, (int)err.len,
			 err.data ? (const char *)err.data : "");
	if (rc == 0) {
		assert_int_equal(err.len, 0);
		if (d.local != c->local)
			fail_msg("\"%s\": local=%d, expected %d", c->in, d.local, c->local);
		check_str(c->user, d.user, "user", c->in);
		check_str(c->host, d.host, "host", c->in);
		check_str(c->path, d.path, "path", c->in);
	} else {
		/* The message names the string and d is empty. */
		assert_non_null(err.data);
		assert_non_null(strstr((const char *)err.data, "invalid destination"));
		if (c->in[0])
			assert_non_null(strstr((const char *)err.data, c->in));
		assert_null(d.user);
		assert_null(d.host);
		assert_null(d.path);
	}
	dest_free(&d);
	dest_free(&d); /* idempotent */
	buf_free(&err);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
}

static void test_null_input(void **state)
{
	(void)state;
	struct dest d;
	struct buf err = BUF_INIT;
	assert_int_equal(dest_parse(NULL, &d, &err), -EINVAL);
	assert_true(err.len > 0);
	assert_null(d.path);
	buf_free(&err);
}

static void test_err_appends(void **state)
{
	(void)state;
	struct dest d;
	struct buf err = BUF_INIT;
	buf_printf(&err, "ctx: ");
	assert_int_equal(dest_parse("host:", &d, &err), -EINVAL);
	assert_memory_equal(err.data, "ctx: invalid destination \"host:\"", 32);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_null_input),
		cmocka_unit_test(test_err_appends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
