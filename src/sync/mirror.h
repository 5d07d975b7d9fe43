/* mirror: keeps a destination in step with a local tree, continuously.
 *
 * Whoever watches the tree (the FUSE layer) reports changed paths with
 * mirror_changed(), or the byte ranges written to a file with
 * mirror_written(); both only append to a list, so a writer never waits on
 * the network. A background thread pushes them in batches over one sync
 * session, coalescing bursts (a save that writes, renames and chmods is one
 * batch); a file known only by its written ranges travels as those blocks,
 * without a signature round trip (hints.h).
 *
 *   CONNECTING --(session open: full reconcile)--> IDLE <--> SYNCING
 *        ^                                           |         |
 *        +------ OFFLINE (backoff 0.1 s .. 5 s) <-----+---------+ on failure
 *
 * Invariants: (1) every change noted before a successful session open or
 * push is on the host once `synced` passes its number; (2) a failed push
 * keeps its paths for the next attempt; (3) opening a session reconciles the
 * whole tree, so changes noted while offline are caught up too (and only
 * what differs travels).
 *
 * The session's state files (LOCALDIR/.hermes/state) are written after a
 * second without pushes and at stop, not after each push, so a barrier is
 * released as soon as the agent acknowledges; a process killed before that
 * makes its next session's exchange a full one, never a wrong one.
 */
#ifndef HERMES_MIRROR_H
#define HERMES_MIRROR_H

#include <stdint.h>

#include "buf.h"
#include "client.h"

struct transport;

struct mirror_config {
	struct sync_options so; /* strings must outlive the mirror */
	const char *dest;       /* as the user wrote it, for status */
	/* Open a new transport to the agent. 0 or -errno with err set. */
	int (*connect)(void *ctx, struct transport **t, struct buf *err);
	void *ctx;
};

struct mirror;

/* Starts the background thread, which connects on its own. */
int mirror_start(const struct mirror_config *cfg, struct mirror **out);
/* Note a changed path (relative to the local root): anything about it may
 * have changed (also after a mirror_written of it, until the next push).
 * Thread-safe, never blocks on the network. */
void mirror_changed(struct mirror *m, const char *path);
/* Note that bytes [off, off + len) of file path were written (len 0: only
 * its times changed), and nothing else about it, unless mirror_changed says
 * so too: the push then sends those blocks without asking the host for a
 * signature of the file (see hints.h). Thread-safe, never blocks. */
void mirror_written(struct mirror *m, const char *path, uint64_t off, uint64_t len);
/* Wait until every change noted before this call is on the host, at most
 * timeout_ms. Returns the generation reached (>= 0), or -ETIMEDOUT. */
int64_t mirror_flush(struct mirror *m, int timeout_ms);
/* Human-readable state for .hermes/sync. */
void mirror_status(struct mirror *m, struct buf *out);
/* Flush (at most timeout_ms), stop the thread, close the session. Returns 0,
 * or -ETIMEDOUT if changes were left unsent (a warning was printed). */
int mirror_stop(struct mirror *m, int timeout_ms);

#endif
