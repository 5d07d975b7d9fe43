/* transport over a pair of file descriptors: the agent's stdin and stdout. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "fdio.h"
#include "transport.h"

struct fd_transport {
	struct transport t;
	int rfd, wfd;
};

static ssize_t fd_read(struct transport *t, void *b, size_t n, int timeout_ms)
{
	struct fd_transport *ft = (struct fd_transport *)t;
	for (;;) {
		struct pollfd p = { .fd = ft->rfd, .events = POLLIN };
		int rc = poll(&p, 1, timeout_ms);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return -EAGAIN;
		ssize_t r = read(ft->rfd, b, n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return r < 0 ? -errno : r;
	}
}

static int fd_write(struct transport *t, const void *b, size_t n)
{
	return write_full(((struct fd_transport *)t)->wfd, b, n);
}

static int fd_close(struct transport *t, struct buf *diag)
{
	(void)diag;
	struct fd_transport *ft = (struct fd_transport *)t;
	free(ft);
	return 0;
}

static const struct transport_ops fd_ops = {
	.read = fd_read,
	.write = fd_write,
	.close = fd_close,
};

struct transport *transport_fd_new(int rfd, int wfd)
{
	struct fd_transport *ft = calloc(1, sizeof(*ft));
	if (!ft)
		return NULL;
	ft->t.ops = &fd_ops;
	ft->t.peer = NULL;
	ft->rfd = rfd;
	ft->wfd = wfd;
	return &ft->t;
}
