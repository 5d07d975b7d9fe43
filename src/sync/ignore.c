/* ignore: .gitignore / .hermesignore rules with git's semantics (see ignore.h).
 *
 * Layout: a stack of levels, one per directory the walker has entered. Each
 * level owns the text blocks ("chunks") its rules were parsed from; rules are
 * parsed once, in place, and point into those chunks, so matching never
 * allocates. levels[0] is a base level that is never popped: ignore_add_text
 * on a fresh set lands there (lowest precedence, like git's excludesFile).
 *
 * Matching mirrors git's dir.c: deepest level first, last rule first; a rule
 * without '/' compares the basename, any other rule the path relative to the
 * rule's directory, with a literal prefix compared before wildmatch exactly
 * as git does (that prefix step is observable: "a/foo**" behaves like
 * "a/foo" + "**"). The wildmatch below follows git's wildmatch.c with
 * WM_PATHNAME, including its early-abort results that keep "*a*a*a*b"
 * linear.
 */
#include "ignore.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- wildmatch ---------------------------------------------------------- */

typedef unsigned char uchar;

/* Results of one matching attempt. The two aborts let an enclosing '*' stop
 * trying further text positions once no position can succeed: ABORT_ALL for
 * every enclosing star, ABORT_TO_STARSTAR for all but a '**' (which may still
 * skip past a '/'). WM_CONTINUE is internal to the '*' handler. */
enum { WM_MATCH, WM_NOMATCH, WM_ABORT_ALL, WM_ABORT_TO_STARSTAR, WM_CONTINUE };

/* Each nested star costs a stack frame (~150 bytes at -O2); a hostile
 * ignore file with a megabyte of "*a" must not overflow the walker's stack.
 * Patterns nested deeper than this simply do not match (git would recurse
 * until it crashes); no real pattern has thousands of stars. */
#define WM_MAX_DEPTH 4096

static int wm_dowild(const uchar *p, const uchar *text, unsigned depth);

/* Characters after which git stops comparing a pattern literally. */
static bool is_glob_special(uchar c)
{
	return c == '*' || c == '?' || c == '[' || c == '\\';
}

/* "[:name:]" classes, ASCII only as in git (its ctype ignores the locale,
 * so a byte >= 0x80 is never alpha/print/...). Returns 1/0 for membership,
 * -1 for an unknown name, which git treats as a malformed pattern. */
static int wm_named_class(const uchar *name, size_t len, uchar t)
{
	static const struct {
		const char *name;
		int (*test)(int);
	} classes[] = {
		{ "alnum", isalnum }, { "alpha", isalpha }, { "blank", isblank },
		{ "cntrl", iscntrl }, { "digit", isdigit }, { "graph", isgraph },
		{ "lower", islower }, { "print", isprint }, { "punct", ispunct },
		{ "space", isspace }, { "upper", isupper }, { "xdigit", isxdigit },
	};
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		if (strlen(classes[i].name) == len && memcmp(classes[i].name, name, len) == 0)
			return t < 0x80 && classes[i].test(t) ? 1 : 0;
	}
	return -1;
}

/* A bracket expression; *pp points just past its '['. On return *pp points
 * at the closing ']'. Returns 1 if t is in the (possibly negated) set, 0 if
 * not, -1 if the pattern is malformed (unterminated, bad "[:class:]").
 * git's rules: a ']' or '-' first is literal, '\' escapes, "a-z" ranges
 * (a range end may be escaped and cannot start another range), and "[:"
 * without a closing ":]" makes '[' a plain member. */
