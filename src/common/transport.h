/* transport: a bidirectional byte stream to a hermes-agent.
 *
 * Two implementations: "local" spawns hermes-agent over a socketpair (the
 * embedded default, no SSH), and "ssh" runs it on a host through libssh
 * (ssh config, ssh-agent, key files, known_hosts verification). The caller
 * owns the transport and must transport_close() it, which returns the agent's
 * exit status. Error messages written into `err` name the host or command.
 */
#ifndef HERMES_TRANSPORT_H
#define HERMES_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

struct transport;

struct transport_ops {
	/* Read up to n bytes, waiting at most timeout_ms (-1: no limit).
	 * Returns >0 bytes read, 0 at end of stream, -EAGAIN on timeout,
	 * other -errno on failure. */
	ssize_t (*read)(struct transport *t, void *buf, size_t n, int timeout_ms);
	/* Write all n bytes (blocking). Returns 0 or -errno. */
	int (*write)(struct transport *t, const void *buf, size_t n);
	/* Close our side, wait for the agent to exit, release everything.
	 * Returns the agent's exit status (0..255), or -errno if it was killed
	 * or could not be reaped. Anything the agent wrote to stderr that was
	 * not yet shown is appended to diag (if not NULL). Frees t. */
	int (*close)(struct transport *t, struct buf *diag);
};

struct transport {
	const struct transport_ops *ops;
	char *peer; /* "local" or "host" / "user@host:port", for messages; owned */
};

/* Destination of a sync: "[user@]host:/path", or a plain path / "local:/path". */
struct dest {
	bool local;
	char *user; /* NULL: from ssh config or the login name */
	char *host;
	char *path; /* remote root (may be relative to the remote home) */
};
/* Parse s into d (all strings owned by d). Returns 0 or -EINVAL with err set. */
int dest_parse(const char *s, struct dest *d, struct buf *err);
void dest_free(struct dest *d);

struct ssh_options {
	int port;                 /* 0: from ssh config or 22 */
	const char *identity;     /* -i KEYFILE, or NULL */
	bool accept_new_host_key; /* add an unknown host to known_hosts */
	int verbosity;            /* libssh log level, 0 = quiet */
};

/* The agent's side: read rfd, write wfd (its stdin and stdout). The fds
 * stay open on close. NULL on allocation failure. */
struct transport *transport_fd_new(int rfd, int wfd);

/* Start `argv` (argv[0] = agent path) locally on a socketpair. */
int transport_local_open(char *const argv[], struct transport **out, struct buf *err);

/* Connect to d->host, authenticate, and exec `command` (already shell-quoted). */
int transport_ssh_open(const struct dest *d, const struct ssh_options *o,
		       const char *command, struct transport **out, struct buf *err);

static inline ssize_t transport_read(struct transport *t, void *b, size_t n, int timeout_ms)
{
	return t->ops->read(t, b, n, timeout_ms);
}
static inline int transport_write(struct transport *t, const void *b, size_t n)
{
	return t->ops->write(t, b, n);
}
static inline int transport_close(struct transport *t, struct buf *diag)
{
	return t->ops->close(t, diag);
}

#endif
