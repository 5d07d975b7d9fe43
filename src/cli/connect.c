#include "connect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* hermes-agent next to this executable (a build or install tree), else PATH. */
static void default_agent(char *buf, size_t n)
{
	ssize_t len = readlink("/proc/self/exe", buf, n - sizeof(AGENT_NAME) - 1);
	if (len > 0) {
		buf[len] = '\0';
		char *slash = strrchr(buf, '/');
		if (slash) {
			strcpy(slash + 1, AGENT_NAME);
			if (access(buf, X_OK) == 0)
				return;
		}
	}
	snprintf(buf, n, "%s", AGENT_NAME);
}

static void shell_quote(struct buf *b, const char *s)
{
	/* Keep a leading ~/ unquoted so the remote shell expands it. */
	if (s[0] == '~' && (s[1] == '/' || s[1] == '\0')) {
		buf_append_str(b, "~");
		s++;
		if (!*s)
			return;
	}
	buf_append_str(b, "'");
	for (; *s; s++) {
		if (*s == '\'')
			buf_append_str(b, "'\\''");
		else
			buf_append(b, s, 1);
	}
	buf_append_str(b, "'");
}

/* A relative local DEST is relative to where the command was started,
 * whatever the process does later (a mount daemon changes directory). */
static int make_absolute(struct dest *d)
{
	char cwd[PATH_MAX];
	if (d->path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return 0;
	size_t n = strlen(cwd) + strlen(d->path) + 2;
	char *abs = malloc(n);
	if (!abs)
		return -ENOMEM;
	snprintf(abs, n, "%s/%s", cwd, d->path);
	free(d->path);
	d->path = abs;
	return 0;
}

int connect_prepare(struct connect_spec *c, const char *dest_str, const struct ssh_options *ssh,
		    const char *agent_path, struct buf *err)
{
	memset(c, 0, sizeof(*c));
	c->ssh = *ssh;
	int rc = dest_parse(dest_str, &c->dest, err);
	if (rc)
		return rc;
	if (c->dest.local) {
		rc = make_absolute(&c->dest);
		if (rc) {
			buf_printf(err, "out of memory");
			return rc;
		}
		if (agent_path)
			snprintf(c->agent, sizeof(c->agent), "%s", agent_path);
		else
			default_agent(c->agent, sizeof(c->agent));
		buf_printf(&c->key, "local:%s", c->dest.path);
		c->peer = "local agent";
	} else {
		snprintf(c->agent, sizeof(c->agent), "%s", agent_path ? agent_path : AGENT_NAME);
		buf_printf(&c->key, "ssh:%s@%s:%d:%s", c->dest.user ? c->dest.user : "",
			   c->dest.host, c->ssh.port, c->dest.path);
		c->peer = c->dest.host;
	}
	/* NUL-terminate the key: it is used as a C string. */
	rc = buf_append(&c->key, "", 1);
	if (!rc)
		c->key.len--;
	return rc;
}

/* Run the agent for c with the arguments args (NULL-terminated, before
 * --root DIR): a local process, or a command over SSH. */
static int open_agent(const struct connect_spec *c, const char *const *args,
		      struct transport **t, struct buf *err)
{
	if (c->dest.local) {
		const char *argv[8];
		size_t n = 0;
		argv[n++] = c->agent;
		while (*args && n < 5)
			argv[n++] = *args++;
		argv[n++] = "--root";
		argv[n++] = c->dest.path;
		argv[n] = NULL;
		return transport_local_open((char *const *)argv, t, err);
	}
	struct buf cmd = BUF_INIT;
	shell_quote(&cmd, c->agent);
	for (; *args; args++) {
		buf_append_str(&cmd, " ");
		shell_quote(&cmd, *args);
	}
	buf_append_str(&cmd, " --root ");
	shell_quote(&cmd, c->dest.path);
	int rc = buf_append(&cmd, "", 1);
	if (!rc)
		rc = transport_ssh_open(&c->dest, &c->ssh, (const char *)cmd.data, t, err);
	buf_free(&cmd);
	return rc;
}

int connect_open(const struct connect_spec *c, struct transport **t, struct buf *err)
{
	static const char *const args[] = { "--stdio", NULL };
	return open_agent(c, args, t, err);
}

int connect_open_jobs(const struct connect_spec *c, const char *podman_socket,
		      struct transport **t, struct buf *err)
{
	const char *args[] = { "--jobs", NULL, NULL, NULL };
	if (podman_socket) {
		args[1] = "--podman-socket";
		args[2] = podman_socket;
	}
	return open_agent(c, args, t, err);
}

void connect_report_not_found(const struct connect_spec *c)
{
	log_error("%s not found on %s (could not run '%s'): install hermes there "
		  "(meson install puts hermes-agent in /usr/local/bin), or name it with --agent-path",
		  AGENT_NAME, c->dest.local ? "this machine" : c->dest.host, c->agent);
}

void connect_free(struct connect_spec *c)
{
	dest_free(&c->dest);
	buf_free(&c->key);
}
