/* transport_local: run hermes-agent as a child on a socketpair.
 *
 * The child gets one end of an AF_UNIX stream socketpair as stdin and stdout;
 * stderr is inherited, so the agent's messages reach the user directly. When
 * exec fails the child exits with 127 and says nothing; the parent's next
 * read sees end of stream and close returns 127 for the caller to explain.
 * The child starts with the default SIGPIPE disposition and an empty signal
 * mask whatever the parent uses.
 *
 * read() waits with poll (EINTR restarts it with the time left); write()
 * loops over partial sends and EINTR and uses MSG_NOSIGNAL, so a dead agent
 * gives -EPIPE rather than a signal. close() shuts our sending side, discards
 * what the agent still writes, and reaps it within CLOSE_WAIT_MS, after which
 * it is killed. It returns the exit status; -EINTR if the agent died of a
 * signal, -ETIMEDOUT if it had to be killed, -ECHILD if it could not be
 * reaped; a line saying so goes to diag (lines end with '\n').
 */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CLOSE_WAIT_MS 5000

struct local_transport {
	struct transport base; /* first: the API hands out &base */
	int fd;
	pid_t pid;
};

static struct local_transport *to_local(struct transport *t)
{
	return (struct local_transport *)t;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before deadline (-1 deadline: no limit -> -1). */
static int time_left(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

static ssize_t local_read(struct transport *t, void *buf, size_t n, int timeout_ms)
{
	struct local_transport *lt = to_local(t);
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = lt->fd, .events = POLLIN };

	if (n == 0)
		return 0;
	for (;;) {
		int rc = poll(&pfd, 1, time_left(deadline));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return -EAGAIN;
		ssize_t got = recv(lt->fd, buf, n, MSG_DONTWAIT);
		if (got >= 0)
			return got;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

static int local_write(struct transport *t, const void *buf, size_t n)
{
	struct local_transport *lt = to_local(t);
	const char *p = buf;

	while (n > 0) {
		ssize_t sent = send(lt->fd, p, n, MSG_NOSIGNAL);
		if (sent < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += sent;
		n -= (size_t)sent;
	}
	return 0;
}

/* Wait up to `ms` for the socket, discarding data; false once it is at EOF
 * or broken (then the caller just sleeps between reaping attempts). */
static bool drain_socket(int fd, int ms)
{
	char scratch[16384];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, ms) <= 0)
		return true;
	ssize_t got = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
	return got > 0 || (got < 0 && (errno == EINTR || errno == EAGAIN));
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Reap the child within CLOSE_WAIT_MS, else SIGKILL it. Returns 0 with
 * *status set (and *killed if we killed it) or -errno from waitpid. */
static int reap_child(struct local_transport *lt, int *status, bool *killed)
{
	int64_t deadline = now_ms() + CLOSE_WAIT_MS;
	bool open = true;

	*killed = false;
	for (;;) {
		pid_t r = waitpid(lt->pid, status, WNOHANG);
		if (r == lt->pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		int left = time_left(deadline);
		if (left == 0)
			break;
		int slice = left < 10 ? left : 10;
		if (open)
			open = drain_socket(lt->fd, slice);
		else
			sleep_ms(slice);
	}
	kill(lt->pid, SIGKILL);
	*killed = true;
	while (waitpid(lt->pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static int local_close(struct transport *t, struct buf *diag)
{
	struct local_transport *lt = to_local(t);
	int status = 0;
	bool killed;

	shutdown(lt->fd, SHUT_WR);
	int rc = reap_child(lt, &status, &killed);
	if (rc < 0) {
		if (diag)
			buf_printf(diag, "cannot reap the local agent (pid %ld): %s\n",
				   (long)lt->pid, strerror(-rc));
		rc = -ECHILD;
	} else if (WIFEXITED(status)) {
		rc = WEXITSTATUS(status);
	} else if (killed) {
		if (diag)
			buf_printf(diag, "agent did not exit within %d s after end of input; killed\n",
				   CLOSE_WAIT_MS / 1000);
		rc = -ETIMEDOUT;
	} else {
		int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		if (diag)
			buf_printf(diag, "agent killed by signal %d (%s)\n", sig, strsignal(sig));
		rc = -EINTR;
	}
	close(lt->fd);
	free(t->peer);
	free(lt);
	return rc;
}

static const struct transport_ops local_ops = {
	.read = local_read,
	.write = local_write,
	.close = local_close,
};

/* Make `from` be fd `to` in the child, without FD_CLOEXEC. */
static int move_fd(int from, int to)
{
	if (from != to)
		return dup2(from, to) < 0 ? -1 : 0;
	int fl = fcntl(to, F_GETFD);
	return fl < 0 ? -1 : fcntl(to, F_SETFD, fl & ~FD_CLOEXEC);
}

/* After fork: only async-signal-safe calls. If exec fails the child exits
 * 127 silently: the caller turns that into one message naming the program. */
static _Noreturn void child_exec(int fd, char *const argv[])
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);

	if (move_fd(fd, 0) == 0 && move_fd(fd, 1) == 0)
		execvp(argv[0], argv);
	_exit(127);
}

int transport_local_open(char *const argv[], struct transport **out, struct buf *err)
{
	*out = NULL;
	if (!argv || !argv[0]) {
		buf_printf(err, "no agent command given");
		return -EINVAL;
	}
	struct local_transport *lt = calloc(1, sizeof(*lt));
	char *peer = strdup("local");
	if (!lt || !peer) {
		free(lt);
		free(peer);
		return -ENOMEM;
	}

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = errno;
		buf_printf(err, "cannot start %s: socketpair: %s", argv[0], strerror(e));
		free(lt);
		free(peer);
		return -e;
	}
	pid_t pid = fork();
	if (pid == 0)
		child_exec(sv[1], argv);
	int e = errno;
	close(sv[1]);
	if (pid < 0) {
		buf_printf(err, "cannot start %s: fork: %s", argv[0], strerror(e));
		close(sv[0]);
		free(lt);
		free(peer);
		return -e;
	}
	lt->base.ops = &local_ops;
	lt->base.peer = peer;
	lt->fd = sv[0];
	lt->pid = pid;
	*out = &lt->base;
	return 0;
}
