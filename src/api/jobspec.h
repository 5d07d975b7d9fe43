/* jobspec: the JSON that describes a job (header X-Hermes-Job of POST /v1/jobs).
 *
 *   {"command": "make test",            required: run with /bin/sh -c
 *    "image": "localhost/img:tag",      optional: the config's image
 *    "gpus": 1,                         optional: 0
 *    "env": {"NAME": "value"},          optional
 *    "limits": {"wall_time_s": 600, "memory_bytes": 1073741824,
 *               "pids": 512, "output_bytes": 10485760}}   optional
 *
 * Unknown keys are refused, so a typo never silently drops a limit. A wall
 * time above the config's wall_time_s (or none) becomes wall_time_s.
 * struct jobspec owns its strings (jobspec_free).
 */
#ifndef HERMES_API_JOBSPEC_H
#define HERMES_API_JOBSPEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct jobspec {
	char *command;
	char *image;
	unsigned gpus;
	char **env; /* "NAME=value" */
	size_t nenv;
	unsigned wall_time_s;
	uint64_t memory_bytes;
	unsigned pids;
	uint64_t output_bytes;
};

/* Parse and check json; -EINVAL with the reason in err. */
int jobspec_parse(const char *json, const char *default_image, unsigned max_wall_time_s,
		  struct jobspec *out, struct buf *err);
/* The canonical JSON of spec (all keys present), appended to out. */
int jobspec_to_json(const struct jobspec *spec, struct buf *out);
void jobspec_free(struct jobspec *spec);

#endif
