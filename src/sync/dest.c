/* dest: parse the destination of a sync, rsync/scp style.
 *
 *   [user@]host:path     SSH; path may be relative to the remote home
 *   [user@][v6addr]:path SSH to an IPv6 literal
 *   /path ./path ../path local (kept as given)
 *   local:path           local, prefix stripped
 *   anything without ':' before its first '/' is local too
 *
 * Host and user must be non-empty, must not start with '-' (they could be
 * taken for options by ssh tooling) and must not contain blanks, control
 * characters or brackets (other than those around an IPv6 address). The
 * user is everything before the last '@' of the host part. An SSH
 * destination needs a non-empty path ("host:." is the remote home); an
 * unclosed '[' is an error only if the string has a ':'. On error d is left
 * empty (safe to dest_free again): -EINVAL with err naming the string, or
 * -ENOMEM (err untouched).
 */
#include "transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int dest_error(struct buf *err, const char *s, const char *why)
{
	if (err)
		buf_printf(err, "invalid destination \"%s\": %s", s, why);
	return -EINVAL;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* NULL if p[0..n) is a usable user or host name, else why not. */
static const char *name_problem(const char *p, size_t n)
{
	if (n == 0)
		return "is empty";
	if (p[0] == '-')
		return "starts with '-'";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= ' ' || c == 0x7f)
			return "contains a blank or control character";
		if (c == '[' || c == ']')
			return "contains '[' or ']'";
	}
	return NULL;
}

static int name_error(struct buf *err, const char *s, const char *what, const char *why)
{
	if (err)
		buf_printf(err, "invalid destination \"%s\": %s %s", s, what, why);
	return -EINVAL;
}

/* Index of the ':' that ends the host part, -1 if s is a local path,
 * -2 if a '[' is never closed. A '[' opens an address only at the start
 * of the host (first character or right after '@'). */
static long find_host_colon(const char *s)
{
	bool in_bracket = false;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		if (in_bracket) {
			if (c == ']')
				in_bracket = false;
		} else if (c == '[' && (i == 0 || s[i - 1] == '@')) {
			in_bracket = true;
		} else if (c == '/') {
			return -1;
		} else if (c == ':') {
			return (long)i;
		}
	}
	return in_bracket ? -2 : -1;
}

static int set_local(const char *path, struct dest *d)
{
	d->local = true;
	d->path = strdup(path);
	return d->path ? 0 : -ENOMEM;
}

/* Split "user@host" / "host" / "user@[addr]" / "[addr]" (n bytes at hp). */
static int split_host(const char *s, const char *hp, size_t n, struct dest *d,
		      struct buf *err)
{
	const char *at = NULL;
	for (size_t i = 0; i < n && hp[i] != '['; i++)
		if (hp[i] == '@')
			at = hp + i;
	const char *h = at ? at + 1 : hp;
	size_t hn = n - (size_t)(h - hp);

	const char *why = at ? name_problem(hp, (size_t)(at - hp)) : NULL;
	if (why)
		return name_error(err, s, "user name", why);
	if (hn > 0 && h[0] == '[') {
		if (h[hn - 1] != ']')
			return dest_error(err, s, "unexpected text after ']'");
		h++;
		hn -= 2;
	}
	why = name_problem(h, hn);
	if (why)
		return name_error(err, s, "host name", why);

	d->host = strndup(h, hn);
	if (at)
		d->user = strndup(hp, (size_t)(at - hp));
	if (!d->host || (at && !d->user))
		return -ENOMEM;
	return 0;
}

int dest_parse(const char *s, struct dest *d, struct buf *err)
{
	memset(d, 0, sizeof(*d));
	if (!s || !*s)
		return dest_error(err, s ? s : "", "empty");

	int rc;
	if (starts_with(s, "local:")) {
		if (!s[6])
			return dest_error(err, s, "no path after \"local:\"");
		rc = set_local(s + 6, d);
	} else if (s[0] == '/' || starts_with(s, "./") || starts_with(s, "../")) {
		rc = set_local(s, d);
	} else {
		long colon = find_host_colon(s);
		if (colon == -2 && strchr(s, ':'))
			return dest_error(err, s, "missing ']' after IPv6 address");
		if (colon < 0)
			return set_local(s, d);
		if (!s[colon + 1])
			return dest_error(err, s,
					  "no remote path after ':' (use HOST:. for the remote home)");
		rc = split_host(s, s, (size_t)colon, d, err);
		if (rc == 0) {
			d->path = strdup(s + colon + 1);
			rc = d->path ? 0 : -ENOMEM;
		}
	}
	if (rc)
		dest_free(d);
	return rc;
}

void dest_free(struct dest *d)
{
	free(d->user);
	free(d->host);
	free(d->path);
	memset(d, 0, sizeof(*d));
}
