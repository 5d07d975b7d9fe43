/* client: one sync of a local directory to a hermes-agent.
 *
 * The session, from the client's side:
 *   handshake -> HELLO + OPEN(cached root id, generation) -> [scan the local
 *   tree while the agent answers] -> OPENED (+ entries: drift since our
 *   generation, or everything) -> plan -> SIGREQ batches for delta candidates
 *   -> one pipelined stream of changes -> COMMIT -> COMMITTED -> resend, whole,
 *   files whose delta did not verify -> save state.
 * A push with byte-range hints (sync_session_push_hinted) skips the SIGREQ
 * for hinted files: their deltas are built from the ranges alone.
 * The client keeps its state in LOCALDIR/.hermes/state/: a stat->hash cache
 * of the local tree, and per destination the manifest the agent holds as of
 * its last acknowledged generation, which makes the next exchange
 * incremental. Any failure removes the latter, so the next run re-reads the
 * remote side in full instead of trusting a view that may be wrong.
 */
#ifndef HERMES_CLIENT_H
#define HERMES_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

struct hints;
struct transport;

struct sync_options {
	const char *local_dir;
	const char *dest_key; /* names the destination in the state dir */
	const char *peer;     /* host or "local", for messages */
	bool dry_run;
	bool include_vcs;
	bool progress;        /* draw a progress bar on stderr */
	int zstd_level;
};

struct sync_stats {
	uint64_t scanned;       /* entries found locally (not ignored) */
	uint64_t files_sent;    /* files and symlinks whose content was sent */
	uint64_t delta_files;
	uint64_t files_deleted;
	uint64_t renamed;
	uint64_t literal_bytes; /* file bytes sent as data */
	uint64_t matched_bytes; /* file bytes rebuilt from the remote copy */
	uint64_t bytes_sent;    /* on the wire, after compression */
	uint64_t bytes_recv;
	uint64_t sig_requests;  /* signatures asked of the agent (delta round trips) */
	uint64_t hinted_files;  /* files sent from byte-range hints, without a signature */
	bool incremental;       /* the agent answered with drift only */
};

/* One sync. Returns 0, or -errno with a one-line message in err (naming the
 * file, host or command). Errors the agent reported are printed as they
 * arrive. */
int sync_run(struct transport *t, const struct sync_options *o, struct sync_stats *st,
	     struct buf *err);

/* A session keeps the connection and both views after a first full sync,
 * for continuous mirroring (hermes mount): each push sends what changed at
 * the given paths, and beneath those that are directories, in one batch
 * with one COMMIT; no tree rescan. t, o and st must outlive the session; st
 * accumulates. After a failed push the session is best closed and opened
 * again (which reconciles everything). */
struct sync_session;
int sync_session_open(struct transport *t, const struct sync_options *o, struct sync_stats *st,
		      struct sync_session **out, struct buf *err);
/* paths: relative to the local root; sorted in place. A successful push
 * does not write the local state files (manifests, ~100 bytes a file):
 * sync_session_save does, and sync_session_close. State left unsaved (a
 * killed process) only makes the next session's exchange a full one. */
int sync_session_push(struct sync_session *s, char **paths, size_t n, struct buf *err);
/* The same, with what the mount knows of which bytes changed (hints.h): a
 * file with ranges in hints, which the agent holds at the same path as we
 * last sent it, goes as a delta of the blocks those ranges touch (and the
 * grown tail), with no signature round trip; the agent verifies the result
 * against the file's hash, and a mismatch is resent whole. Anything else
 * takes the push's usual way. hints may be NULL. */
int sync_session_push_hinted(struct sync_session *s, char **paths, size_t n,
			     const struct hints *hints, struct buf *err);
/* Write the state of the pushes since the last save, if any. */
void sync_session_save(struct sync_session *s);
void sync_session_close(struct sync_session *s);

#endif