static int wm_class(const uchar **pp, uchar t)
{
	const uchar *p = *pp;
	uchar c = *p, prev = 0;
	bool negated = false, matched = false;

	if (c == '!' || c == '^') {
		negated = true;
		c = *++p;
	}
	do {
		if (!c)
			return -1;
		if (c == '\\') {
			c = *++p;
			if (!c)
				return -1;
			if (t == c)
				matched = true;
		} else if (c == '-' && prev && p[1] && p[1] != ']') {
			c = *++p;
			if (c == '\\') {
				c = *++p;
				if (!c)
					return -1;
			}
			if (t >= prev && t <= c)
				matched = true;
			c = 0; /* the range's end cannot begin another range */
		} else if (c == '[' && p[1] == ':') {
			const uchar *name = p + 2, *q = name;
			while (*q && *q != ']')
				q++;
			if (!*q)
				return -1;
			if (q == name || q[-1] != ':') {
				/* no ":]": the '[' is an ordinary member */
				if (t == '[')
					matched = true;
			} else {
				int in = wm_named_class(name, (size_t)(q - name - 1), t);
				if (in < 0)
					return -1;
				if (in)
					matched = true;
				p = q;
				c = 0;
			}
		} else if (t == c) {
			matched = true;
		}
		prev = c;
		c = *++p;
	} while (c != ']');
	*pp = p;
	return matched != negated;
}

/* A run of '*' at *pp, with *tp the text it starts at. Either decides the
 * whole match (returns WM_MATCH/NOMATCH/ABORT_*) or, for a single '*'
 * followed by '/', advances *pp to that '/' and *tp to the next '/' of the
 * text and returns WM_CONTINUE so the caller consumes the pair. '**' only
 * crosses '/' when it is a whole path component ("**\/x", "x/\**", "/\**\/");
 * otherwise it behaves as '*'. */
static int wm_star(const uchar **pp, const uchar **tp, const uchar *pattern, unsigned depth)
{
	const uchar *p = *pp, *text = *tp;
	bool match_slash = false;

	if (p[1] == '*') {
		bool at_component_start = p == pattern || p[-1] == '/';
		while (*p == '*')
			p++;
		if (at_component_start &&
		    (*p == '\0' || *p == '/' || (p[0] == '\\' && p[1] == '/'))) {
			/* "**\/" may match no directory at all: try that first */
			if (*p == '/' && wm_dowild(p + 1, text, depth + 1) == WM_MATCH)
				return WM_MATCH;
			match_slash = true;
		}
	} else {
		p++;
	}

	if (*p == '\0') {
		/* trailing '*' takes the rest of this component only */
		if (!match_slash && strchr((const char *)text, '/'))
			return WM_ABORT_TO_STARSTAR;
		return WM_MATCH;
	}
	if (!match_slash && *p == '/') {
		const uchar *slash = (const uchar *)strchr((const char *)text, '/');
		if (!slash)
			return WM_ABORT_ALL;
		*pp = p;
		*tp = slash;
		return WM_CONTINUE;
	}

	for (uchar t = *text; t; t = *++text) {
		if (!is_glob_special(*p)) {
			/* A literal follows: whatever precedes its next occurrence
			 * belongs to the star. If there is none (before the next
			 * '/' for a single star), no later start can match either. */
			while ((t = *text) && (match_slash || t != '/') && t != *p)
				text++;
			if (t != *p)
				return match_slash ? WM_ABORT_ALL : WM_ABORT_TO_STARSTAR;
		}
		int r = wm_dowild(p, text, depth + 1);
		if (r != WM_NOMATCH) {
			if (!match_slash || r != WM_ABORT_TO_STARSTAR)
				return r;
		} else if (!match_slash && t == '/') {
			return WM_ABORT_TO_STARSTAR;
		}
	}
	return WM_ABORT_ALL;
}

/* Match pattern p against text, WM_PATHNAME semantics. */
static int wm_dowild(const uchar *p, const uchar *text, unsigned depth)
{
	const uchar *pattern = p;

	if (depth > WM_MAX_DEPTH)
		return WM_ABORT_ALL;
	for (; *p; p++, text++) {
		uchar t = *text;
		int r;

		if (!t && *p != '*')
			return WM_ABORT_ALL;
		switch (*p) {
		case '\\':
			/* literal next char; a trailing '\' matches nothing, as
			 * t is never NUL here */
			if (t != p[1])
				return WM_NOMATCH;
			p++;
			break;
		case '?':
			if (t == '/')
				return WM_NOMATCH;
			break;
		case '[':
			p++;
			r = wm_class(&p, t);
			if (r < 0)
				return WM_ABORT_ALL;
			if (!r || t == '/')
				return WM_NOMATCH;
			break;
		case '*':
			r = wm_star(&p, &text, pattern, depth);
			if (r != WM_CONTINUE)
				return r;
			break;
		default:
			if (t != *p)
				return WM_NOMATCH;
			break;
		}
	}
	return *text ? WM_NOMATCH : WM_MATCH;
}

