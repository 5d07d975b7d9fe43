/* vjobs: the job files of a mount's .hermes directory, as an fs_vops
 * provider over a jobclient:
 *
 *   run      write a command (a line; the rest at close): waits for the flush
 *            barrier, then for the host to accept the job; the write fails
 *            with the reason (also readable from the same open file, after
 *            "error: "), else a read gives the job id
 *   wait     read: blocks until the current job ends, then its status
 *   cancel   any write cancels the running job (ESRCH when none)
 *   out/     stdout, stderr, status of the current (or last) job
 *   jobs/ID/ command, stdout, stderr, status of the kept jobs
 *
 * stdout and stderr stream: a read waits for output until the job ends (end
 * of file), unless the file was opened with O_NONBLOCK.
 */
#ifndef HERMES_VJOBS_H
#define HERMES_VJOBS_H

#include <stdint.h>

#include "fs.h"
#include "jobclient.h"

struct vjobs_config {
	struct jobclient *jobs;
	/* The flush barrier: every change noted so far is on the host (or
	 * -errno, e.g. -ETIMEDOUT). */
	int64_t (*barrier)(void *ctx);
	void *ctx;
};

/* Fill ops for cfg (which must outlive the mount). */
void vjobs_ops(struct vjobs_config *cfg, struct fs_vops *ops);

#endif
