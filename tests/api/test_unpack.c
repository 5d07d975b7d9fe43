/* Archive unpacking (src/api/unpack.c) without a server: what is accepted
 * lands in the workspace as it was; what could leave it is refused. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "unpack.h"

struct ent {
	const char *name;
	mode_t type;        /* AE_IFREG, AE_IFDIR, AE_IFLNK */
	const char *data;   /* content, or symlink target */
	mode_t perm;
};

static char tmp[256];

static void write_tar(const char *path, const char *filter, const struct ent *e, size_t n)
{
	struct archive *a = archive_write_new();
	if (!strcmp(filter, "zstd"))
		archive_write_add_filter_zstd(a);
	else if (!strcmp(filter, "gzip"))
		archive_write_add_filter_gzip(a);
	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_filetype(ae, e[i].type);
		archive_entry_set_perm(ae, e[i].perm ? e[i].perm : 0644);
		if (e[i].type == AE_IFLNK)
			archive_entry_set_symlink(ae, e[i].data);
		size_t len = e[i].type == AE_IFREG ? strlen(e[i].data) : 0;
		archive_entry_set_size(ae, (la_int64_t)len);
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (len)
			assert_int_equal(archive_write_data(a, e[i].data, len), (la_ssize_t)len);
		archive_entry_free(ae);
	}
	archive_write_close(a);
	archive_write_free(a);
}

/* Unpack into a fresh workspace; returns unpack_archive's result. */
static int unpack(const char *filter, const struct ent *e, size_t n, uint64_t max, char *ws,
		  struct buf *err)
{
	char tar[PATH_MAX + 16];
	snprintf(tar, sizeof(tar), "%s/a.tar", tmp);
	write_tar(tar, filter, e, n);
	snprintf(ws, PATH_MAX, "%s/ws", tmp);
	assert_int_equal(remove_tree(ws), 0);
	assert_int_equal(mkdir(ws, 0755), 0);
	int fd = open(ws, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	buf_reset(err);
	int r = unpack_archive(tar, fd, max, err);
	close(fd);
	return r;
}

static void read_back(const char *ws, const char *rel, const char *want)
{
	int root = open(ws, O_RDONLY | O_DIRECTORY);
	int fd = open_beneath(root, rel, O_RDONLY, 0);
	close(root);
	assert_true(fd >= 0);
	char got[256] = "";
	ssize_t n = read(fd, got, sizeof(got) - 1);
	close(fd);
	assert_true(n >= 0);
	assert_string_equal(got, want);
}

static void accepted(void **state)
{
	(void)state;
	const struct ent e[] = {
		{ "./", AE_IFDIR, NULL, 0755 },
		{ "./src/", AE_IFDIR, NULL, 0755 },
		{ "./src/main.c", AE_IFREG, "int main;\n", 0644 },
		{ "run.sh", AE_IFREG, "echo hi\n", 04755 },
		{ "a/b/c/deep.txt", AE_IFREG, "deep", 0 },      /* parents made on the way */
		{ "src/link", AE_IFLNK, "../run.sh", 0777 },    /* stays inside */
		{ "src/self", AE_IFLNK, "./main.c", 0777 },
	};
	char ws[PATH_MAX];
	struct buf err = BUF_INIT;
	for (int f = 0; f < 3; f++) {
		const char *filter = (const char *[]){ "none", "gzip", "zstd" }[f];
		assert_int_equal(unpack(filter, e, 7, 1 << 20, ws, &err), 0);
		read_back(ws, "src/main.c", "int main;\n");
		read_back(ws, "a/b/c/deep.txt", "deep");
		char p[PATH_MAX + 16];
		struct stat st;
		snprintf(p, sizeof(p), "%s/run.sh", ws);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0755); /* setuid dropped */
		char target[64] = "";
		snprintf(p, sizeof(p), "%s/src/link", ws);
		assert_true(readlink(p, target, sizeof(target)) > 0);
		assert_string_equal(target, "../run.sh");
		/* open_beneath never follows a symlink, even one that stays inside */
		int root = open(ws, O_RDONLY | O_DIRECTORY);
		assert_int_equal(open_beneath(root, "src/link", O_RDONLY, 0), -ELOOP);
		assert_int_equal(open_beneath(root, "../x", O_RDONLY, 0), -EINVAL);
		assert_int_equal(open_beneath(root, "/etc/passwd", O_RDONLY, 0), -EINVAL);
		close(root);
	}
	buf_free(&err);
}

static void refused_one(const struct ent *e, size_t n, int want, const char *msg)
{
	char ws[PATH_MAX];
	struct buf err = BUF_INIT;
	assert_int_equal(unpack("none", e, n, 1 << 20, ws, &err), want);
	assert_int_equal(buf_append(&err, "", 1), 0);
	if (!strstr((char *)err.data, msg))
		fail_msg("error '%s' lacks '%s'", (char *)err.data, msg);
	buf_free(&err);
}

static void refused(void **state)
{
	(void)state;
	const struct ent up[] = { { "../x", AE_IFREG, "x", 0 } };
	refused_one(up, 1, -EINVAL, "archive entry ../x: not a relative path");
	const struct ent mid[] = { { "a/../../x", AE_IFREG, "x", 0 } };
	refused_one(mid, 1, -EINVAL, "a/../../x");
	const struct ent abs[] = { { "/etc/x", AE_IFREG, "x", 0 } };
	refused_one(abs, 1, -EINVAL, "/etc/x");
	const struct ent l1[] = { { "l", AE_IFLNK, "..", 0 } };
	refused_one(l1, 1, -EINVAL, "symlink target .. leaves the workspace");
	const struct ent l2[] = { { "a/b/l", AE_IFLNK, "../../../x", 0 } };
	refused_one(l2, 1, -EINVAL, "leaves the workspace");
	const struct ent l3[] = { { "l", AE_IFLNK, "/etc", 0 } };
	refused_one(l3, 1, -EINVAL, "symlink target /etc");
	/* A link that climbs down then up stays inside: a/b -> ../c is fine,
	 * but writing through any link is not. */
	const struct ent through[] = { { "a/l", AE_IFLNK, "../d", 0 }, { "d/", AE_IFDIR, NULL, 0755 },
				       { "a/l/f", AE_IFREG, "x", 0 } };
	refused_one(through, 3, -EINVAL, "archive entry a/l/f");
	const struct ent big[] = { { "f", AE_IFREG, "0123456789", 0 } };
	char ws[PATH_MAX];
	struct buf err = BUF_INIT;
	assert_int_equal(unpack("none", big, 1, 512 + 9, ws, &err), -EFBIG);
	assert_int_equal(unpack("none", big, 1, 512 + 10, ws, &err), 0);
	buf_free(&err);
}

static void not_an_archive(void **state)
{
	(void)state;
	char p[PATH_MAX + 16], ws[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/junk", tmp);
	FILE *f = fopen(p, "w");
	fputs("this is not a tar archive at all, not even close", f);
	fclose(f);
	snprintf(ws, sizeof(ws), "%s/ws2", tmp);
	mkdir(ws, 0755);
	int fd = open(ws, O_RDONLY | O_DIRECTORY);
	struct buf err = BUF_INIT;
	assert_int_equal(unpack_archive(p, fd, 1 << 20, &err), -EIO);
	close(fd);
	buf_free(&err);
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "%s/hermes-unpack.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepted),
		cmocka_unit_test(refused),
		cmocka_unit_test(not_an_archive),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	remove_tree(tmp);
	return r;
}
