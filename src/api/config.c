#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-')
		return -EINVAL;
	*out = x;
	return 0;
}

static int parse_uint(const char *v, unsigned *out)
{
	uint64_t x;
	if (parse_u64(v, &x) < 0 || x > 1000000000u)
		return -EINVAL;
	*out = (unsigned)x;
	return 0;
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int parse_listen(struct config *cfg, const char *v)
{
	const char *colon = strrchr(v, ':');
	if (!colon || colon == v)
		return -EINVAL;
	char *host = strndup(v, (size_t)(colon - v));
	if (!host)
		return -ENOMEM;
	if (parse_uint(colon + 1, &cfg->listen_port) < 0 || cfg->listen_port > 65535) {
		free(host);
		return -EINVAL;
	}
	free(cfg->listen_host);
	cfg->listen_host = host;
	return 0;
}

/* "NAME SECRET [max_queued=N] [max_running=N] [max_gpus=N]" */
static int parse_token(struct config *cfg, char *v)
{
	char *save = NULL;
	char *name = strtok_r(v, " \t", &save);
	char *secret = strtok_r(NULL, " \t", &save);
	if (!name || !secret || strlen(secret) < 8)
		return -EINVAL;
	struct token t = { .max_gpus = CONFIG_MAX_GPUS };
	for (char *opt; (opt = strtok_r(NULL, " \t", &save));) {
		unsigned *dst = NULL;
		if (!strncmp(opt, "max_queued=", 11))
			dst = &t.max_queued;
		else if (!strncmp(opt, "max_running=", 12))
			dst = &t.max_running;
		else if (!strncmp(opt, "max_gpus=", 9))
			dst = &t.max_gpus;
		if (!dst || parse_uint(strchr(opt, '=') + 1, dst) < 0)
			return -EINVAL;
	}
	for (size_t i = 0; i < cfg->ntokens; i++)
		if (!strcmp(cfg->tokens[i].name, name) || !strcmp(cfg->tokens[i].secret, secret))
			return -EEXIST;
	struct token *nt = realloc(cfg->tokens, (cfg->ntokens + 1) * sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	cfg->tokens = nt;
	t.name = strdup(name);
	t.secret = strdup(secret);
	if (!t.name || !t.secret) {
		free(t.name);
		free(t.secret);
		return -ENOMEM;
	}
	cfg->tokens[cfg->ntokens++] = t;
	return 0;
}

static int apply(struct config *cfg, const char *key, char *v)
{
	if (!strcmp(key, "listen"))
		return parse_listen(cfg, v);
	if (!strcmp(key, "state_dir"))
		return set_str(&cfg->state_dir, v);
	if (!strcmp(key, "backend")) {
		if (!strcmp(v, "podman"))
			cfg->backend = BACKEND_PODMAN;
		else if (!strcmp(v, "slurm"))
			cfg->backend = BACKEND_SLURM;
		else
			return -EINVAL;
		return 0;
	}
	if (!strcmp(key, "podman_socket"))
		return set_str(&cfg->podman_socket, v);
	if (!strcmp(key, "podman_command"))
		return set_str(&cfg->podman_command, v);
	if (!strcmp(key, "slurm_partition"))
		return set_str(&cfg->slurm_partition, v);
	if (!strcmp(key, "slurm_gpu_device"))
		return set_str(&cfg->slurm_gpu_device, v);
	if (!strcmp(key, "image"))
		return set_str(&cfg->image, v);
	if (!strcmp(key, "gpus"))
		return set_str(&cfg->gpus_setting, v);
	if (!strcmp(key, "cpu_slots"))
		return parse_uint(v, &cfg->cpu_slots);
	if (!strcmp(key, "max_upload"))
		return parse_u64(v, &cfg->max_upload);
	if (!strcmp(key, "max_unpacked"))
		return parse_u64(v, &cfg->max_unpacked);
	if (!strcmp(key, "wall_time_s"))
		return parse_uint(v, &cfg->wall_time_s);
	if (!strcmp(key, "token"))
		return parse_token(cfg, v);
	return -ENOENT;
}

static int set_defaults(struct config *cfg)
{
	cfg->cpu_slots = 2;
	cfg->max_upload = 100u << 20;
	cfg->max_unpacked = 1u << 30;
	cfg->wall_time_s = 3600;
	cfg->listen_port = 8420;
	if (set_str(&cfg->listen_host, "127.0.0.1") || set_str(&cfg->state_dir, "/var/lib/hermesd") ||
	    set_str(&cfg->podman_socket, "/run/podman/podman.sock") ||
	    set_str(&cfg->podman_command, "podman") ||
	    set_str(&cfg->slurm_gpu_device, "nvidia.com/gpu=all") || set_str(&cfg->image, "localhost/hermes:latest") ||
	    set_str(&cfg->gpus_setting, "auto"))
		return -ENOMEM;
	return 0;
}

static int check(const struct config *cfg, const char *path, struct buf *err)
{
	if (cfg->ntokens == 0) {
		buf_printf(err, "%s: no token line: nobody could use the API", path);
		return -EINVAL;
	}
	if (cfg->cpu_slots == 0) {
		buf_printf(err, "%s: cpu_slots must be at least 1", path);
		return -EINVAL;
	}
	return 0;
}

int config_load(struct config *cfg, const char *path, struct buf *err)
{
	memset(cfg, 0, sizeof(*cfg));
	int r = set_defaults(cfg);
	if (r < 0)
		return r;
	FILE *f = fopen(path, "re");
	if (!f) {
		r = -errno;
		buf_printf(err, "%s: %s", path, strerror(-r));
		return r;
	}
	char line[4096];
	unsigned lineno = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			buf_printf(err, "%s:%u: expected 'key = value'", path, lineno);
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		char *key = trim(s);
		r = apply(cfg, key, trim(eq + 1));
		if (r < 0) {
			buf_printf(err, "%s:%u: %s '%s'", path, lineno,
				   r == -ENOENT ? "unknown setting" :
				   r == -EEXIST ? "duplicate token name or secret in" : "bad value for", key);
			break;
		}
	}
	fclose(f);
	if (r == 0)
		r = check(cfg, path, err);
	return r;
}

void config_free(struct config *cfg)
{
	free(cfg->listen_host);
	free(cfg->state_dir);
	free(cfg->podman_socket);
	free(cfg->podman_command);
	free(cfg->slurm_partition);
	free(cfg->slurm_gpu_device);
	free(cfg->image);
	free(cfg->gpus_setting);
	for (size_t i = 0; i < cfg->ntokens; i++) {
		free(cfg->tokens[i].name);
		free(cfg->tokens[i].secret);
	}
	free(cfg->tokens);
	memset(cfg, 0, sizeof(*cfg));
}

/* Compare every byte whatever matches, so timing does not reveal a prefix. */
static int secret_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = (unsigned char)(la != lb);
	for (size_t i = 0; i < lb; i++)
		diff |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
	return diff == 0;
}

const struct token *config_find_token(const struct config *cfg, const char *secret)
{
	const struct token *found = NULL;
	for (size_t i = 0; i < cfg->ntokens; i++)
		if (secret_equal(secret, cfg->tokens[i].secret))
			found = &cfg->tokens[i];
	return found;
}
