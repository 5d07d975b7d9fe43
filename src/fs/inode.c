/* inode.c: the table of real inodes the kernel knows, keyed by
 * (st_dev, st_ino), with chained buckets that double when full.
 *
 * A backing inode cannot be freed (and its number reused) while its entry
 * exists, because the entry's O_PATH descriptor pins it; so a (dev, ino)
 * found here is always the same file.
 */
#include "hfs.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define HFS_TABLE_MIN 1024

static size_t hfs_hash(dev_t dev, ino_t ino)
{
	uint64_t x = (uint64_t)ino ^ ((uint64_t)dev * 0x9e3779b97f4a7c15ULL);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x;
}

int hfs_table_init(struct hfs_table *t)
{
	t->slots = calloc(HFS_TABLE_MIN, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->nslots = HFS_TABLE_MIN;
	t->count = 0;
	int rc = pthread_mutex_init(&t->lock, NULL);
	if (rc) {
		free(t->slots);
		t->slots = NULL;
		return -rc;
	}
	return 0;
}

void hfs_table_destroy(struct hfs_table *t)
{
	for (size_t i = 0; i < t->nslots; i++) {
		struct hfs_inode *in = t->slots[i];
		while (in) {
			struct hfs_inode *next = in->hnext;
			close(in->fd);
			free(in);
			in = next;
		}
	}
	free(t->slots);
	t->slots = NULL;
	t->nslots = t->count = 0;
	pthread_mutex_destroy(&t->lock);
}

/* Double the bucket array; on allocation failure the chains just get longer. */
static void hfs_table_grow(struct hfs_table *t)
{
	size_t n = t->nslots * 2;
	struct hfs_inode **slots = calloc(n, sizeof(*slots));
	if (!slots)
		return;
	for (size_t i = 0; i < t->nslots; i++) {
		struct hfs_inode *in = t->slots[i];
		while (in) {
			struct hfs_inode *next = in->hnext;
			size_t b = hfs_hash(in->dev, in->ino) & (n - 1);
			in->hnext = slots[b];
			slots[b] = in;
			in = next;
		}
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = n;
}

static struct hfs_inode **hfs_table_slot(struct hfs_table *t, dev_t dev, ino_t ino)
{
	struct hfs_inode **p = &t->slots[hfs_hash(dev, ino) & (t->nslots - 1)];
	while (*p && ((*p)->dev != dev || (*p)->ino != ino))
		p = &(*p)->hnext;
	return p;
}

int hfs_table_intern(struct hfs_table *t, const struct stat *st, int fd,
		     struct hfs_inode **out)
{
	/* Allocated before locking: most lookups of a new name are new inodes. */
	struct hfs_inode *fresh = calloc(1, sizeof(*fresh));

	pthread_mutex_lock(&t->lock);
	struct hfs_inode **p = hfs_table_slot(t, st->st_dev, st->st_ino);
	struct hfs_inode *in = *p;
	if (in) {
		in->refs++;
		pthread_mutex_unlock(&t->lock);
		free(fresh);
		close(fd);
		*out = in;
		return 0;
	}
	if (!fresh) {
		pthread_mutex_unlock(&t->lock);
		close(fd);
		return -ENOMEM;
	}
	fresh->dev = st->st_dev;
	fresh->ino = st->st_ino;
	fresh->fd = fd;
	fresh->kind = HFS_REAL;
	fresh->refs = 1;
	*p = fresh;
	if (++t->count > t->nslots)
		hfs_table_grow(t);
	pthread_mutex_unlock(&t->lock);
	*out = fresh;
	return 0;
}

fuse_ino_t hfs_table_find_id(struct hfs_table *t, dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&t->lock);
	struct hfs_inode *in = *hfs_table_slot(t, dev, ino);
	pthread_mutex_unlock(&t->lock);
	return (fuse_ino_t)(uintptr_t)in;
}

void hfs_inode_ref(struct hfs *h, struct hfs_inode *in)
{
	if (in->kind != HFS_REAL || in == &h->root)
		return;
	pthread_mutex_lock(&h->table.lock);
	in->refs++;
	pthread_mutex_unlock(&h->table.lock);
}

void hfs_inode_unref(struct hfs *h, struct hfs_inode *in, uint64_t n)
{
	struct hfs_table *t = &h->table;

	if (in->kind != HFS_REAL || in == &h->root)
		return;
	pthread_mutex_lock(&t->lock);
	if (in->refs < n) {
		/* The kernel forgot more than we were told of: a bug, but
		 * freeing early would be worse than leaking. */
		fuse_log(FUSE_LOG_ERR, "hermes: inode %llu: forget %llu > refs %llu\n",
			 (unsigned long long)in->ino, (unsigned long long)n,
			 (unsigned long long)in->refs);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	in->refs -= n;
	if (in->refs) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	struct hfs_inode **p = hfs_table_slot(t, in->dev, in->ino);
	if (*p == in)
		*p = in->hnext;
	t->count--;
	pthread_mutex_unlock(&t->lock);
	close(in->fd);
	free(in);
}
