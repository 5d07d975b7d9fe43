/* conf: hermes.conf parser; see conf.h. */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cdi.h"

void conf_init(struct hermes_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->gpus = CONF_GPUS_AUTO;
	c->wall_time_s = 10 * 60;
	c->memory_bytes = 8ull << 30;
	c->pids = 1024;
	c->output_bytes = 64ull << 20;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void conf_free(struct hermes_conf *c)
{
	free(c->image);
	free(c->rootfs);
	free(c->user);
	free_list(c->gpu_names, c->ngpu_names);
	free_list(c->env, c->nenv);
	free_list(c->ignore, c->nignore);
	for (size_t i = 0; i < c->nmounts; i++) {
		free((char *)c->mounts[i].src);
		free((char *)c->mounts[i].dst);
	}
	free(c->mounts);
	memset(c, 0, sizeof(*c));
}

/* ---- one line ---- */

struct line_ctx {
	const char *name;
	unsigned lineno;
	struct buf *err;
	unsigned seen; /* bit per scalar key, to refuse a second one */
};

static int bad(struct line_ctx *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct line_ctx *l, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_printf(l->err, "%s:%u: %s", l->name, l->lineno, msg);
	return -EINVAL;
}

static int push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int set_str(char **dst, const char *val)
{
	char *s = strdup(val);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/* "30s", "10m", "2h", "90" (seconds); "none" or "0" = no limit. */
static int parse_duration(struct line_ctx *l, const char *key, const char *v, unsigned *out)
{
	if (strcmp(v, "none") == 0) {
		*out = 0;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	unsigned long mul = 1;
	if (*end == 's')
		end++;
	else if (*end == 'm')
		mul = 60, end++;
	else if (*end == 'h')
		mul = 3600, end++;
	if (end == v || *end || errno || !isdigit((unsigned char)v[0]) || n > 1000000 / mul)
		return bad(l, "%s '%s': not a duration like 30s, 10m or 2h", key, v);
	*out = (unsigned)(n * mul);
	return 0;
}

/* "4G", "512M", "64k", "1000" (bytes, binary units); "none" or "0" = no limit. */
static int parse_size(struct line_ctx *l, const char *key, const char *v, uint64_t *out)
{
	if (strcmp(v, "none") == 0) {
		*out = 0;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	}
	if (shift) {
		end++;
		if (end[0] == 'i' && toupper((unsigned char)end[1]) == 'B')
			end += 2;
		else if (toupper((unsigned char)end[0]) == 'B')
			end++;
	}
	if (end == v || *end || errno || !isdigit((unsigned char)v[0]) || n > (UINT64_MAX >> shift))
		return bad(l, "%s '%s': not a size like 512M or 4G", key, v);
	*out = (uint64_t)n << shift;
	return 0;
}

static int parse_bool(struct line_ctx *l, const char *key, const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
		*out = false;
	else
		return bad(l, "%s '%s': expected on or off", key, v);
	return 0;
}

static int parse_gpus(struct hermes_conf *c, struct line_ctx *l, const char *v)
{
	free_list(c->gpu_names, c->ngpu_names);
	c->gpu_names = NULL;
	c->ngpu_names = 0;
	if (!strcmp(v, "auto") || !strcmp(v, "none") || !strcmp(v, "all")) {
		c->gpus = v[0] == 'a' ? (v[1] == 'u' ? CONF_GPUS_AUTO : CONF_GPUS_ALL)
				      : CONF_GPUS_NONE;
		return 0;
	}
	c->gpus = CONF_GPUS_LIST;
	for (const char *p = v; *p;) {
		char *end;
		unsigned long idx = strtoul(p, &end, 10);
		if (end == p || (*end && *end != ',') || idx > 1023)
			return bad(l, "gpus '%s': expected auto, none, all, or indices like 0 or 0,1", v);
		char name[64];
		snprintf(name, sizeof(name), "nvidia.com/gpu=%lu", idx);
		if (push(&c->gpu_names, &c->ngpu_names, name))
			return -ENOMEM;
		p = *end ? end + 1 : end;
	}
	return 0;
}

static int parse_env(struct hermes_conf *c, struct line_ctx *l, const char *v)
{
	const char *eq = strchr(v, '=');
	bool ok = eq && eq != v && (isalpha((unsigned char)v[0]) || v[0] == '_');
	for (const char *p = v; ok && p < eq; p++)
		ok = isalnum((unsigned char)*p) || *p == '_';
	if (!ok)
		return bad(l, "env '%s': expected NAME=value", v);
	return push(&c->env, &c->nenv, v);
}

static int parse_mount(struct hermes_conf *c, struct line_ctx *l, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return -ENOMEM;
	char *dst = strchr(s, ':');
	char *opt = dst ? strchr(dst + 1, ':') : NULL;
	if (dst)
		*dst++ = '\0';
	if (opt)
		*opt++ = '\0';
	int rc = 0;
	if (!dst || s[0] != '/' || dst[0] != '/')
		rc = bad(l, "mount '%s': expected /HOST/PATH:/CONTAINER/PATH[:ro]", v);
	else if (opt && strcmp(opt, "ro") && strcmp(opt, "rw"))
		rc = bad(l, "mount '%s': option '%s' is not ro or rw", v, opt);
	else if (strncmp(dst, JOB_WORKDIR, strlen(JOB_WORKDIR)) == 0 &&
		 (dst[strlen(JOB_WORKDIR)] == '\0' || dst[strlen(JOB_WORKDIR)] == '/'))
		rc = bad(l, "mount '%s': %s is the workspace", v, JOB_WORKDIR);
	struct job_mount *m = rc ? NULL : realloc(c->mounts, (c->nmounts + 1) * sizeof(*m));
	if (!rc && !m)
		rc = -ENOMEM;
	if (!rc) {
		c->mounts = m;
		m[c->nmounts] = (struct job_mount){ strdup(s), strdup(dst), opt && !strcmp(opt, "ro") };
		if (!m[c->nmounts].src || !m[c->nmounts].dst)
			rc = -ENOMEM;
		c->nmounts++;
	}
	free(s);
	return rc;
}

static int parse_user(struct hermes_conf *c, struct line_ctx *l, const char *v)
{
	if (!strcmp(v, "auto") || !strcmp(v, "image")) {
		c->user_mode = v[0] == 'a' ? CONF_USER_AUTO : CONF_USER_IMAGE;
		return 0;
	}
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(":_-.", *p))
			return bad(l, "user '%s': expected auto, image, NAME or UID[:GID]", v);
	c->user_mode = CONF_USER_GIVEN;
	return set_str(&c->user, v);
}

static int parse_path(char **dst, struct line_ctx *l, const char *key, const char *v)
{
	if (v[0] != '/')
		return bad(l, "%s '%s': expected an absolute path", key, v);
	return set_str(dst, v);
}

static const char *const scalar_keys[] = {
	"image", "rootfs", "gpus", "wall_time", "memory", "pids", "output", "user", "network",
};

static int once(struct line_ctx *l, const char *key)
{
	for (unsigned i = 0; i < sizeof(scalar_keys) / sizeof(scalar_keys[0]); i++) {
		if (strcmp(key, scalar_keys[i]))
			continue;
		if (l->seen & (1u << i))
			return bad(l, "%s given twice", key);
		l->seen |= 1u << i;
	}
	return 0;
}

static int apply(struct hermes_conf *c, struct line_ctx *l, const char *key, const char *v)
{
	int rc = once(l, key);
	if (rc)
		return rc;
	if (!*v && strcmp(key, "env"))
		return bad(l, "%s: no value", key);
	if (!strcmp(key, "image")) {
		free(c->rootfs);
		c->rootfs = NULL;
		return set_str(&c->image, v);
	}
	if (!strcmp(key, "rootfs")) {
		free(c->image);
		c->image = NULL;
		return parse_path(&c->rootfs, l, key, v);
	}
	if (!strcmp(key, "gpus"))
		return parse_gpus(c, l, v);
	if (!strcmp(key, "wall_time"))
		return parse_duration(l, key, v, &c->wall_time_s);
	if (!strcmp(key, "memory"))
		return parse_size(l, key, v, &c->memory_bytes);
	if (!strcmp(key, "output"))
		return parse_size(l, key, v, &c->output_bytes);
	if (!strcmp(key, "pids")) {
		if (!strcmp(v, "none")) {
			c->pids = 0;
			return 0;
		}
		char *end;
		unsigned long n = strtoul(v, &end, 10);
		if (end == v || *end || n > 4194304 || !isdigit((unsigned char)v[0]))
			return bad(l, "pids '%s': expected a number of processes", v);
		c->pids = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "env"))
		return parse_env(c, l, v);
	if (!strcmp(key, "mount"))
		return parse_mount(c, l, v);
	if (!strcmp(key, "user"))
		return parse_user(c, l, v);
	if (!strcmp(key, "network"))
		return parse_bool(l, key, v, &c->network);
	if (!strcmp(key, "ignore"))
		return push(&c->ignore, &c->nignore, v);
	return bad(l, "unknown key '%s'", key);
}

/* Split "  key = value  " in place; a quoted value loses its quotes. */
static int split(struct line_ctx *l, char *s, char **key, char **val)
{
	char *eq = strchr(s, '=');
	if (!eq)
		return bad(l, "expected 'key = value'");
	char *k = s, *ke = eq, *v = eq + 1, *ve = v + strlen(v);
	while (k < ke && isspace((unsigned char)*k))
		k++;
	while (ke > k && isspace((unsigned char)ke[-1]))
		ke--;
	while (*v && isspace((unsigned char)*v))
		v++;
	while (ve > v && isspace((unsigned char)ve[-1]))
		ve--;
	*ke = *ve = '\0';
	if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
		v++;
		ve[-1] = '\0';
	}
	if (k == ke)
		return bad(l, "expected 'key = value' (no key)");
	*key = k;
	*val = v;
	return 0;
}