bool ignore_wildmatch(const char *pattern, const char *text)
{
	if (!pattern || !text)
		return false;
	return wm_dowild((const uchar *)pattern, (const uchar *)text, 0) == WM_MATCH;
}

/* ---- rules -------------------------------------------------------------- */

enum {
	RULE_NEGATED = 1u << 0,  /* "!pat": a match re-includes */
	RULE_DIR_ONLY = 1u << 1, /* "pat/": only directories match */
	RULE_BASENAME = 1u << 2, /* no '/' in pat: match the last component */
	RULE_ENDSWITH = 1u << 3, /* "*literal": a suffix compare suffices */
};

struct rule {
	const char *pat;  /* NUL-terminated, without '!' and trailing '/' */
	size_t len;       /* strlen(pat) */
	size_t literal;   /* leading chars of pat before any glob special */
	const char *base; /* directory of the rule's file: "" or "a/b" */
	size_t baselen;
	unsigned flags;
};

struct level {
	struct rule *rules;
	size_t nrules, caprules;
	char **chunks; /* owned; each is "base\0text\0", rules point into it */
	size_t nchunks, capchunks;
};

struct ignore {
	struct level *levels; /* levels[0]: base level, never popped */
	size_t nlevels, caplevels;
	bool include_vcs;
};

/* Array `arr` (capacity *cap elements of `size` bytes) with room for `need`
 * elements, doubling so that appends stay amortised O(1). Returns the
 * possibly moved array, or NULL (arr untouched) when memory runs out. */
static void *grow(void *arr, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return arr;
	size_t ncap = *cap ? *cap : 8;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return NULL;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / size)
		return NULL;
	void *n = realloc(arr, ncap * size);
	if (n)
		*cap = ncap;
	return n;
}

static void level_free(struct level *lv)
{
	for (size_t i = 0; i < lv->nchunks; i++)
		free(lv->chunks[i]);
	free(lv->chunks);
	free(lv->rules);
	memset(lv, 0, sizeof(*lv));
}

/* Length of s's literal head, as git's simple_length: the part that can be
 * compared with memcmp before wildmatch is needed. */
static size_t literal_len(const char *s)
{
	size_t n = 0;
	while (s[n] && !is_glob_special((uchar)s[n]))
		n++;
	return n;
}

/* git's trim_trailing_spaces: drop trailing ' ' unless escaped by '\'.
 * Only spaces: a trailing tab is part of the pattern in git too. */
static void trim_trailing_spaces(char *s)
{
	char *last_space = NULL;

	for (char *p = s; *p; p++) {
		if (*p == ' ') {
			if (!last_space)
				last_space = p;
			continue;
		}
		if (*p == '\\' && !*++p)
			return; /* a lone trailing '\' keeps everything */
		last_space = NULL;
	}
	if (last_space)
		*last_space = '\0';
}

/* Parse one non-comment line (already NUL-terminated, CR removed) into *r.
 * Returns false for lines that can never match (empty after trimming), so
 * they cost nothing at match time. '\#' and '\!' need no handling here:
 * they are simply not '#'/'!' at column 0, and wildmatch reads '\x' as x. */
