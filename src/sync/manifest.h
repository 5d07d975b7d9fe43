/* manifest: what a tree holds, entry by entry, and how to scan, store and
 * compare it.
 *
 * An entry names a path relative to the root, its type, permission bits,
 * size, mtime and the XXH3-128 of its content (of the target text for a
 * symlink; zero for a directory). Entries also carry the stat identity
 * (inode, ctime) seen when the hash was computed, so a later scan re-hashes
 * only files whose identity changed: content equality is always by hash,
 * the stat identity only decides whether the hash must be recomputed.
 *
 * A manifest owns its entries and keeps them sorted by path (strcmp order)
 * once manifest_sort() has run; lookups need that order. Errors are -errno;
 * messages for the user go into a struct buf and name the path.
 */
#ifndef HERMES_MANIFEST_H
#define HERMES_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"

enum entry_type { ENTRY_NONE = 0, ENTRY_FILE = 1, ENTRY_DIR = 2, ENTRY_SYMLINK = 3 };

#define ENTRY_TRACKED 0x1 /* the agent holds it because a client sent it */
#define ENTRY_RACY 0x2    /* modified too close to hashing: re-hash next time */
#define ENTRY_IGNORED 0x4 /* present locally but excluded by ignore rules */
#define ENTRY_UNHASHED 0x8 /* hash not computed yet (scan with defer_hash) */

struct entry {
	char *path; /* owned */
	char *link; /* symlink target, owned; NULL otherwise */
	uint8_t type;
	uint8_t flags;
	uint32_t mode; /* permission bits (07777) */
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns; /* 0: not recorded (identity then rests on size, mtime, inode) */
	uint64_t ino;
	uint8_t hash[16];
};

struct manifest {
	struct entry *v;
	size_t n, cap;
	uint8_t root_id[16]; /* which agent root this describes (remote manifests) */
	uint64_t generation; /* that root's generation when it was true */
};

void manifest_init(struct manifest *m);
void manifest_free(struct manifest *m);
/* Append a copy of e (path and link duplicated). */
int manifest_add(struct manifest *m, const struct entry *e);
void manifest_sort(struct manifest *m);
/* Binary search in a sorted manifest; NULL if absent. */
struct entry *manifest_find(const struct manifest *m, const char *path);
/* Remove entries whose type is ENTRY_NONE (keeps order). */
void manifest_compact(struct manifest *m);
void entry_free(struct entry *e);
int entry_copy(struct entry *dst, const struct entry *src);

struct scan_options {
	bool use_ignore_files; /* honour .gitignore / .hermesignore */
	bool include_vcs;      /* descend into .git */
	const struct manifest *hash_cache; /* sorted; reuse hashes whose stat identity matches */
	bool defer_hash;       /* leave files the cache cannot answer ENTRY_UNHASHED */
};

struct scan_stats {
	uint64_t entries;
	uint64_t files;
	uint64_t hashed_bytes;
};

/* Walk the tree under root_fd into m (sorted on return). Never follows
 * symlinks; skips the root's ".hermes" directory, temp files of the agent,
 * and anything but regular files, directories and symlinks. Paths excluded
 * by ignore rules are not descended into; when record_ignored is set they are
 * still added, with ENTRY_IGNORED and no hash, so callers can tell "ignored"
 * from "deleted". Unreadable files fail the scan with err naming them. */
int manifest_scan(int root_fd, const struct scan_options *o, bool record_ignored,
		  struct manifest *m, struct scan_stats *st, struct buf *err);

/* The same for the subtree under directory `dir` only (not dir itself),
 * with the ignore rules of the directories above it applied as a walk from
 * the root would. Nothing is listed if dir itself is excluded. */
int manifest_scan_under(int root_fd, const char *dir, const struct scan_options *o,
			bool record_ignored, struct manifest *m, struct scan_stats *st,
			struct buf *err);
/* 1 if `path` is excluded (by ignore rules, .git, .hermes, temp names),
 * itself or through a directory above it; 0 if not; -errno on failure. */
int manifest_path_ignored(int root_fd, const char *path, bool is_dir,
			  const struct scan_options *o);

/* lstat + hash one path beneath root_fd into e (e->path must be set).
 * Reuses `cached`'s hash when its stat identity matches. A missing path
 * gives type ENTRY_NONE and returns 0. */
int entry_refresh(int root_fd, struct entry *e, const struct entry *cached);

/* Type, permission bits, size, times and inode from a stat result. */
struct stat;
void entry_set_stat(struct entry *e, const struct stat *st);

/* XXH3-128 of a file's content as the canonical 16 bytes. */
int hash_fd(int fd, uint8_t out[16], uint64_t *size_out);
void hash_mem(const void *p, size_t n, uint8_t out[16]);

/* Wire form of an entry (MSG_ENTRY payload). */
void entry_encode(struct enc *e, const struct entry *en);
int entry_decode(struct dec *d, struct entry *en);

/* Store / load a manifest file atomically (temp file + rename).
 * Loading a missing file gives an empty manifest and returns -ENOENT. */
int manifest_save(const struct manifest *m, int dirfd, const char *name);
int manifest_load(struct manifest *m, int dirfd, const char *name);

/* True if both describe the same content and permission bits. */
bool entry_same_content(const struct entry *a, const struct entry *b);

#define AGENT_TMP_PREFIX ".hermes-tmp."
#define STATE_DIR ".hermes"

#endif