int conf_parse(struct hermes_conf *c, const char *text, size_t len, const char *name,
	       struct buf *err)
{
	struct line_ctx l = { .name = name, .err = err };
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		l.lineno++;
		char *line = strndup(p, n);
		if (!line)
			return -ENOMEM;
		p += n + (nl != NULL);
		char *s = line + strspn(line, " \t\r");
		char *key = NULL, *val = NULL;
		int rc = 0;
		if (strlen(line) != n)
			rc = bad(&l, "NUL byte in line");
		else if (*s && *s != '#')
			rc = split(&l, s, &key, &val) ? -EINVAL : apply(c, &l, key, val);
		free(line);
		if (rc == -ENOMEM)
			buf_printf(err, "%s:%u: out of memory", name, l.lineno);
		if (rc)
			return rc;
	}
	return 0;
}

int conf_load(struct hermes_conf *c, const char *path, struct buf *err)
{
	conf_init(c);
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		buf_printf(err, "%s: %s", path, strerror(errno));
		return -errno;
	}
	struct buf text = BUF_INIT;
	char chunk[4096];
	size_t n;
	int rc = 0;
	while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rc = buf_append(&text, chunk, n);
	if (rc == 0 && ferror(f)) {
		buf_printf(err, "%s: read error", path);
		rc = -EIO;
	} else if (rc) {
		buf_printf(err, "%s: out of memory", path);
	}
	fclose(f);
	if (rc == 0)
		rc = conf_parse(c, (const char *)text.data, text.len, path, err);
	buf_free(&text);
	return rc;
}

