/* ignore: git's wildmatch, gitignore(5) rule semantics, and agreement with
 * real git on a tree walked the way Hermes walks it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ignore.h"

/* ---- fixture: a scratch directory, removed even when a test fails ------ */

struct strlist {
	char **v;
	size_t n, cap;
};

struct fixture {
	char dir[PATH_MAX];
	int dirfd;
	struct ignore *ig;
	struct strlist walked, git;
};

static void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static void strlist_add(struct strlist *l, const char *s, size_t len)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		assert_non_null(l->v);
	}
	l->v[l->n] = strndup(s, len);
	assert_non_null(l->v[l->n]);
	l->n++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path); /* best effort: keep removing the rest */
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/test_ignore.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->dirfd < 0) {
		rmdir(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ignore_free(f->ig);
	close(f->dirfd);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	strlist_free(&f->walked);
	strlist_free(&f->git);
	free(f);
	return 0;
}

/* Create rel (beneath dirfd) with content, making parent directories. */
static void write_file(int dirfd, const char *rel, const char *content)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", rel);
	for (char *s = strchr(buf, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdirat(dirfd, buf, 0755) < 0)
			assert_int_equal(errno, EEXIST);
		*s = '/';
	}
	int fd = openat(dirfd, buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	size_t len = strlen(content);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
}

/* ---- 1. wildmatch: cases from git's t/t3070-wildmatch.sh (WM_PATHNAME) -- */

struct wm_case {
	const char *text, *pattern;
	bool match;
};

static const struct wm_case wm_cases[] = {
	/* basics */
	{ "foo", "foo", true },
	{ "foo", "bar", false },
	{ "", "", true },
	{ "foo", "???", true },
	{ "foo", "??", false },
	{ "foo", "*", true },
	{ "foo", "f*", true },
	{ "foo", "*f", false },
	{ "foo", "*foo*", true },
	{ "foobar", "*ob*a*r*", true },
	{ "aaaaaaabababab", "*ab", true },
	{ "foo", "fo", false },
	{ "foo", "", false },
	/* escapes */
	{ "foo*", "foo\\*", true },
	{ "foobar", "foo\\*bar", false },
	{ "f\\oo", "f\\\\oo", true },
	{ "?a?b", "\\??\\?b", true },
	{ "abc", "\\a\\b\\c", true },
	{ "", "\\", false },
	{ "\\", "\\", false },
	{ "XXX/\\", "*/\\", false },
	{ "XXX/\\", "*/\\\\", true },
	{ "[ab]", "\\[ab]", true },
	/* classes, ranges, negation, ']' first */
	{ "ball", "*[al]?", true },
	{ "ten", "[ten]", false },
	{ "ten", "**[!te]", true },
	{ "ten", "**[!ten]", false },
	{ "ten", "t[a-g]n", true },
	{ "ten", "t[!a-g]n", false },
	{ "ton", "t[!a-g]n", true },
	{ "ton", "t[^a-g]n", true },
	{ "a]b", "a[]]b", true },
	{ "a-b", "a[]-]b", true },
	{ "a]b", "a[]-]b", true },
	{ "aab", "a[]-]b", false },
	{ "aab", "a[]a-]b", true },
	{ "]", "]", true },
	{ "acrt", "a[c-c]st", false },
	{ "acrt", "a[c-c]rt", true },
	{ "]", "[!]-]", false },
	{ "a", "[!]-]", true },
	{ "[ab]", "[[]ab]", true },
	{ "[ab]", "[[:]ab]", true },
	{ "[ab]", "[[::]ab]", false },
	{ "[ab]", "[[:digit]ab]", true },
	{ "[ab]", "[\\[:]ab]", true },
	{ "a1B", "[[:alpha:]][[:digit:]][[:upper:]]", true },
	{ "a", "[[:digit:][:upper:][:space:]]", false },
	{ "A", "[[:digit:][:upper:][:space:]]", true },
	{ "1", "[[:digit:][:upper:][:spaci:]]", false },
	{ " ", "[[:digit:][:upper:][:space:]]", true },
	{ ".", "[[:digit:][:punct:][:space:]]", true },
	{ "5", "[a-c[:digit:]x-z]", true },
	{ "y", "[a-c[:digit:]x-z]", true },
	{ "q", "[a-c[:digit:]x-z]", false },
	{ "]", "[\\\\-^]", true },
	{ "[", "[\\\\-^]", false },
	{ "-", "[\\-_]", true },
	{ "]", "[\\]]", true },
	{ "\\]", "[\\]]", false },
	{ "ab", "a[]b", false },
	{ "a[]b", "a[]b", false },
	{ "ab[", "ab[", false },
	{ "ab", "[!", false },
	{ "-", "[-]", true },
	{ "-", "[a-", false },
	{ "-", "[--A]", true },
	{ "5", "[--A]", true },
	{ "0", "[ --]", false },
	{ "-", "[a-e-n]", true },
	{ "j", "[a-e-n]", false },
	{ "a", "[!------]", true },
	{ "[", "[]-a]", false },
	{ "^", "[]-a]", true },
	{ "[", "[!]-a]", true },
	{ "-b]", "[a-]b]", true },
	{ "\\", "[\\]", false },
	{ "\\", "[\\\\]", true },
	{ "\\", "[!\\\\]", false },
	{ "G", "[A-\\\\]", true },
	{ "2", "[\\1-\\3]", true },
	{ "4", "[\\1-\\3]", false },
	{ "\\", "[[-\\]]", true },
	{ "-", "[[-\\]]", false },
	{ "a", "[A-Z]", false },
	{ "A", "[A-Z]", true },
	/* '*', '?' and classes never match '/'; '**' does, as a component */
	{ "foo/baz/bar", "foo*bar", false },
	{ "foo/baz/bar", "foo**bar", false },
	{ "foobazbar", "foo**bar", true },
	{ "foo/bar", "foo?bar", false },
	{ "foo/bar", "foo[/]bar", false },
	{ "foo/bar", "foo[^a-z]bar", false },
	{ "foo/bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r", false },
	{ "foo-bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r", true },
	{ "foo/baz/bar", "foo/**/bar", true },
	{ "foo/baz/bar", "foo/**/**/bar", true },
	{ "foo/b/a/z/bar", "foo/**/bar", true },
	{ "foo/b/a/z/bar", "foo/**/**/bar", true },
	{ "foo/bar", "foo/**/bar", true },
	{ "foo/bar", "foo/**/**/bar", true },
	{ "foo", "**/foo", true },
	{ "XXX/foo", "**/foo", true },
	{ "bar/baz/foo", "**/foo", true },
	{ "bar/baz/foo", "*/foo", false },
	{ "foo/bar/baz", "**/bar*", false },
	{ "deep/foo/bar/baz", "**/bar/*", true },
	{ "deep/foo/bar/baz/", "**/bar/*", false },
	{ "deep/foo/bar/baz/", "**/bar/**", true },
	{ "deep/foo/bar", "**/bar/*", false },
	{ "deep/foo/bar/", "**/bar/**", true },
	{ "foo/bar/baz", "**/bar**", false },
	{ "foo/bar/baz/x", "*/bar/**", true },
	{ "deep/foo/bar/baz/x", "*/bar/**", false },
	{ "deep/foo/bar/baz/x", "**/bar/*/*", true },
	{ "foo/bar/baz/to", "**/t[o]", true },
	{ "foo/bar", "foo/*", true },
	{ "foo/bba/arr", "foo/*", false },
	{ "foo/bba/arr", "foo/**", true },
	{ "foo/bba/arr", "foo*", false },
	{ "foo/bba/arr", "foo**", false },
	{ "foo/bba/arr", "foo/*arr", false },
	{ "foo/bba/arr", "foo/**arr", false },
	{ "foo/bba/arr", "foo/*z", false },
	{ "foo/bba/arr", "foo/**z", false },
	/* recursion and backtracking */
	{ "-adobe-courier-bold-o-normal--12-120-75-75-m-70-iso8859-1",
	  "-*-*-*-*-*-*-12-*-*-*-m-*-*-*", true },
	{ "-adobe-courier-bold-o-normal--12-120-75-75-X-70-iso8859-1",
	  "-*-*-*-*-*-*-12-*-*-*-m-*-*-*", false },
	{ "-adobe-courier-bold-o-normal--12-120-75-75-/-70-iso8859-1",
	  "-*-*-*-*-*-*-12-*-*-*-m-*-*-*", false },
	{ "XXX/adobe/courier/bold/o/normal//12/120/75/75/m/70/iso8859/1",
	  "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*", true },
	{ "XXX/adobe/courier/bold/o/normal//12/120/75/75/X/70/iso8859/1",
	  "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*", false },
	{ "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txt", "**/*a*b*g*n*t", true },
	{ "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txtz", "**/*a*b*g*n*t", false },
	{ "foo", "*/*/*", false },
	{ "foo/bar", "*/*/*", false },
	{ "foo/bba/arr", "*/*/*", true },
	{ "foo/bb/aa/rr", "*/*/*", false },
	{ "foo/bb/aa/rr", "**/**/**", true },
	{ "abcXdefXghi", "*X*i", true },
	{ "ab/cXd/efXg/hi", "*X*i", false },
	{ "ab/cXd/efXg/hi", "*/*X*/*/*i", true },
	{ "ab/cXd/efXg/hi", "**/*X*/**/*i", true },
	{ "ab/cXd/efXg/hi", "*Xg*i", false },
	{ "aaabbb", "b*a", false },
	{ "aabcaa", "*ba*", false },
	/* a trailing '/' is the rule layer's business, not wildmatch's */
	{ "foo/", "foo", false },
	{ "foo", "foo/", false },
	{ "foo/", "foo/", true },
};

static void test_wildmatch_table(void **state)
{
	(void)state;
	int failures = 0;

	for (size_t i = 0; i < sizeof(wm_cases) / sizeof(wm_cases[0]); i++) {
		const struct wm_case *c = &wm_cases[i];
		bool got = ignore_wildmatch(c->pattern, c->text);
		if (got != c->match) {
			print_error("wildmatch(pattern '%s', text '%s') = %d, want %d\n", c->pattern,
				    c->text, got, c->match);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* Backtracking must stay cheap on patterns that would be exponential for a
 * naive matcher, and absurdly nested stars must not blow the stack. */
static void test_wildmatch_pathological(void **state)
{
	(void)state;
	char text[201], *pat;
	size_t n = 20000;

	memset(text, 'a', 200);
	text[200] = '\0';
	clock_t t0 = clock();
	assert_false(ignore_wildmatch("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", text));
	assert_false(ignore_wildmatch("**/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", text));
	assert_true(ignore_wildmatch("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a", text));
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0);

	pat = malloc(2 * n + 1);
	assert_non_null(pat);
	for (size_t i = 0; i < n; i++)
		memcpy(pat + 2 * i, "*a", 2);
	pat[2 * n] = '\0';
	/* Deeper than the matcher's nesting limit: no match, and no crash. */
	bool r = ignore_wildmatch(pat, text);
	free(pat);
	assert_false(r);
}

/* ---- 2. rule layer ------------------------------------------------------ */

struct layer {
	const char *dir, *text;
};

struct check {
	const char *path;
	bool is_dir, ignored;
};

struct scenario {
	const char *name;
	bool include_vcs;
	struct layer layers[4]; /* ends at .text == NULL; each one is a pushed level */
	struct check checks[24]; /* ends at .path == NULL */
};

#define F false
#define D true

static const struct scenario scenarios[] = {
	{ "anchored vs unanchored", false,
	  { { "", "/top.txt\nany.txt\nsub/mid.txt\n/dir/\n" } },
	  { { "top.txt", F, true },
	    { "a/top.txt", F, false },
	    { "any.txt", F, true },
	    { "a/b/any.txt", F, true },
	    { "sub/mid.txt", F, true },
	    { "x/sub/mid.txt", F, false }, /* a middle '/' anchors too */
	    { "sub/mid.txtx", F, false },
	    { "dir", D, true },
	    { "dir", F, false },
	    { "a/dir", D, false } } },
	{ "dir-only vs files", false,
	  { { "", "build/\n*.d/\n" } },
	  { { "build", D, true },
	    { "build", F, false },
	    { "a/b/build", D, true },
	    { "a/b/build", F, false },
	    { "x.d", D, true },
	    { "x.d", F, false },
	    { "buildx", D, false } } },
	{ "negation re-includes; last rule wins", false,
	  { { "", "*.log\n!keep.log\n!tmp/\ntmp/\nold/\n!old/\n" } },
	  { { "a.log", F, true },
	    { "keep.log", F, false },
	    { "d/keep.log", F, false },
	    { "d/x.log", F, true },
	    { "tmp", D, true },
	    { "old", D, false } } },
	{ "negation before the rule it would undo does nothing", false,
	  { { "", "!keep.log\n*.log\n" } },
	  { { "keep.log", F, true } } },
	{ "comments, blank lines, escapes", false,
	  { { "", "# comment\n\n   \n\\#hash\n\\!bang\n#\n!\n/\nplain\\*star\n" } },
	  { { "# comment", F, false },
	    { "#hash", F, true },
	    { "x/#hash", F, true },
	    { "!bang", F, true },
	    { "bang", F, false },
	    { "plain*star", F, true },
	    { "plainXstar", F, false },
	    { "   ", F, false },
	    { "#", F, false } } },
	{ "trailing spaces, CR, last line", false,
	  { { "", "trail   \nesc\\ \nboth\\  \ntab\t\ncrlf.txt\r\nlastline" } },
	  { { "trail", F, true },
	    { "trail ", F, false },
	    { "esc ", F, true },
	    { "esc", F, false },
	    { "both ", F, true },
	    { "both  ", F, false },
	    { "tab\t", F, true }, /* only spaces are trimmed */
	    { "tab", F, false },
	    { "crlf.txt", F, true },
	    { "lastline", F, true } } },
	{ "middle slash and ** forms", false,
	  { { "", "doc/*.txt\n**/logs\nabc/**\n!abc/keep\na/**/b\n/**/top\n" } },
	  { { "doc/a.txt", F, true },
	    { "doc/x/a.txt", F, false },
	    { "x/doc/a.txt", F, false },
	    { "logs", D, true },
	    { "x/y/logs", F, true },
	    { "abc", D, false },
	    { "abc/one", F, true },
	    { "abc/sub", D, true },
	    { "abc/keep", F, false },
	    { "a/b", F, true },
	    { "a/x/b", F, true },
	    { "a/x/y/b", F, true },
	    { "x/a/b", F, false },
	    { "top", F, true },
	    { "p/q/top", F, true } } },
	{ "character classes", false,
	  { { "", "*.[oa]\nfile[0-9].txt\n*.sw[!a-m]\n[]]x\n" } },
	  { { "x.o", F, true },
	    { "d/x.a", F, true },
	    { "x.so", F, false },
	    { "file5.txt", F, true },
	    { "fileA.txt", F, false },
	    { ".x.swp", F, true },
	    { ".x.swa", F, false },
	    { "]x", F, true } } },
	{ "nested directory rules override the parent", false,
	  { { "", "*.log\n!*.tmp\n" }, { "sub", "!keep.log\n*.tmp\n/local.txt\n" } },
	  { { "a.log", F, true },
	    { "keep.log", F, true },
	    { "sub/keep.log", F, false },
	    { "sub/deep/keep.log", F, false },
	    { "sub/other.log", F, true },
	    { "other/keep.log", F, true }, /* sub's rules stay inside sub */
	    { "a.tmp", F, false },
	    { "sub/a.tmp", F, true },
	    { "sub/local.txt", F, true },
	    { "local.txt", F, false },
	    { "sub/x/local.txt", F, false } } },
	{ "three levels alternate", false,
	  { { "", "*.bin\n" }, { "a", "!*.bin\n" }, { "a/b", "*.bin\n" } },
	  { { "x.bin", F, true },
	    { "a/x.bin", F, false },
	    { "a/b/x.bin", F, true },
	    { "a/b/c/x.bin", F, true },
	    { "a/c/x.bin", F, false },
	    { "ab/x.bin", F, true } } },
	{ "rules apply only beneath their directory", false,
	  { { "sub", "*.o\n" } },
	  { { "sub/a.o", F, true },
	    { "a.o", F, false },
	    { "subx/a.o", F, false },
	    { "sub", D, false } } },
	{ ".git ignored by default, whatever the files say", false,
	  { { "", "!.git\n!.git/\n" } },
	  { { ".git", D, true },
	    { "a/b/.git", D, true },
	    { ".git", F, false }, /* a gitlink file is not the VCS directory */
	    { ".gitignore", F, false },
	    { ".github", D, false } } },
	{ ".git kept with include_vcs", true,
	  { { "", "" } },
	  { { ".git", D, false }, { "a/.git", D, false } } },
	{ "root .hermes always ignored", true,
	  { { "", "!.hermes\n!.hermes/\n" } },
	  { { ".hermes", D, true },
	    { ".hermes", F, true },
	    { "a/.hermes", D, false },
	    { ".hermesignore", F, false },
	    { ".hermes2", D, false } } },
	{ "literal head compared before wildmatch, as git does", false,
	  /* git matches "a/foo" literally, then "**" as a fresh pattern that
	   * may cross '/': so a/foobar/baz stays ignored although a/foobar is
	   * re-included (a plain wildmatch of "a/foo**" would say otherwise) */
	  { { "", "a/foo**\n!a/foobar\n" } },
	  { { "a/foobar", D, false },
	    { "a/foobar/baz", F, true },
	    { "a/foox", D, true } } },
	{ "the root itself is never ignored", false,
	  { { "", "*\n" } },
	  { { "", D, false }, { "x", F, true } } },
};

static void run_scenario(struct fixture *f, const struct scenario *s)
{
	size_t pushed = 0;

	f->ig = ignore_new(s->include_vcs);
	assert_non_null(f->ig);
	for (const struct layer *l = s->layers; l->text; l++, pushed++) {
		/* the fixture directory has no ignore files: an empty level */
		assert_int_equal(ignore_push_dir(f->ig, f->dirfd, l->dir), 0);
		assert_int_equal(ignore_add_text(f->ig, l->dir, l->text), 0);
	}
	for (const struct check *c = s->checks; c->path; c++) {
		bool got = ignore_match(f->ig, c->path, c->is_dir);
		if (got != c->ignored) {
			print_error("[%s] '%s'%s: ignored=%d, want %d\n", s->name, c->path,
				    c->is_dir ? " (dir)" : "", got, c->ignored);
			fail();
		}
	}
	while (pushed--)
		ignore_pop_dir(f->ig);
	ignore_free(f->ig);
	f->ig = NULL;
}

static void test_rule_tables(void **state)
{
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		run_scenario(*state, &scenarios[i]);
}

/* Text added before any push lands in a base level below every directory. */
static void test_add_text_without_push(void **state)
{
	struct fixture *f = *state;

	f->ig = ignore_new(false);
	assert_non_null(f->ig);
	assert_int_equal(ignore_add_text(f->ig, "", "*.o\n"), 0);
	assert_true(ignore_match(f->ig, "a/b.o", false));
	write_file(f->dirfd, ".gitignore", "!keep.o\n");
	assert_int_equal(ignore_push_dir(f->ig, f->dirfd, ""), 0);
	assert_false(ignore_match(f->ig, "keep.o", false));
	assert_true(ignore_match(f->ig, "other.o", false));
	ignore_pop_dir(f->ig);
	ignore_pop_dir(f->ig); /* unbalanced: the base level stays */
	assert_true(ignore_match(f->ig, "keep.o", false));
	assert_int_equal(ignore_add_text(f->ig, NULL, "x"), -EINVAL);
	assert_int_equal(ignore_add_text(f->ig, "", NULL), -EINVAL);
	assert_int_equal(ignore_push_dir(f->ig, f->dirfd, NULL), -EINVAL);
}

/* hermes.conf's `ignore =` lines are root rules, after .hermesignore; its
 * other keys and `ignore` in a subdirectory's hermes.conf are not. */
static void test_hermes_conf_ignore(void **state)
{
	struct fixture *f = *state;

	write_file(f->dirfd, ".hermesignore", "*.tmp\n");
	write_file(f->dirfd, "hermes.conf",
		   "image = x\n  ignore = build/\nignore=\"*.o\"\n# ignore = notes\n"
		   "ignored = no\nignore = !keep.tmp\r\nwall_time = 1m");
	mkdirat(f->dirfd, "sub", 0755);
	int sub = openat(f->dirfd, "sub", O_RDONLY | O_DIRECTORY);
	assert_true(sub >= 0);
	write_file(sub, "hermes.conf", "ignore = *.c\n");
	f->ig = ignore_new(false);
	assert_non_null(f->ig);
	assert_int_equal(ignore_push_dir(f->ig, f->dirfd, ""), 0);
	assert_int_equal(ignore_push_dir(f->ig, sub, "sub"), 0);
	close(sub);
	assert_true(ignore_match(f->ig, "build", true));
	assert_true(ignore_match(f->ig, "sub/a.o", false));
	assert_true(ignore_match(f->ig, "x.tmp", false));
	assert_false(ignore_match(f->ig, "keep.tmp", false));
	assert_false(ignore_match(f->ig, "notes", false));
	assert_false(ignore_match(f->ig, "no", false));
	assert_false(ignore_match(f->ig, "sub/a.c", false));
	assert_false(ignore_match(f->ig, "hermes.conf", false));
}

static void test_hermesignore_overrides_gitignore(void **state)
{
	struct fixture *f = *state;

	write_file(f->dirfd, ".gitignore", "*.bin\n!x.dat\n");
	write_file(f->dirfd, ".hermesignore", "!keep.bin\n*.dat\n");
	f->ig = ignore_new(false);
	assert_non_null(f->ig);
	assert_int_equal(ignore_push_dir(f->ig, f->dirfd, ""), 0);
	assert_false(ignore_match(f->ig, "keep.bin", false));
	assert_true(ignore_match(f->ig, "other.bin", false));
	assert_true(ignore_match(f->ig, "x.dat", false));
	assert_false(ignore_match(f->ig, ".hermesignore", false));
	ignore_pop_dir(f->ig);
}

/* Levels come and go with the walk; a popped level's rules are gone. */
static void test_push_pop(void **state)
{
	struct fixture *f = *state;
	int sub;

	write_file(f->dirfd, ".gitignore", "*.x\n");
	write_file(f->dirfd, "sub/.gitignore", "!a.x\n");
	write_file(f->dirfd, "sub/.hermesignore", "b.y\n");
	sub = openat(f->dirfd, "sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(sub >= 0);
	f->ig = ignore_new(false);
	assert_non_null(f->ig);
	assert_int_equal(ignore_push_dir(f->ig, f->dirfd, ""), 0);
	assert_true(ignore_match(f->ig, "sub/a.x", false));
	assert_int_equal(ignore_push_dir(f->ig, sub, "sub"), 0);
	close(sub);
	assert_false(ignore_match(f->ig, "sub/a.x", false));
	assert_true(ignore_match(f->ig, "sub/b.x", false));
	assert_true(ignore_match(f->ig, "sub/c/b.y", false));
	assert_false(ignore_match(f->ig, "b.y", false));
	ignore_pop_dir(f->ig);
	assert_true(ignore_match(f->ig, "sub/a.x", false));
	assert_false(ignore_match(f->ig, "sub/c/b.y", false));
	ignore_pop_dir(f->ig);
	assert_false(ignore_match(f->ig, "sub/a.x", false));
}

/* Missing file: no rules. Unreadable: -errno and nothing pushed. Not a
 * regular file: no rules (git cannot read it either), and no hang on a FIFO. */
static void test_read_errors(void **state)
{
	struct fixture *f = *state;
	int d;

	f->ig = ignore_new(false);
	assert_non_null(f->ig);
	assert_int_equal(ignore_push_dir(f->ig, f->dirfd, ""), 0); /* no files at all */

	write_file(f->dirfd, "real", "*.z\n");
	assert_int_equal(mkdirat(f->dirfd, "link", 0755), 0);
	d = openat(f->dirfd, "link", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d >= 0);
	assert_int_equal(symlinkat("../real", d, ".gitignore"), 0);
	assert_int_equal(ignore_push_dir(f->ig, d, "link"), 0);
	close(d);
	assert_false(ignore_match(f->ig, "link/a.z", false));
	ignore_pop_dir(f->ig);

	assert_int_equal(mkdirat(f->dirfd, "odd", 0755), 0);
	d = openat(f->dirfd, "odd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d >= 0);
	assert_int_equal(mkdirat(d, ".gitignore", 0755), 0);
	assert_int_equal(mkfifoat(d, ".hermesignore", 0644), 0);
	assert_int_equal(ignore_push_dir(f->ig, d, "odd"), 0);
	ignore_pop_dir(f->ig);

	if (geteuid() != 0) { /* root reads mode-000 files anyway */
		assert_int_equal(unlinkat(d, ".hermesignore", 0), 0);
		write_file(d, ".hermesignore", "x\n");
		assert_int_equal(fchmodat(d, ".hermesignore", 0, 0), 0);
		assert_int_equal(ignore_push_dir(f->ig, d, "odd"), -EACCES);
	}
	close(d);
	assert_int_equal(ignore_push_dir(f->ig, -1, "bad"), -EBADF);
	ignore_pop_dir(f->ig);
}

/* Lines of any length and files of a few MB. */
static void test_long_lines_and_big_files(void **state)
{
	struct fixture *f = *state;
	size_t n = 1 << 20, nrules = 100000;
	char *line = malloc(n + 3), *path = malloc(n + 3);

	assert_non_null(line);
	assert_non_null(path);
	memset(line, 'a', n);
	memcpy(line + n, "*\n", 3);
	memset(path, 'a', n);
	memcpy(path + n, "bc", 3);
	f->ig = ignore_new(false);
	assert_non_null(f->ig);
	assert_int_equal(ignore_add_text(f->ig, "", line), 0);
	bool long_hit = ignore_match(f->ig, path, false);
	path[0] = 'b';
	bool long_miss = ignore_match(f->ig, path, false);
	free(line);
	free(path);
	assert_true(long_hit);
	assert_false(long_miss);

	/* ~3.5 MB .gitignore, CRLF endings, last line without a newline */
	char *big = malloc(nrules * 40);
	size_t len = 0;
	assert_non_null(big);
	for (size_t i = 0; i < nrules; i++)
		len += (size_t)sprintf(big + len, "some/dir/file%06zu.txt            \r\n", i);
	len += (size_t)sprintf(big + len, "tail.txt");
	write_file(f->dirfd, ".gitignore", big);
	free(big);
	assert_int_equal(ignore_push_dir(f->ig, f->dirfd, ""), 0);
	assert_true(ignore_match(f->ig, "some/dir/file000000.txt", false));
	assert_true(ignore_match(f->ig, "some/dir/file099999.txt", false));
	assert_false(ignore_match(f->ig, "some/dir/file100000.txt", false));
	assert_true(ignore_match(f->ig, "x/tail.txt", false));
	ignore_pop_dir(f->ig);
}

/* ---- 3. agreement with real git ----------------------------------------- */

struct tree_file {
	const char *path, *content;
};

/* Nested ignore files exercising negation, '**', anchoring, dir-only,
 * middle slashes, escapes, classes, trailing (escaped) spaces; files at
 * several depths, including ones a careless walker would re-include. */
static const struct tree_file git_tree[] = {
	{ ".gitignore",
	  "# root rules\n"
	  "*.log\n"
	  "!important.log\n"
	  "/build/\n"
	  "tmp/\n"
	  "**/cache\n"
	  "docs/**/*.pdf\n"
	  "\\#notes\n"
	  "*.[oa]\n"
	  "file[0-9].txt\n"
	  "data/*.csv\n"
	  "trailing.txt   \n"
	  "abc/**\n"
	  "!abc/keep.me\n"
	  "!keep.me\n"
	  "*.sw[!a-m]\n"
	  "\\!bang\n"
	  "\n"
	  "weird\\[1\\].txt\n"
	  "**/gen/**/out\n"
	  "q/foo**\n"
	  "!q/foobar\n" },
	{ "sub/.gitignore",
	  "!*.log\n"
	  "/local.txt\n"
	  "generated/\n"
	  "*.tmp\n"
	  "!keep.tmp\n"
	  "x/**/y\n"
	  "[Tt]est*.c\n"
	  "space\\ \n" },
	{ "sub/deeper/.gitignore", "!generated/\n*.md\n" },
	{ "README.md", "" },
	{ "app.log", "" },
	{ "important.log", "" },
	{ "build/out.bin", "" },
	{ "src/build/gen.c", "" },
	{ "src/main.c", "" },
	{ "src/main.o", "" },
	{ "src/lib.a", "" },
	{ "src/lib.so", "" },
	{ "tmp/x", "" },
	{ "src/tmp/y", "" },
	{ "notes/tmp", "" },
	{ "a/b/cache/c.bin", "" },
	{ "cache", "" },
	{ "docs/guide.pdf", "" },
	{ "docs/x/y/z.pdf", "" },
	{ "docs/readme.txt", "" },
	{ "other/docs/q.pdf", "" },
	{ "#notes", "" },
	{ "x/#notes", "" },
	{ "file1.txt", "" },
	{ "fileA.txt", "" },
	{ "sub/file2.txt", "" },
	{ "data/a.csv", "" },
	{ "data/deep/b.csv", "" },
	{ "x/data/c.csv", "" },
	{ "trailing.txt", "" },
	{ "abc/one", "" },
	{ "abc/keep.me", "" },
	{ "abc/d/two", "" },
	{ "abc/d/keep.me", "" },
	{ ".x.swp", "" },
	{ ".x.swa", "" },
	{ "!bang", "" },
	{ "bang", "" },
	{ "weird[1].txt", "" },
	{ "weird1.txt", "" },
	{ "sp ace.txt", "" },
	{ "p/gen/out", "" },
	{ "p/gen/q/r/out", "" },
	{ "p/gen/q/r/out2", "" },
	{ "q/foobar/baz", "" },
	{ "q/foox/baz", "" },
	{ "q/foo", "" },
	{ "sub/x.log", "" },
	{ "sub/local.txt", "" },
	{ "sub/deeper/local.txt", "" },
	{ "sub/generated/g.c", "" },
	{ "sub/deeper/generated/h.c", "" },
	{ "sub/a.tmp", "" },
	{ "sub/keep.tmp", "" },
	{ "sub/x/y", "" },
	{ "sub/x/a/b/y", "" },
	{ "sub/x/a/b/z", "" },
	{ "sub/Test1.c", "" },
	{ "sub/test2.c", "" },
	{ "sub/best.c", "" },
	{ "sub/deeper/x.log", "" },
	{ "sub/deeper/Test3.c", "" },
	{ "sub/space ", "" },
	{ "sub/space", "" },
	{ "sub/README.md", "" },
	{ "sub/deeper/README.md", "" },
};

/* The walker Hermes will have: push each directory's rules on entry, skip
 * ignored directories without descending, collect non-ignored files. */
static void walk(struct ignore *ig, int dirfd, const char *rel, struct strlist *out)
{
	char child[PATH_MAX];
	struct dirent *de;
	int fd = dup(dirfd);
	DIR *d;

	assert_true(fd >= 0);
	d = fdopendir(fd);
	assert_non_null(d);
	assert_int_equal(ignore_push_dir(ig, dirfd, rel), 0);
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		assert_int_equal(fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW), 0);
		if (S_ISDIR(st.st_mode)) {
			if (!strcmp(de->d_name, ".git") || ignore_match(ig, child, true))
				continue;
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			assert_true(sub >= 0);
			walk(ig, sub, child, out);
			close(sub);
		} else if (S_ISREG(st.st_mode) && !ignore_match(ig, child, false)) {
			strlist_add(out, child, strlen(child));
		}
	}
	closedir(d);
	ignore_pop_dir(ig);
}

/* Run git isolated from the user's and system's configuration and excludes,
 * so only the tree's .gitignore files decide. */
#define GIT_ENV "env -u GIT_DIR -u GIT_WORK_TREE -u GIT_INDEX_FILE GIT_CONFIG_NOSYSTEM=1 " \
		"GIT_CONFIG_GLOBAL=/dev/null git -c core.excludesFile=/dev/null "

static void git_untracked(const char *dir, struct strlist *out)
{
	char cmd[PATH_MAX + 256], *buf = NULL;
	size_t len = 0, cap = 0, n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), GIT_ENV "-C '%s' ls-files -z --others --exclude-standard",
		 dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len, p);
		len += n;
	} while (n > 0);
	int status = pclose(p);
	for (size_t i = 0; i < len;) {
		size_t l = strnlen(buf + i, len - i);
		strlist_add(out, buf + i, l);
		i += l + 1;
	}
	free(buf);
	assert_int_equal(status, 0);
}

