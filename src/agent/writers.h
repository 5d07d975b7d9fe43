/* writers: a pool of threads that install small whole files (the ones that
 * arrive inline in MSG_FILE) in parallel.
 *
 * Creating thousands of files is bound by file-system latency, not CPU, so
 * several threads waiting at once finish far sooner than one. Each job is
 * verified against its hash, written to a temp file beside its target and
 * renamed into place, exactly like the serial path. Results come back to the
 * submitting thread, which alone talks to the client and updates the
 * manifest: workers touch nothing but the file system and their job.
 * Ordering: the agent waits for all jobs (writers_done with wait_all) before
 * any message other than another inline file, so later changes always see
 * earlier files in place.
 */
#ifndef HERMES_WRITERS_H
#define HERMES_WRITERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fsops.h"

struct small_file {
	char *path;      /* owned */
	uint8_t *data;   /* owned */
	size_t len;
	uint32_t mode;
	int64_t mtime_ns;
	uint8_t hash[16];
	/* result */
	int err;          /* 0 or -errno */
	const char *what; /* what failed, for the message ("writing", ...) */
	struct stat st;   /* the installed file */
	struct small_file *next;
};

struct writers;

/* Start nthreads workers installing beneath root_fd. NULL on failure. */
struct writers *writers_new(int root_fd, struct tmpnames *names, int nthreads);
/* Queue a job (ownership passes to the pool until it comes back from
 * writers_done). Waits while too much is queued. */
void writers_submit(struct writers *w, struct small_file *f);
/* Finished jobs, oldest first (the caller owns them); with wait_all, only
 * after every queued job has finished. */
struct small_file *writers_done(struct writers *w, bool wait_all);
/* Stops the workers after the queued jobs; the caller must have taken back
 * every job first. */
void writers_free(struct writers *w);
void small_file_free(struct small_file *f);

/* The install itself, also usable without the pool. */
void small_file_install(int root_fd, struct tmpnames *names, struct dircache *dc,
			struct small_file *f);
/* open(O_CREAT | O_EXCL) of a temp name with the permission bits at *mode. */
int create_file_mode(int dirfd, const char *name, void *mode);

#endif
