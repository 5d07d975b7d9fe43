/* cdi: CDI spec lookup; see cdi.h. */
#include "cdi.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_DIRS "/etc/cdi:/var/run/cdi"

/* What one spec file says: its kind, its device names, and the device
 * nodes of each device ("" for the nodes every device gets). */
struct cdi_model {
	char kind[1024]; /* sized like a YAML line: nothing is cut */
	struct buf names; /* NUL-separated device names */
	struct buf nodes; /* pairs "DEVICE\0PATH\0" */
};

static void model_free(struct cdi_model *m)
{
	buf_free(&m->names);
	buf_free(&m->nodes);
}

static void add_node(struct cdi_model *m, const char *dev, const char *path)
{
	buf_append(&m->nodes, dev, strlen(dev) + 1);
	buf_append(&m->nodes, path, strlen(path) + 1);
}

/* ---- JSON specs ---- */

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static void json_nodes(struct cdi_model *m, const char *dev, json_object *edits)
{
	json_object *nodes;
	if (!edits || !json_object_object_get_ex(edits, "deviceNodes", &nodes))
		return;
	for (size_t i = 0; i < json_object_array_length(nodes); i++) {
		json_object *n = json_object_array_get_idx(nodes, i);
		const char *p = jstr(n, "hostPath") ? jstr(n, "hostPath") : jstr(n, "path");
		if (p)
			add_node(m, dev, p);
	}
}

static int load_json(const char *file, struct cdi_model *m)
{
	json_object *o = json_object_from_file(file), *devs, *edits;
	if (!o)
		return -EINVAL;
	snprintf(m->kind, sizeof(m->kind), "%s", jstr(o, "kind") ? jstr(o, "kind") : "");
	if (json_object_object_get_ex(o, "devices", &devs)) {
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			json_object *d = json_object_array_get_idx(devs, i);
			const char *name = jstr(d, "name");
			if (!name)
				continue;
			buf_append(&m->names, name, strlen(name) + 1);
			json_nodes(m, name, json_object_object_get_ex(d, "containerEdits", &edits)
						    ? edits : NULL);
		}
	}
	json_nodes(m, "", json_object_object_get_ex(o, "containerEdits", &edits) ? edits : NULL);
	json_object_put(o);
	return 0;
}

/* ---- YAML specs (line-based: the block style nvidia-ctk writes) ---- */

struct yaml_state {
	/* sized like a line (fgets below), so no value is ever cut */
	char section[1024]; /* current top-level key */
	char device[1024];  /* current device name in "devices" */
	int nodes_indent;   /* indent of "deviceNodes:", -1 outside */
	char pending[1024]; /* path of the node item being read */
};

static void strip_value(char *v)
{
	size_t n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\r'))
		v[--n] = '\0';
	if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
		memmove(v, v + 1, n - 2);
		v[n - 2] = '\0';
	}
}

static void flush_pending(struct cdi_model *m, struct yaml_state *st)
{
	if (st->pending[0])
		add_node(m, strcmp(st->section, "devices") == 0 ? st->device : "", st->pending);
	st->pending[0] = '\0';
}

static void yaml_line(struct cdi_model *m, struct yaml_state *st, char *line)
{
	int indent = 0;
	while (line[indent] == ' ')
		indent++;
	char *s = line + indent;
	if (!*s || *s == '#' || *s == '\n')
		return;
	bool item = s[0] == '-' && (s[1] == ' ' || s[1] == '\n' || !s[1]);
	if (item)
		s += s[1] ? 2 : 1;
	char *colon = strchr(s, ':');
	char *key = s, *val = colon ? colon + 1 : s + strlen(s);
	if (colon)
		*colon = '\0';
	while (*val == ' ')
		val++;
	val[strcspn(val, "\n")] = '\0';
	strip_value(val);
	if (st->nodes_indent >= 0 && (indent < st->nodes_indent ||
				      (indent == st->nodes_indent && !item))) {
		flush_pending(m, st);
		st->nodes_indent = -1;
	}
	if (st->nodes_indent >= 0) {
		if (item)
			flush_pending(m, st);
		if (strcmp(key, "hostPath") == 0 || (strcmp(key, "path") == 0 && !st->pending[0]))
			snprintf(st->pending, sizeof(st->pending), "%s", val);
		return;
	}
	if (indent == 0 && !item) {
		snprintf(st->section, sizeof(st->section), "%s", key);
		st->device[0] = '\0';
		if (strcmp(key, "kind") == 0)
			snprintf(m->kind, sizeof(m->kind), "%s", val);
	} else if (strcmp(key, "deviceNodes") == 0) {
		st->nodes_indent = indent;
	} else if (strcmp(st->section, "devices") == 0 && strcmp(key, "name") == 0) {
		snprintf(st->device, sizeof(st->device), "%s", val);
		buf_append(&m->names, val, strlen(val) + 1);
	}
}

