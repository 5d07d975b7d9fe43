#include "gpu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

void gpu_set_free(struct gpu_set *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->ids[i]);
	free(g->ids);
	g->ids = NULL;
	g->n = 0;
}

static int add_id(struct gpu_set *g, const char *id, size_t len)
{
	char **v = realloc(g->ids, (g->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	g->ids = v;
	if (!(v[g->n] = strndup(id, len)))
		return -ENOMEM;
	g->n++;
	return 0;
}

int gpu_set_init(struct gpu_set *g, const char *setting, struct buf *err)
{
	memset(g, 0, sizeof(*g));
	if (!strcmp(setting, "none"))
		return 0;
	if (!strcmp(setting, "auto")) {
		struct gpu_stat *st = NULL;
		size_t n = 0;
		int r = gpu_query(&st, &n, err);
		for (size_t i = 0; r == 0 && i < n; i++)
			r = add_id(g, st[i].index, strlen(st[i].index));
		free(st);
		return r;
	}
	for (const char *p = setting; *p;) {
		size_t len = strspn(p, "0123456789");
		if (len == 0 || (p[len] && p[len] != ',')) {
			buf_printf(err, "gpus = %s: expected auto, none or indices like 0,1", setting);
			gpu_set_free(g);
			return -EINVAL;
		}
		int r = add_id(g, p, len);
		if (r < 0)
			return r;
		p += len + (p[len] == ',');
	}
	return 0;
}

/* One CSV line: index, name, utilization.gpu [%], memory.used [MiB], memory.total [MiB] */
static int parse_line(char *line, struct gpu_stat *s)
{
	char *f[5];
	char *save = NULL;
	for (int i = 0; i < 5; i++) {
		f[i] = strtok_r(i ? NULL : line, ",", &save);
		if (!f[i])
			return -EINVAL;
		while (*f[i] == ' ')
			f[i]++;
	}
	memset(s, 0, sizeof(*s));
	snprintf(s->index, sizeof(s->index), "%s", f[0]);
	snprintf(s->name, sizeof(s->name), "%s", f[1]);
	s->utilization = strtod(f[2], NULL) / 100.0;
	s->memory_used = strtoull(f[3], NULL, 10) << 20;
	s->memory_total = strtoull(f[4], NULL, 10) << 20;
	return 0;
}

int gpu_query(struct gpu_stat **out, size_t *n, struct buf *err)
{
	*out = NULL;
	*n = 0;
	char *argv[] = { "nvidia-smi",
			 "--query-gpu=index,name,utilization.gpu,memory.used,memory.total",
			 "--format=csv,noheader,nounits", NULL };
	struct buf o = BUF_INIT, e = BUF_INIT;
	int rc = proc_run(argv, &o, &e);
	int r = 0;
	if (rc == -ENOENT) {
		r = 0; /* no NVIDIA driver here: no GPU, not an error */
	} else if (rc != 0 || buf_append(&o, "", 1) < 0) {
		buf_printf(err, "nvidia-smi failed (status %d): %.*s", rc, (int)e.len, (char *)e.data);
		r = -EIO;
	} else {
		char *save = NULL;
		for (char *l = strtok_r((char *)o.data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			struct gpu_stat *v = realloc(*out, (*n + 1) * sizeof(*v));
			if (!v) {
				r = -ENOMEM;
				break;
			}
			*out = v;
			if (parse_line(l, &v[*n]) == 0)
				(*n)++;
		}
	}
	buf_free(&o);
	buf_free(&e);
	return r;
}
