/* conf: the project's hermes.conf (see man/hermes.conf.5).
 *
 * Lines are `key = value`; blank lines and lines whose first non-blank
 * character is '#' are skipped; a value may be wrapped in double quotes.
 * Scalar keys may appear once; env, mount and ignore may repeat. Errors are
 * one line, "NAME:LINE: what is wrong", NAME being the name given to the
 * parser (the file's path). A struct hermes_conf owns all its strings;
 * conf_free releases them. conf_init allocates nothing, so calling it again
 * (conf_load does) leaks nothing.
 */
#ifndef HERMES_CONF_H
#define HERMES_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "job.h"

#define CONF_DEFAULT_IMAGE "localhost/hermes-cuda:latest"
#define CONF_FILE "hermes.conf"

enum conf_gpus {
	CONF_GPUS_AUTO, /* all when a CDI spec for nvidia.com/gpu can give them, else none */
	CONF_GPUS_NONE,
	CONF_GPUS_ALL,
	CONF_GPUS_LIST, /* the indices in gpu_list */
};

enum conf_user {
	CONF_USER_AUTO,  /* the workspace owner's uid:gid */
	CONF_USER_IMAGE, /* the image's default user */
	CONF_USER_GIVEN, /* user */
};

struct hermes_conf {
	char *image;  /* NULL: CONF_DEFAULT_IMAGE, or rootfs when that is set */
	char *rootfs;
	enum conf_gpus gpus;
	char **gpu_names; /* CDI names for CONF_GPUS_LIST ("nvidia.com/gpu=N") */
	size_t ngpu_names;
	unsigned wall_time_s; /* 0 = no limit */
	uint64_t memory_bytes;
	unsigned pids;
	uint64_t output_bytes;
	char **env; /* "NAME=value" */
	size_t nenv;
	struct job_mount *mounts; /* src and dst owned */
	size_t nmounts;
	enum conf_user user_mode;
	char *user;
	bool network;
	char **ignore;
	size_t nignore;

	/* conf_to_spec's storage, so the spec's pointers stay valid */
	const char *spec_gpus[1];
	char spec_user[32];
};

/* Defaults: image CONF_DEFAULT_IMAGE (image NULL), gpus auto, wall_time 10m, memory 8G,
 * pids 1024, output 64M, network off, user auto. */
void conf_init(struct hermes_conf *c);
void conf_free(struct hermes_conf *c);
/* Parse text (len bytes) over c's current values. 0 or -EINVAL. */
int conf_parse(struct hermes_conf *c, const char *text, size_t len, const char *name,
	       struct buf *err);
/* conf_init, then parse path when it exists (a missing file leaves the
 * defaults). 0 or -errno. */
int conf_load(struct hermes_conf *c, const char *path, struct buf *err);

/* Fill spec's image, rootfs, gpus, env, mounts, user, network and limits from
 * c (other fields untouched; spec->workspace, when set, is the owner for
 * user auto). spec points into c: c must outlive it. 0, or -errno with
 * one line in err (a workspace that cannot be read). */
int conf_to_spec(struct hermes_conf *c, struct job_spec *spec, struct buf *err);

#endif
