#include "jobspec.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void jobspec_free(struct jobspec *spec)
{
	free(spec->command);
	free(spec->image);
	for (size_t i = 0; i < spec->nenv; i++)
		free(spec->env[i]);
	free(spec->env);
	memset(spec, 0, sizeof(*spec));
}

static int get_u64(json_object *o, const char *key, uint64_t max, uint64_t *out, struct buf *err)
{
	errno = 0;
	int64_t v = json_object_get_int64(o);
	if (!json_object_is_type(o, json_type_int) || errno || v < 0 || (uint64_t)v > max) {
		buf_printf(err, "job: '%s' must be an integer from 0 to %llu", key,
			   (unsigned long long)max);
		return -EINVAL;
	}
	*out = (uint64_t)v;
	return 0;
}

static bool env_name_ok(const char *k)
{
	if (!*k || isdigit((unsigned char)*k))
		return false;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_')
			return false;
	return true;
}

static int parse_env(json_object *o, struct jobspec *s, struct buf *err)
{
	if (!json_object_is_type(o, json_type_object)) {
		buf_printf(err, "job: 'env' must be an object of strings");
		return -EINVAL;
	}
	size_t n = (size_t)json_object_object_length(o);
	s->env = calloc(n ? n : 1, sizeof(char *));
	if (!s->env)
		return -ENOMEM;
	json_object_object_foreach(o, k, v) {
		if (!env_name_ok(k) || !json_object_is_type(v, json_type_string)) {
			buf_printf(err, "job: env '%s' needs a NAME made of [A-Za-z0-9_] and a string value", k);
			return -EINVAL;
		}
		struct buf e = BUF_INIT;
		if (buf_printf(&e, "%s=%s", k, json_object_get_string(v)) < 0 ||
		    buf_append(&e, "", 1) < 0) {
			buf_free(&e);
			return -ENOMEM;
		}
		s->env[s->nenv++] = (char *)e.data;
	}
	return 0;
}

static int parse_limits(json_object *o, struct jobspec *s, struct buf *err)
{
	if (!json_object_is_type(o, json_type_object)) {
		buf_printf(err, "job: 'limits' must be an object");
		return -EINVAL;
	}
	json_object_object_foreach(o, k, v) {
		uint64_t x = 0;
		int r;
		if (!strcmp(k, "wall_time_s")) {
			r = get_u64(v, k, 1u << 30, &x, err);
			s->wall_time_s = (unsigned)x;
		} else if (!strcmp(k, "memory_bytes")) {
			r = get_u64(v, k, INT64_MAX, &x, err);
			s->memory_bytes = x;
		} else if (!strcmp(k, "pids")) {
			r = get_u64(v, k, 1u << 22, &x, err);
			s->pids = (unsigned)x;
		} else if (!strcmp(k, "output_bytes")) {
			r = get_u64(v, k, INT64_MAX, &x, err);
			s->output_bytes = x;
		} else {
			buf_printf(err, "job: unknown limit '%s'", k);
			r = -EINVAL;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_string(json_object *v, const char *key, char **out, struct buf *err)
{
	if (!json_object_is_type(v, json_type_string) || !*json_object_get_string(v)) {
		buf_printf(err, "job: '%s' must be a non-empty string", key);
		return -EINVAL;
	}
	free(*out);
	*out = strdup(json_object_get_string(v));
	return *out ? 0 : -ENOMEM;
}

static int parse_obj(json_object *root, struct jobspec *s, struct buf *err)
{
	json_object_object_foreach(root, k, v) {
		int r;
		uint64_t x = 0;
		if (!strcmp(k, "command"))
			r = parse_string(v, k, &s->command, err);
		else if (!strcmp(k, "image"))
			r = parse_string(v, k, &s->image, err);
		else if (!strcmp(k, "gpus"))
			r = get_u64(v, k, 64, &x, err);
		else if (!strcmp(k, "env"))
			r = parse_env(v, s, err);
		else if (!strcmp(k, "limits"))
			r = parse_limits(v, s, err);
		else {
			buf_printf(err, "job: unknown key '%s'", k);
			r = -EINVAL;
		}
		if (r < 0)
			return r;
		if (!strcmp(k, "gpus"))
			s->gpus = (unsigned)x;
	}
	return 0;
}

int jobspec_parse(const char *json, const char *default_image, unsigned max_wall_time_s,
		  struct jobspec *out, struct buf *err)
{
	memset(out, 0, sizeof(*out));
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_object *root = json_tokener_parse_ex(tok, json, (int)strlen(json));
	int r = 0;
	if (!root || json_tokener_get_parse_end(tok) != strlen(json)) {
		buf_printf(err, "job: not valid JSON: %s",
			   json_tokener_error_desc(json_tokener_get_error(tok)));
		r = -EINVAL;
	} else if (!json_object_is_type(root, json_type_object)) {
		buf_printf(err, "job: expected a JSON object");
		r = -EINVAL;
	} else {
		r = parse_obj(root, out, err);
	}
	json_object_put(root);
	json_tokener_free(tok);
	if (r == 0 && !out->command) {
		buf_printf(err, "job: 'command' is required");
		r = -EINVAL;
	}
	if (r == 0 && !out->image && !(out->image = strdup(default_image)))
		r = -ENOMEM;
	if (r == 0 && (out->wall_time_s == 0 || out->wall_time_s > max_wall_time_s))
		out->wall_time_s = max_wall_time_s;
	if (r < 0)
		jobspec_free(out);
	return r;
}

int jobspec_to_json(const struct jobspec *spec, struct buf *out)
{
	json_object *o = json_object_new_object(), *env = json_object_new_object(),
		    *lim = json_object_new_object();
	if (!o || !env || !lim) {
		json_object_put(o);
		json_object_put(env);
		json_object_put(lim);
		return -ENOMEM;
	}
	json_object_object_add(o, "command", json_object_new_string(spec->command));
	json_object_object_add(o, "image", json_object_new_string(spec->image));
	json_object_object_add(o, "gpus", json_object_new_int((int)spec->gpus));
	for (size_t i = 0; i < spec->nenv; i++) {
		char *eq = strchr(spec->env[i], '=');
		char *name = strndup(spec->env[i], (size_t)(eq - spec->env[i]));
		if (name)
			json_object_object_add(env, name, json_object_new_string(eq + 1));
		free(name);
	}
	json_object_object_add(o, "env", env);
	json_object_object_add(lim, "wall_time_s", json_object_new_int64(spec->wall_time_s));
	json_object_object_add(lim, "memory_bytes", json_object_new_int64((int64_t)spec->memory_bytes));
	json_object_object_add(lim, "pids", json_object_new_int64(spec->pids));
	json_object_object_add(lim, "output_bytes", json_object_new_int64((int64_t)spec->output_bytes));
	json_object_object_add(o, "limits", lim);
	int r = buf_append_str(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return r;
}