static bool parse_rule(char *line, const char *base, size_t baselen, struct rule *r)
{
	unsigned flags = 0;

	trim_trailing_spaces(line);
	if (*line == '!') {
		flags |= RULE_NEGATED;
		line++;
	}
	size_t len = strlen(line);
	if (len && line[len - 1] == '/') {
		line[--len] = '\0';
		flags |= RULE_DIR_ONLY;
	}
	if (len == 0)
		return false;
	if (!memchr(line, '/', len))
		flags |= RULE_BASENAME;
	if (line[0] == '*' && literal_len(line + 1) == len - 1)
		flags |= RULE_ENDSWITH;
	*r = (struct rule){ .pat = line, .len = len, .literal = literal_len(line),
			    .base = base, .baselen = baselen, .flags = flags };
	return true;
}

/* Parse text[0..len) (with a writable NUL slot at text[len]) into rules of
 * lv, in file order. Lines end at '\n'; a "\r\n" ending loses its '\r' and a
 * UTF-8 BOM at the very start is skipped, both as git does. */
static int parse_text(struct level *lv, char *text, size_t len, const char *base, size_t baselen)
{
	char *s = text, *end = text + len;

	if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	while (s < end) {
		char *nl = memchr(s, '\n', (size_t)(end - s));
		char *eol = nl ? nl : end;
		char *next = nl ? nl + 1 : end;
		struct rule r;

		if (eol > s && s[0] != '#') {
			if (eol[-1] == '\r')
				eol--;
			*eol = '\0';
			if (parse_rule(s, base, baselen, &r)) {
				struct rule *rules = grow(lv->rules, &lv->caprules, lv->nrules + 1,
							  sizeof(*rules));
				if (!rules)
					return -ENOMEM;
				lv->rules = rules;
				lv->rules[lv->nrules++] = r;
			}
		}
		s = next;
	}
	return 0;
}

/* Hand `chunk` ("base\0" followed by textlen bytes and one spare byte) to lv
 * and parse it. All or nothing: on failure the level is as before and the
 * chunk is freed, so callers never clean up half-added rules. */
static int level_add_chunk(struct level *lv, char *chunk, size_t baselen, size_t textlen)
{
	size_t old_nrules = lv->nrules;
	char **chunks = grow(lv->chunks, &lv->capchunks, lv->nchunks + 1, sizeof(*chunks));
	int rc;

	if (!chunks) {
		free(chunk);
		return -ENOMEM;
	}
	lv->chunks = chunks;
	lv->chunks[lv->nchunks++] = chunk;
	chunk[baselen] = '\0';
	rc = parse_text(lv, chunk + baselen + 1, textlen, chunk, baselen);
	if (rc < 0) {
		lv->nrules = old_nrules;
		lv->nchunks--;
		free(chunk);
	}
	return rc;
}

/* Length of dir_rel without trailing '/', so "a/" and "a" name one base. */
static size_t base_len(const char *dir_rel)
{
	size_t n = strlen(dir_rel);
	while (n && dir_rel[n - 1] == '/')
		n--;
	return n;
}

/* Read all of `name` in dirfd into a fresh buffer that starts with `reserve`
 * unused bytes (room for the base directory) and has one spare byte after
 * the data. Returns 1 with *out set, 0 when there is no file to read, or
 * -errno. O_NOFOLLOW: a symlinked ignore file is not followed and counts as
 * "no rules", as git (which warns and goes on) treats in-tree symlinked ones. O_NONBLOCK: a FIFO named .gitignore must not hang
 * the walk; it and other non-regular files count as "no rules", which is
 * also what git ends up with (it cannot read them). */
static int read_file(int dirfd, const char *name, size_t reserve, char **out, size_t *outlen)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	int rc = 0;

	if (fd < 0)
		return errno == ENOENT || errno == ELOOP ? 0 : -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode))
		goto out;
	if ((uintmax_t)st.st_size > SIZE_MAX / 2 - reserve - 64) {
		rc = -EFBIG;
		goto out;
	}
	/* st_size is a hint; the file may change while we read, so grow. */
	size_t cap = reserve + (size_t)st.st_size + 64, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (reserve + len + 1 >= cap) {
			char *nbuf = grow(buf, &cap, cap + 1, 1);
			if (!nbuf) {
				rc = -ENOMEM;
				break;
			}
			buf = nbuf;
		}
		ssize_t n = read(fd, buf + reserve + len, cap - reserve - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0) {
			*out = buf;
			*outlen = len;
			rc = 1;
			break;
		}
		len += (size_t)n;
	}
	if (rc < 0)
		free(buf);
