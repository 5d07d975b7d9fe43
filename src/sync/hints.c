#include "hints.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct hint_node {
	struct hint_node *next;
	char *path;
	bool whole;
	size_t n;                   /* ranges in use */
	struct hint_range *ranges;  /* HINTS_MAX_RANGES of room once used; owned */
};

void hints_init(struct hints *h)
{
	memset(h, 0, sizeof(*h));
}

static void node_free(struct hint_node *x)
{
	free(x->ranges);
	free(x->path);
	free(x);
}

void hints_free(struct hints *h)
{
	for (size_t i = 0; i < h->nslots; i++)
		for (struct hint_node *x = h->slots[i], *next; x; x = next) {
			next = x->next;
			node_free(x);
		}
	free(h->slots);
	hints_init(h);
}

static size_t slot_of(const char *path, size_t nslots)
{
	return (size_t)XXH3_64bits(path, strlen(path)) & (nslots - 1);
}

static struct hint_node *find(const struct hints *h, const char *path)
{
	if (!h->nslots)
		return NULL;
	for (struct hint_node *x = h->slots[slot_of(path, h->nslots)]; x; x = x->next)
		if (!strcmp(x->path, path))
			return x;
	return NULL;
}

/* Keep chains short: double the table once it holds as many paths as slots. */
static int grow(struct hints *h)
{
	if (h->count < h->nslots)
		return 0;
	size_t n = h->nslots ? h->nslots * 2 : 64;
	struct hint_node **v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < h->nslots; i++)
		for (struct hint_node *x = h->slots[i], *next; x; x = next) {
			next = x->next;
			size_t s = slot_of(x->path, n);
			x->next = v[s];
			v[s] = x;
		}
	free(h->slots);
	h->slots = v;
	h->nslots = n;
	return 0;
}

/* The node of path, made (without ranges) if new; NULL: out of memory. */
static struct hint_node *get_node(struct hints *h, const char *path)
{
	struct hint_node *x = find(h, path);
	if (x)
		return x;
	if (grow(h))
		return NULL;
	x = calloc(1, sizeof(*x));
	if (x)
		x->path = strdup(path);
	if (!x || !x->path) {
		free(x);
		return NULL;
	}
	size_t s = slot_of(path, h->nslots);
	x->next = h->slots[s];
	h->slots[s] = x;
	h->count++;
	return x;
}

static void make_whole(struct hint_node *x)
{
	x->whole = true;
	free(x->ranges);
	x->ranges = NULL;
	x->n = 0;
}

/* Merge [off, end) into x's sorted, disjoint ranges. */
static void merge(struct hint_node *x, uint64_t off, uint64_t end)
{
	struct hint_range *r = x->ranges;
	size_t i = 0, j;
	while (i < x->n && r[i].off + r[i].len < off)
		i++; /* ends before off, not touching */
	for (j = i; j < x->n && r[j].off <= end; j++) {
		uint64_t e = r[j].off + r[j].len;
		if (r[j].off < off)
			off = r[j].off;
		if (e > end)
			end = e;
	}
	/* r[i, j) overlap or touch the new range: they become one. */
	if (i == j) {
		if (x->n == HINTS_MAX_RANGES) {
			make_whole(x);
			return;
		}
		memmove(r + i + 1, r + i, (x->n - i) * sizeof(*r));
		x->n++;
	} else {
		memmove(r + i + 1, r + j, (x->n - j) * sizeof(*r));
		x->n -= j - i - 1;
	}
	r[i].off = off;
	r[i].len = end - off;
}

int hints_add(struct hints *h, const char *path, uint64_t off, uint64_t len)
{
	struct hint_node *x = get_node(h, path);
	if (!x)
		return -ENOMEM;
	if (x->whole || len == 0)
		return 0;
	if (!x->ranges) {
		x->ranges = malloc(HINTS_MAX_RANGES * sizeof(*x->ranges));
		if (!x->ranges) {
			make_whole(x);
			return -ENOMEM;
		}
	}
	uint64_t end = off + len < off ? UINT64_MAX : off + len;
	merge(x, off, end);
	return 0;
}

int hints_whole(struct hints *h, const char *path)
{
	struct hint_node *x = get_node(h, path);
	if (!x)
		return -ENOMEM;
	make_whole(x);
	return 0;
}

const struct hint_range *hints_get(const struct hints *h, const char *path, size_t *n)
{
	static const struct hint_range none[1];
	const struct hint_node *x = find(h, path);
	if (!x || x->whole)
		return NULL;
	*n = x->n;
	return x->ranges ? x->ranges : none;
}
