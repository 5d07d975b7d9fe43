/* gpu: the GPUs hermesd schedules, and their live figures from nvidia-smi.
 *
 * The set comes from the config's `gpus`: "none", a list of indices
 * ("0,1"), or "auto" (the indices nvidia-smi lists; none when nvidia-smi is
 * not installed). Each scheduled GPU is given to a container as the CDI
 * device nvidia.com/gpu=INDEX. gpu_query asks nvidia-smi for utilisation
 * and memory; without nvidia-smi it reports no GPU and no error.
 */
#ifndef HERMES_API_GPU_H
#define HERMES_API_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct gpu_set {
	char **ids; /* owned */
	size_t n;
};

int gpu_set_init(struct gpu_set *g, const char *setting, struct buf *err);
void gpu_set_free(struct gpu_set *g);

struct gpu_stat {
	char index[16];
	char name[128];
	double utilization; /* 0..1 */
	uint64_t memory_used, memory_total; /* bytes */
};

/* *out (free() it) holds *n GPUs; 0, or -errno when nvidia-smi failed. */
int gpu_query(struct gpu_stat **out, size_t *n, struct buf *err);

#endif
