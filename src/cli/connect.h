/* connect: how the CLI reaches hermes-agent for a DEST, once or again and
 * again (the mount reconnects after a drop). */
#ifndef HERMES_CONNECT_H
#define HERMES_CONNECT_H

#include <limits.h>

#include "buf.h"
#include "transport.h"

#define AGENT_NAME "hermes-agent"

struct connect_spec {
	struct dest dest;      /* parsed DEST; a local path is made absolute (owned) */
	struct ssh_options ssh;
	char agent[PATH_MAX];  /* the agent program used */
	struct buf key;        /* names the destination in the client's state */
	const char *peer;      /* "local agent" or the host, for messages */
};

/* Parse dest_str and settle the agent path (agent_path, or for a local DEST
 * the hermes-agent beside this executable, else PATH's). 0 or -errno, err set. */
int connect_prepare(struct connect_spec *c, const char *dest_str, const struct ssh_options *ssh,
		    const char *agent_path, struct buf *err);
int connect_open(const struct connect_spec *c, struct transport **t, struct buf *err);
/* The agent in job mode (--jobs), with its Podman socket when not NULL. */
int connect_open_jobs(const struct connect_spec *c, const char *podman_socket,
		      struct transport **t, struct buf *err);
/* The one line for an agent that could not be run (exit status 127). */
void connect_report_not_found(const struct connect_spec *c);
void connect_free(struct connect_spec *c);

#endif
