/* jobs: the agent's job mode (`hermes-agent --jobs --root DIR`).
 *
 * Serves MSG_JOB_* requests (see proto.h) on an already greeted wire: each
 * JOB_RUN runs its command in a Podman container (src/exec/job.h) over DIR,
 * configured by DIR/hermes.conf, and streams JOB_STARTED, JOB_OUTPUT* and
 * JOB_END back; a JOB_RUN that cannot start gets one MSG_ERROR line naming
 * the cause. One job at a time per root: a second JOB_RUN, from this client
 * or another (lock DIR/.hermes/agent/job.lock), fails with EBUSY. When the
 * client goes away the running job is cancelled and its container removed.
 */
#ifndef HERMES_AGENT_JOBS_H
#define HERMES_AGENT_JOBS_H

#include "wire.h"

struct jobs_options {
	const char *root;          /* the synced directory, mounted in the container */
	const char *podman_socket; /* Podman's REST socket */
};

/* Serve until the client closes the connection. Returns 0, or -errno on a
 * protocol or transport error. */
int jobs_serve(struct wire *w, const struct jobs_options *o);

/* The Podman socket when none is given: $HERMES_PODMAN_SOCKET, else root's
 * /run/podman/podman.sock, else $XDG_RUNTIME_DIR/podman/podman.sock. */
const char *jobs_default_socket(void);

#endif
