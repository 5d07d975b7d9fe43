/* config: hermesd's configuration file.
 *
 * Format: one setting per line, "key = value"; '#' starts a comment line.
 *   listen = 127.0.0.1:8420        address and port (port 0: any free port)
 *   state_dir = /var/lib/hermesd   SQLite queue, workspaces, logs
 *   backend = podman | slurm
 *   podman_socket = /run/podman/podman.sock   (backend podman)
 *   podman_command = podman --url unix:///run/podman/podman.sock
 *                                  (backend slurm: how the node runs containers)
 *   slurm_partition = NAME          (backend slurm, optional)
 *   slurm_gpu_device = nvidia.com/gpu=all
 *                                  (backend slurm: CDI device a GPU job's
 *                                  container gets; Slurm's CUDA_VISIBLE_DEVICES
 *                                  picks the allocated GPUs within it)
 *   image = localhost/hermes:latest default image of jobs that name none
 *   gpus = auto | none | 0,1,...    GPUs to schedule (auto: nvidia-smi -L)
 *   cpu_slots = 2                   CPU-only jobs run at once
 *   max_upload = 104857600          bytes of one POST body (413 beyond)
 *   max_unpacked = 1073741824       bytes of one unpacked workspace
 *   wall_time_s = 3600              default and maximum wall time of a job
 *   token = NAME SECRET [max_queued=N] [max_running=N] [max_gpus=N]
 * Tokens are named so the queue stores a name, never a secret. The config
 * owns every string it holds; config_free releases them.
 */
#ifndef HERMES_API_CONFIG_H
#define HERMES_API_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define CONFIG_MAX_GPUS 64

enum backend_kind { BACKEND_PODMAN, BACKEND_SLURM };

struct token {
	char *name;
	char *secret;
	unsigned max_queued;  /* 0: no limit */
	unsigned max_running; /* 0: no limit */
	unsigned max_gpus;    /* GPUs one job of this token may ask for */
};

struct config {
	char *listen_host;
	unsigned listen_port;
	char *state_dir;
	enum backend_kind backend;
	char *podman_socket;
	char *podman_command;
	char *slurm_partition;
	char *slurm_gpu_device;
	char *image;
	char *gpus_setting; /* as written: "auto", "none" or a list */
	unsigned cpu_slots;
	uint64_t max_upload;
	uint64_t max_unpacked;
	unsigned wall_time_s;
	struct token *tokens;
	size_t ntokens;
};

/* Read path into cfg (zeroed first). -errno with "PATH:LINE: why" in err. */
int config_load(struct config *cfg, const char *path, struct buf *err);
void config_free(struct config *cfg);
/* The token whose secret is `secret` (constant-time compare), or NULL. */
const struct token *config_find_token(const struct config *cfg, const char *secret);

#endif
