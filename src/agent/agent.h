/* agent: the remote side of Hermes. It owns one root directory.
 *
 * Every path it is sent is relative and checked (path_check), and every
 * file-system operation resolves it beneath the root with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a symlink inside the root can
 * never lead an operation outside it. Files are written to a temp file in
 * the target's directory and renamed into place, so readers on the host
 * never see half a file. State lives in ROOT/.hermes/agent/: the manifest of
 * tracked entries (what clients have put here) with its generation, a lock
 * held for the session, and a "dirty" marker present while changes are being
 * applied; if it survives a crash, the next session removes leftover temp
 * files before doing anything else.
 *
 * Session states: OPENED (after MSG_OPEN) -> APPLYING (first change) ->
 * OPENED (MSG_COMMIT saves the manifest, generation + 1). A fatal error
 * (disk full, read-only, I/O error) puts the session in FAILED: further
 * changes are skipped until the next COMMIT, which reports the count.
 */
#ifndef HERMES_AGENT_H
#define HERMES_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <xxhash.h>

#include "fsops.h"
#include "manifest.h"
#include "wire.h"
#include "writers.h"

#define AGENT_MAX_REPORTED_ERRORS 64
#define AGENT_WRITER_THREADS 8

struct agent_file {
	bool active;
	char path[PATH_MAX];
	int dirfd;            /* parent directory (borrowed from the parent cache) */
	char tmpname[64];
	int fd;               /* temp file being written (owned), -1 if none */
	int basis_fd;         /* old version for delta, -1 if none */
	uint64_t basis_size;
	uint32_t block_len;
	struct entry want;    /* size, mode, mtime, hash the client announced */
	XXH3_state_t *hs;
	uint64_t written;
	int err;              /* first error for this file; the rest of it is skipped */
};

struct agent {
	struct wire w;
	const char *root_path; /* as given on the command line */
	int root_fd;
	int state_fd;          /* ROOT/.hermes/agent */
	int lock_fd;
	bool opened;
	bool dirty;            /* the dirty marker exists */
	bool failed;           /* a fatal error happened since the last COMMIT */
	bool include_vcs;
	struct manifest tracked; /* sorted; the entries clients put here */
	struct manifest changes; /* this batch, in order; merged at COMMIT */
	unsigned errors;         /* since the last COMMIT */
	unsigned errors_sent;
	struct dircache parents; /* the main thread's last parent directory */
	struct tmpnames names;
	struct writers *writers; /* installs inline files in parallel; NULL until needed */
	struct agent_file cur;
};

/* state.c */
int agent_open_root(struct agent *a, struct buf *err);
void agent_close_root(struct agent *a);
int agent_mark_dirty(struct agent *a);
int agent_commit(struct agent *a, struct buf *err);
/* Latest known state of path: this batch's change if any, else tracked. */
const struct entry *agent_lookup(const struct agent *a, const char *path);
int agent_record(struct agent *a, const struct entry *e);
int agent_record_gone(struct agent *a, const char *path);

/* apply.c: each returns 0, or -errno after reporting the error to the client. */
int agent_apply(struct agent *a, const struct frame *f);
int agent_open_beneath(struct agent *a, const char *path, int flags);
void agent_file_abort(struct agent *a);
/* Wait for the writer threads and account for what they installed. */
void agent_writers_sync(struct agent *a);
int agent_report(struct agent *a, int errnum, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