static int spec_user(struct hermes_conf *c, struct job_spec *spec, struct buf *err)
{
	spec->user = NULL;
	if (c->user_mode == CONF_USER_GIVEN) {
		spec->user = c->user;
	} else if (c->user_mode == CONF_USER_AUTO && spec->workspace) {
		struct stat st;
		if (stat(spec->workspace, &st)) {
			buf_printf(err, "workspace %s: %s", spec->workspace, strerror(errno));
			return -errno;
		}
		snprintf(c->spec_user, sizeof(c->spec_user), "%u:%u", (unsigned)st.st_uid,
			 (unsigned)st.st_gid);
		spec->user = c->spec_user;
	}
	return 0;
}

int conf_to_spec(struct hermes_conf *c, struct job_spec *spec, struct buf *err)
{
	spec->rootfs = c->rootfs;
	spec->image = c->rootfs ? NULL : c->image ? c->image : CONF_DEFAULT_IMAGE;
	spec->gpus = NULL;
	spec->ngpus = 0;
	c->spec_gpus[0] = "nvidia.com/gpu=all";
	struct buf probe = BUF_INIT;
	if (c->gpus == CONF_GPUS_ALL ||
	    (c->gpus == CONF_GPUS_AUTO && cdi_check(c->spec_gpus[0], &probe) == 0)) {
		spec->gpus = c->spec_gpus;
		spec->ngpus = 1;
	} else if (c->gpus == CONF_GPUS_LIST) {
		spec->gpus = (const char *const *)c->gpu_names;
		spec->ngpus = c->ngpu_names;
	}
	buf_free(&probe);
	spec->env = (const char *const *)c->env;
	spec->nenv = c->nenv;
	spec->mounts = c->mounts;
	spec->nmounts = c->nmounts;
	spec->network = c->network;
	spec->wall_time_s = c->wall_time_s;
	spec->memory_bytes = c->memory_bytes;
	spec->pids = c->pids;
	spec->output_bytes = c->output_bytes;
	return spec_user(c, spec, err);
}
