/* podman: a small client for Podman's libpod REST API (v4) on its unix socket.
 *
 * One struct podman names a socket; every call opens its own libcurl handle,
 * so calls may run from several threads at once (job.c attaches in one
 * thread while another waits). Calls return 0 or -errno and, on failure,
 * write one line into err naming the socket and what failed, with Podman's
 * own "message" when it sent one:
 *   -ECONNREFUSED  "cannot reach Podman at SOCK: ..."
 *   -ENOENT        "unknown image 'IMG' (Podman at SOCK: ...)" / no such container
 *   -EIO           any other refusal: "Podman at SOCK: WHAT: MESSAGE"
 */
#ifndef HERMES_PODMAN_H
#define HERMES_PODMAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct podman;

/* socket is copied. NULL only when out of memory. */
struct podman *podman_new(const char *socket);
void podman_free(struct podman *p);

int podman_ping(struct podman *p, struct buf *err);

struct podman_bind {
	const char *src;
	const char *dst;
	bool readonly;
};

/* A container to create (the subset of libpod's SpecGenerator Hermes uses).
 * Zero limits mean none. */
struct podman_spec {
	const char *name;
	const char *image;          /* or NULL with rootfs */
	const char *rootfs;         /* host dir as rootfs, overlaid (host copy untouched) */
	const char *const *argv;    /* the command, argc entries */
	size_t argc;
	const char *const *env;     /* "NAME=value" */
	size_t nenv;
	const struct podman_bind *binds;
	size_t nbinds;
	const char *workdir;
	const char *user;           /* "uid[:gid]" or NULL */
	const char *const *devices; /* CDI names, e.g. "nvidia.com/gpu=all" */
	size_t ndevices;
	const char *label_key, *label_value; /* one label, or NULLs */
	bool network;               /* false: netns none */
	uint64_t memory_bytes;      /* memory and memory+swap limit */
	unsigned pids;
	unsigned stop_timeout_s;    /* conmon kills the container after this (backstop) */
};

/* Create; id receives the container id (NUL-terminated, at most idsz-1). */
int podman_create(struct podman *p, const struct podman_spec *s, char *id, size_t idsz,
		  struct buf *err);
int podman_start(struct podman *p, const char *id, struct buf *err);

/* Attach to stdout and stderr of container id (before or after start) and
 * block until the stream ends. attached() runs once the server accepted the
 * attach (start the container after it, to lose no output). frame() gets
 * each demultiplexed chunk (stream 1 = stdout, 2 = stderr). abort_fn, polled
 * about once per second and on each chunk, ends the call with -ECANCELED
 * when it returns true. Any callback may be NULL. */
struct podman_attach_cb {
	void (*attached)(void *ctx);
	void (*frame)(void *ctx, int stream, const void *data, size_t len);
	bool (*abort_fn)(void *ctx);
	void *ctx;
};
int podman_attach(struct podman *p, const char *id, const struct podman_attach_cb *cb,
		  struct buf *err);

/* Block until the container stops (at most timeout_ms, 0 = no bound:
 * -ETIMEDOUT then); exit_code receives its exit status. */
int podman_wait(struct podman *p, const char *id, long timeout_ms, int *exit_code,
		struct buf *err);
/* SIGKILL; a container that is not running is not an error. */
int podman_kill(struct podman *p, const char *id, struct buf *err);
/* Remove with force (kills it first); a missing container is not an error. */
int podman_remove(struct podman *p, const char *id, struct buf *err);
/* The inspect JSON of a container, NUL-terminated in out. */
int podman_inspect(struct podman *p, const char *id, struct buf *out, struct buf *err);
/* Ids of all containers (any state) labelled key=value, as NUL-separated
 * strings in out; count receives how many. */
int podman_list_label(struct podman *p, const char *key, const char *value, struct buf *out,
		      size_t *count, struct buf *err);

#endif