out:
	close(fd);
	return rc;
}

/* Read one ignore file of the directory into lv; a missing one adds nothing. */
static int level_load(struct level *lv, int dirfd, const char *name, const char *dir_rel)
{
	size_t baselen = base_len(dir_rel), textlen = 0;
	char *chunk = NULL;
	int rc = read_file(dirfd, name, baselen + 1, &chunk, &textlen);

	if (rc <= 0)
		return rc;
	memcpy(chunk, dir_rel, baselen);
	return level_add_chunk(lv, chunk, baselen, textlen);
}

/* The `ignore = PATTERN` lines of the root's hermes.conf (hermes.conf(5)),
 * as if they were the root's .hermesignore: one rule per line, quotes
 * optional. The other keys are the job runner's. */
static int level_load_conf(struct level *lv, int dirfd)
{
	size_t len = 0;
	char *text = NULL;
	int rc = read_file(dirfd, "hermes.conf", 1, &text, &len);
	if (rc <= 0)
		return rc;
	char *rules = malloc(len + 3), *out = rules + 1;
	if (!rules) {
		free(text);
		return -ENOMEM;
	}
	text[1 + len] = '\0';
	for (char *line = text + 1, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		line += strspn(line, " \t");
		if (strncmp(line, "ignore", 6))
			continue;
		char *v = line + 6 + strspn(line + 6, " \t");
		if (*v != '=')
			continue;
		v += 1 + strspn(v + 1, " \t");
		size_t vlen = strcspn(v, "\r");
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
			v++;
			vlen -= 2;
		}
		memcpy(out, v, vlen);
		out += vlen;
		*out++ = '\n';
	}
	free(text);
	if (out == rules + 1) {
		free(rules);
		return 0;
	}
	return level_add_chunk(lv, rules, 0, (size_t)(out - rules - 1));
}

struct ignore *ignore_new(bool include_vcs)
{
	struct ignore *ig = calloc(1, sizeof(*ig));

	if (!ig)
		return NULL;
	ig->levels = grow(NULL, &ig->caplevels, 8, sizeof(*ig->levels));
	if (!ig->levels) {
		free(ig);
		return NULL;
	}
	memset(&ig->levels[0], 0, sizeof(ig->levels[0]));
	ig->nlevels = 1;
	ig->include_vcs = include_vcs;
	return ig;
}

void ignore_free(struct ignore *ig)
{
	if (!ig)
		return;
	for (size_t i = 0; i < ig->nlevels; i++)
		level_free(&ig->levels[i]);
	free(ig->levels);
	free(ig);
}

/* On failure nothing is pushed: the caller must not pop for a failed push. */
int ignore_push_dir(struct ignore *ig, int dirfd, const char *dir_rel)
{
	if (!ig || !dir_rel)
		return -EINVAL;
	struct level *levels = grow(ig->levels, &ig->caplevels, ig->nlevels + 1, sizeof(*levels));
	if (!levels)
		return -ENOMEM;
	ig->levels = levels;
	struct level *lv = &ig->levels[ig->nlevels];
	int rc;
	memset(lv, 0, sizeof(*lv));
	/* .hermesignore after .gitignore: later rules win within a level. */
	rc = level_load(lv, dirfd, ".gitignore", dir_rel);
	if (rc == 0)
		rc = level_load(lv, dirfd, ".hermesignore", dir_rel);
	if (rc == 0 && !*dir_rel)
		rc = level_load_conf(lv, dirfd);
	if (rc < 0) {
		level_free(lv);
		return rc;
	}
	ig->nlevels++;
	return 0;
}