static int load_yaml(const char *file, struct cdi_model *m)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return -errno;
	struct yaml_state st = { .nodes_indent = -1 };
	char line[1024];
	while (fgets(line, sizeof(line), f))
		yaml_line(m, &st, line);
	flush_pending(m, &st);
	fclose(f);
	return 0;
}

/* ---- the check ---- */

struct query {
	const char *kind, *name;
	bool kind_found, name_found;
	char spec_file[512];
	char missing[1024];
	struct buf seen; /* device names of the kind, space-separated, for the message */
};

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);
	return n >= k && strcmp(s + n - k, suf) == 0;
}

/* Nodes of device dev ("" = common) that are missing on this host. */
static void check_nodes(struct query *q, const struct cdi_model *m, const char *dev)
{
	const char *p = (const char *)m->nodes.data, *end = p + m->nodes.len;
	while (p < end && !q->missing[0]) {
		const char *d = p, *path = p + strlen(p) + 1;
		p = path + strlen(path) + 1;
		if (strcmp(d, dev) == 0 && access(path, F_OK) != 0)
			snprintf(q->missing, sizeof(q->missing), "%s", path);
	}
}

static void match_model(struct query *q, const struct cdi_model *m, const char *file)
{
	if (strcmp(m->kind, q->kind) != 0)
		return;
	q->kind_found = true;
	bool any = false;
	const char *n = (const char *)m->names.data, *end = n + m->names.len;
	for (; n < end; n += strlen(n) + 1) {
		buf_printf(&q->seen, "%s%s", q->seen.len ? " " : "", n);
		if (strcmp(q->name, "all") != 0 && strcmp(q->name, n) != 0)
			continue;
		any = true;
		check_nodes(q, m, n);
	}
	if (any) {
		q->name_found = true;
		check_nodes(q, m, "");
	}
	if (!q->spec_file[0] || any)
		snprintf(q->spec_file, sizeof(q->spec_file), "%s", file);
}

static void scan_dir(struct query *q, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return; /* a missing spec dir is the same as an empty one */
	struct dirent *e;
	while ((e = readdir(d))) {
		bool json = has_suffix(e->d_name, ".json");
		if (!json && !has_suffix(e->d_name, ".yaml") && !has_suffix(e->d_name, ".yml"))
			continue;
		char file[512];
		if ((size_t)snprintf(file, sizeof(file), "%s/%s", dir, e->d_name) >= sizeof(file))
			continue;
		struct cdi_model m = { .names = BUF_INIT, .nodes = BUF_INIT };
		if ((json ? load_json(file, &m) : load_yaml(file, &m)) == 0)
			match_model(q, &m, file);
		model_free(&m);
	}
	closedir(d);
}

static void describe_dirs(struct buf *err, const char *dirs)
{
	/* "/etc/cdi or /var/run/cdi" */
	for (const char *p = dirs; *p;) {
		size_t n = strcspn(p, ":");
		buf_printf(err, "%s%.*s", p == dirs ? "" : " or ", (int)n, p);
		p += n + (p[n] == ':');
	}
}

static int report(struct query *q, const char *device, const char *dirs, struct buf *err)
{
	const char *what = strncmp(q->kind, "nvidia.com/", 11) == 0 ? "nvidia device" : "device";
	if (!q->kind_found) {
		buf_printf(err, "no CDI spec for %s in ", q->kind);
		describe_dirs(err, dirs);
		if (strcmp(q->kind, "nvidia.com/gpu") == 0)
			buf_printf(err, access("/dev/nvidia0", F_OK) == 0
				   ? " (the host has /dev/nvidia0: create one with `nvidia-ctk cdi "
				     "generate --output=/etc/cdi/nvidia.yaml`)"
				   : ", and no nvidia device: /dev/nvidia0 missing");
		return -ENODEV;
	}
	if (!q->name_found) {
		buf_printf(err, "no CDI device %s in %s (it names: %s)", device, q->spec_file,
			   q->seen.len ? (char *)q->seen.data : "none");
		return -ENODEV;
	}
	buf_printf(err, "no %s: %s missing (named by %s for %s)", what, q->missing, q->spec_file,
		   device);
	return -ENODEV;
}

int cdi_check(const char *device, struct buf *err)
{
	const char *eq = strchr(device, '=');
	if (!eq || eq == device || !eq[1]) {
		buf_printf(err, "GPU device '%s': not a CDI name like nvidia.com/gpu=all", device);
		return -EINVAL;
	}
	char kind[128];
	snprintf(kind, sizeof(kind), "%.*s", (int)(eq - device), device);
	struct query q = { .kind = kind, .name = eq + 1, .seen = BUF_INIT };
	const char *dirs = getenv("HERMES_CDI_DIR");
	if (!dirs || !*dirs)
		dirs = DEFAULT_DIRS;
	char *copy = strdup(dirs);
	if (!copy)
		return -ENOMEM;
	for (char *save = NULL, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
		scan_dir(&q, d);
	free(copy);
	int rc = q.kind_found && q.name_found && !q.missing[0] ? 0 : report(&q, device, dirs, err);
	buf_free(&q.seen);
	return rc;
}
