#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Read both pipes to their end; closes them on every path. */
static int drain(int fdout, int fderr, struct buf *out, struct buf *errb)
{
	struct pollfd p[2] = { { fdout, POLLIN, 0 }, { fderr, POLLIN, 0 } };
	struct buf *dst[2] = { out, errb };
	int open_n = 2, r = 0;
	while (open_n > 0 && r == 0) {
		if (poll(p, 2, -1) < 0) {
			if (errno != EINTR)
				r = -errno;
			continue;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			char chunk[4096];
			ssize_t n = read(p[i].fd, chunk, sizeof(chunk));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_n--;
			} else if (dst[i] && buf_append(dst[i], chunk, (size_t)n) < 0) {
				r = -ENOMEM;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	return r;
}

int proc_run(char *const argv[], struct buf *out, struct buf *err_out)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		int e = -errno;
		close(po[0]);
		close(po[1]);
		return e;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	if (rc != 0) {
		close(po[0]);
		close(pe[0]);
		return -rc;
	}
	int r = drain(po[0], pe[0], out, err_out);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (r < 0)
		return r;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int sh_quote(struct buf *b, const char *s)
{
	int r = buf_append_str(b, "'");
	for (; r == 0 && *s; s++)
		r = *s == '\'' ? buf_append_str(b, "'\\''") : buf_append(b, s, 1);
	return r ? r : buf_append_str(b, "'");
}