/* The base level stays: an unbalanced pop is a caller bug, not a crash. */
void ignore_pop_dir(struct ignore *ig)
{
	if (!ig || ig->nlevels <= 1)
		return;
	level_free(&ig->levels[--ig->nlevels]);
}

int ignore_add_text(struct ignore *ig, const char *dir_rel, const char *text)
{
	if (!ig || !dir_rel || !text)
		return -EINVAL;
	size_t baselen = base_len(dir_rel), textlen = strlen(text);
	if (textlen > SIZE_MAX - baselen - 2)
		return -ENOMEM;
	char *chunk = malloc(baselen + 1 + textlen + 1);
	if (!chunk)
		return -ENOMEM;
	memcpy(chunk, dir_rel, baselen);
	memcpy(chunk + baselen + 1, text, textlen);
	return level_add_chunk(&ig->levels[ig->nlevels - 1], chunk, baselen, textlen);
}

/* ---- matching ----------------------------------------------------------- */

/* The part of path below base, or NULL if path is not strictly inside it:
 * rules of a directory only ever speak about what lies beneath it. */
static const char *below_base(const char *path, size_t pathlen, const struct rule *r)
{
	if (r->baselen == 0)
		return path;
	if (pathlen <= r->baselen || path[r->baselen] != '/' ||
	    memcmp(path, r->base, r->baselen) != 0)
		return NULL;
	return path + r->baselen + 1;
}

/* git's match_basename: a rule without '/' against the last component. */
static bool match_basename(const struct rule *r, const char *name, size_t namelen)
{
	if (r->literal == r->len)
		return r->len == namelen && memcmp(r->pat, name, namelen) == 0;
	if (r->flags & RULE_ENDSWITH)
		return r->len - 1 <= namelen &&
		       memcmp(r->pat + 1, name + namelen - (r->len - 1), r->len - 1) == 0;
	return ignore_wildmatch(r->pat, name);
}

/* git's match_pathname: an anchored rule against the path below its base.
 * The literal head is compared first and wildmatch sees only the rest; this
 * is not just speed, it decides whether a '**' right after the head counts
 * as being at the start of the pattern, and git behaves that way. */
static bool match_pathname(const struct rule *r, const char *rel)
{
	const char *pat = r->pat;
	size_t len = r->len, lit = r->literal;

	if (*pat == '/') { /* the leading '/' only anchors */
		pat++;
		len--;
		lit--;
	}
	if (lit) {
		if (strncmp(pat, rel, lit) != 0)
			return false;
		pat += lit;
		rel += lit;
		len -= lit;
		if (!len && !*rel)
			return true;
	}
	return ignore_wildmatch(pat, rel);
}

/* Built-in rules that no ignore file can override. */
static bool builtin_ignored(const struct ignore *ig, const char *path, const char *name, bool is_dir)
{
	/* Hermes' own state at the root; a file of that name is excluded too,
	 * since the remote keeps its state under the same name. */
	if (strcmp(path, ".hermes") == 0)
		return true;
	return !ig->include_vcs && is_dir && strcmp(name, ".git") == 0;
}

bool ignore_match(const struct ignore *ig, const char *path, bool is_dir)
{
	if (!ig || !path || !*path)
		return false;
	size_t pathlen = strlen(path);
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t namelen = pathlen - (size_t)(name - path);

	if (builtin_ignored(ig, path, name, is_dir))
		return true;
	for (size_t i = ig->nlevels; i-- > 0;) {
		const struct level *lv = &ig->levels[i];
		for (size_t j = lv->nrules; j-- > 0;) {
			const struct rule *r = &lv->rules[j];
			const char *rel;

			if ((r->flags & RULE_DIR_ONLY) && !is_dir)
				continue;
			rel = below_base(path, pathlen, r);
			if (!rel)
				continue;
			if ((r->flags & RULE_BASENAME) ? match_basename(r, name, namelen)
						       : match_pathname(r, rel))
				return !(r->flags & RULE_NEGATED);
		}
	}
	return false;
}
