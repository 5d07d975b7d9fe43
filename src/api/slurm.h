/* slurm: one job through Slurm (sbatch, squeue, scancel).
 *
 * slurm_run writes JOB_DIR/slurm.sh, a batch script that runs the container
 * with the config's podman_command (`podman run --rm`, workspace bound at
 * /workspace, no network, `--gres=gpu:N` asked when N GPUs are), submits it
 * with sbatch --parsable (output to req->log_path, so state_dir must be on a
 * file system the nodes share), then polls squeue every half second. The
 * script writes the container's exit code to JOB_DIR/exit_code; when the job
 * has left squeue that file gives the result. Without it, `scontrol show
 * job` tells why: TIMEOUT is timed-out, CANCELLED (an scancel outside
 * hermesd) is cancelled, anything else failed with Slurm's state and exit
 * code in the message. slurm_cancel marks the run and scancels it.
 */
#ifndef HERMES_API_SLURM_H
#define HERMES_API_SLURM_H

#include <pthread.h>
#include <stdbool.h>

#include "backend.h"

struct slurm_run {
	pthread_mutex_t lock;
	bool cancelled;    /* protected by lock */
	char slurm_id[32]; /* protected by lock; "" until sbatch answered */
};

void slurm_run_init(struct slurm_run *sr);
int slurm_run(struct slurm_run *sr, const struct config *cfg, const struct run_req *req,
	      backend_placed_fn placed, void *ctx, struct job_result *res);
void slurm_cancel(struct slurm_run *sr);
/* scancel ID; -EIO with scancel's message in err when it fails. */
int slurm_scancel(const char *id, struct buf *err);

#endif