static void test_agrees_with_git(void **state)
{
	struct fixture *f = *state;
	char cmd[PATH_MAX + 256];

	snprintf(cmd, sizeof(cmd), GIT_ENV "-c init.defaultBranch=main -C '%s' init -q", f->dir);
	if (system(cmd) != 0)
		fail_msg("git init failed in %s (is git installed?)", f->dir);
	for (size_t i = 0; i < sizeof(git_tree) / sizeof(git_tree[0]); i++)
		write_file(f->dirfd, git_tree[i].path, git_tree[i].content);

	f->ig = ignore_new(false);
	assert_non_null(f->ig);
	walk(f->ig, f->dirfd, "", &f->walked);
	git_untracked(f->dir, &f->git);
	qsort(f->walked.v, f->walked.n, sizeof(char *), cmp_str);
	qsort(f->git.v, f->git.n, sizeof(char *), cmp_str);

	/* Guard against a vacuous pass: the tree must really be filtered. */
	assert_true(f->git.n > 10);
	assert_true(f->git.n < sizeof(git_tree) / sizeof(git_tree[0]));

	bool same = f->walked.n == f->git.n;
	for (size_t i = 0; same && i < f->git.n; i++)
		same = strcmp(f->walked.v[i], f->git.v[i]) == 0;
	if (!same) {
		for (size_t i = 0; i < f->git.n; i++)
			print_error("git:    '%s'\n", f->git.v[i]);
		for (size_t i = 0; i < f->walked.n; i++)
			print_error("hermes: '%s'\n", f->walked.v[i]);
		fail_msg("walk with ignore_match disagrees with git ls-files --others");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wildmatch_table),
		cmocka_unit_test(test_wildmatch_pathological),
		cmocka_unit_test_setup_teardown(test_rule_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_text_without_push, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hermesignore_overrides_gitignore, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_push_pop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hermes_conf_ignore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines_and_big_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agrees_with_git, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
