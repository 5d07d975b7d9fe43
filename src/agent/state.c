/* The agent's root and its state directory: creation, locking, the tracked
 * manifest and its generation, crash cleanup. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

#define MANIFEST_FILE "manifest"
#define DIRTY_FILE "dirty"
#define LOCK_FILE "lock"

/* mkdir -p for the root, so a first sync can name a new directory. */
static int mkdir_parents(const char *path)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (c == '\0')
			return 0;
	}
}

static int open_state_dir(struct agent *a)
{
	if (mkdirat(a->root_fd, STATE_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	int hfd = openat(a->root_fd, STATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (hfd < 0)
		return -errno;
	int rc = 0;
	if (mkdirat(hfd, "agent", 0700) < 0 && errno != EEXIST)
		rc = -errno;
	if (!rc) {
		a->state_fd = openat(hfd, "agent", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (a->state_fd < 0)
			rc = -errno;
	}
	close(hfd);
	return rc;
}

/* Remove temp files a crashed session left behind, anywhere under dirfd. */
static void remove_leftovers(int dirfd, bool at_root)
{
	int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup < 0 ? NULL : fdopendir(dup);
	if (!d) {
		if (dup >= 0)
			close(dup);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, "..") || (at_root && !strcmp(name, STATE_DIR)))
			continue;
		if (!strncmp(name, AGENT_TMP_PREFIX, strlen(AGENT_TMP_PREFIX))) {
			unlinkat(dirfd, name, 0);
			continue;
		}
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			remove_leftovers(sub, false);
			close(sub);
		}
	}
	closedir(d);
}

int agent_open_root(struct agent *a, struct buf *err)
{
	int rc = mkdir_parents(a->root_path);
	if (rc) {
		buf_printf(err, "cannot create %s: %s", a->root_path, strerror(-rc));
		return rc;
	}
	a->root_fd = open(a->root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (a->root_fd < 0) {
		rc = -errno;
		buf_printf(err, "cannot open %s: %s", a->root_path, strerror(-rc));
		return rc;
	}
	rc = open_state_dir(a);
	if (rc) {
		buf_printf(err, "cannot create %s/%s/agent: %s", a->root_path, STATE_DIR, strerror(-rc));
		return rc;
	}
	a->lock_fd = openat(a->state_fd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (a->lock_fd < 0 || flock(a->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = -errno;
		if (rc == -EWOULDBLOCK)
			buf_printf(err, "another hermes session is writing to %s", a->root_path);
		else
			buf_printf(err, "cannot lock %s: %s", a->root_path, strerror(-rc));
		return rc;
	}
	rc = manifest_load(&a->tracked, a->state_fd, MANIFEST_FILE);
	if (rc == -ENOENT || rc == -EBADMSG) {
		/* A new root (or unreadable state): a new identity, so clients
		 * holding an old view re-read everything. */
		if (rc == -EBADMSG)
			log_warn("%s/%s/agent/%s is damaged; starting over", a->root_path,
				 STATE_DIR, MANIFEST_FILE);
		if (getrandom(a->tracked.root_id, 16, 0) != 16) {
			rc = -errno;
			buf_printf(err, "getrandom: %s", strerror(-rc));
			return rc;
		}
		rc = 0;
	} else if (rc) {
		buf_printf(err, "cannot read %s/%s/agent/%s: %s", a->root_path, STATE_DIR,
			   MANIFEST_FILE, strerror(-rc));
		return rc;
	}
	rc = tmpnames_init(&a->names);
	if (rc) {
		buf_printf(err, "getrandom: %s", strerror(-rc));
		return rc;
	}
	if (faccessat(a->state_fd, DIRTY_FILE, F_OK, 0) == 0) {
		remove_leftovers(a->root_fd, true);
		a->dirty = true;
	}
	return 0;
}

void agent_close_root(struct agent *a)
{
	agent_file_abort(a);
	agent_writers_sync(a);
	writers_free(a->writers);
	a->writers = NULL;
	dircache_drop(&a->parents);
	if (a->lock_fd >= 0)
		close(a->lock_fd);
	if (a->state_fd >= 0)
		close(a->state_fd);
	if (a->root_fd >= 0)
		close(a->root_fd);
	a->lock_fd = a->state_fd = a->root_fd = -1;
	manifest_free(&a->tracked);
	manifest_free(&a->changes);
}

int agent_mark_dirty(struct agent *a)
{
	if (a->dirty)
		return 0;
	int fd = openat(a->state_fd, DIRTY_FILE, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	a->dirty = true;
	return 0;
}

const struct entry *agent_lookup(const struct agent *a, const char *path)
{
	for (size_t i = a->changes.n; i-- > 0;)
		if (strcmp(a->changes.v[i].path, path) == 0)
			return a->changes.v[i].type == ENTRY_NONE ? NULL : &a->changes.v[i];
	return manifest_find(&a->tracked, path);
}

int agent_record(struct agent *a, const struct entry *e)
{
	struct entry copy = *e;
	copy.flags = ENTRY_TRACKED;
	return manifest_add(&a->changes, &copy);
}

int agent_record_gone(struct agent *a, const char *path)
{
	struct entry gone = { .path = (char *)path, .type = ENTRY_NONE };
	return manifest_add(&a->changes, &gone);
}

/* Order changes by path, and by arrival for the same path. */
static int change_cmp(const void *x, const void *y, void *ctx)
{
	const struct manifest *ch = ctx;
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	int c = strcmp(ch->v[i].path, ch->v[j].path);
	return c ? c : (i < j ? -1 : i > j);
}

/* Fold this batch's changes into the tracked manifest: the last change of
 * each path wins, ENTRY_NONE removes. */
static int merge_changes(struct agent *a)
{
	struct manifest *ch = &a->changes;
	size_t *idx = malloc((ch->n + 1) * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < ch->n; i++)
		idx[i] = i;
	qsort_r(idx, ch->n, sizeof(*idx), change_cmp, ch);
	size_t sorted_n = a->tracked.n; /* entries appended below are unsorted */
	for (size_t k = 0; k < ch->n; k++) {
		struct entry *c = &ch->v[idx[k]];
		bool last = k + 1 == ch->n || strcmp(c->path, ch->v[idx[k + 1]].path) != 0;
		if (!last)
			continue;
		struct manifest sorted = a->tracked;
		sorted.n = sorted_n;
		struct entry *t = manifest_find(&sorted, c->path);
		if (t) {
			/* Replace in place (order by path is unchanged); a
			 * removal stays as ENTRY_NONE until compacted below. */
			entry_free(t);
			*t = *c;
			c->path = c->link = NULL;
		} else if (c->type != ENTRY_NONE) {
			int rc = manifest_add(&a->tracked, c);
			if (rc) {
				free(idx);
				return rc;
			}
		}
	}
	free(idx);
	manifest_compact(&a->tracked);
	manifest_sort(&a->tracked);
	manifest_free(ch);
	return 0;
}

int agent_commit(struct agent *a, struct buf *err)
{
	uint8_t id[16];
	uint64_t gen = a->tracked.generation + 1;
	memcpy(id, a->tracked.root_id, 16);
	int rc = merge_changes(a);
	if (rc) {
		buf_printf(err, "out of memory merging the manifest of %s", a->root_path);
		return rc;
	}
	memcpy(a->tracked.root_id, id, 16);
	a->tracked.generation = gen;
	rc = manifest_save(&a->tracked, a->state_fd, MANIFEST_FILE);
	if (rc) {
		buf_printf(err, "cannot save %s/%s/agent/%s: %s", a->root_path, STATE_DIR,
			   MANIFEST_FILE, strerror(-rc));
		return rc;
	}
	if (a->dirty && !a->cur.active) {
		unlinkat(a->state_fd, DIRTY_FILE, 0);
		a->dirty = false;
	}
	return 0;
}
