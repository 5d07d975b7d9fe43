/* transport_ssh: run hermes-agent on a host through libssh.
 *
 * Options: host, user, timeout (10 s) and log level are set first, then the
 * ssh config is read ($HERMES_SSH_CONFIG if set, else ~/.ssh/config and
 * /etc/ssh/ssh_config) so Host blocks match and may override those; then the
 * command line (user, -p, -i) and $HERMES_KNOWN_HOSTS are applied, so they win.
 * Host keys are checked against known_hosts: a changed key is always refused,
 * an unknown one unless accept_new_host_key (then it is added and a warning
 * printed). Authentication tries "none", then public keys (ssh-agent, -i,
 * config IdentityFile, default keys). Every failure is one line in err naming
 * the host.
 *
 * One SSH session and one exec channel serve the whole sync. The agent's
 * stderr is consumed by a channel callback as it arrives (so it never holds
 * the channel window shut), kept up to ERRTEXT_MAX bytes (the tail) and
 * appended to diag by close(). read() returns stdout bytes, 0 at EOF, -EAGAIN
 * on timeout; write() blocks until all bytes are queued. Both give -EPIPE
 * when the channel or connection is gone, -EIO for other libssh errors.
 * close() sends EOF, discards further output, waits up to CLOSE_WAIT_MS for
 * the exit status and returns it (127: the shell found no such command);
 * -EINTR if the agent died of a signal, -ETIMEDOUT if no status came in time,
 * -EPIPE if the connection was lost; each with a line in diag.
 */
#include "transport.h"

#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#define CONNECT_TIMEOUT_S 10L
#define CLOSE_WAIT_MS 5000
#define ERRTEXT_MAX (64u * 1024u)
#define READ_MAX (1u << 20)  /* bytes asked of libssh per read */
#define WRITE_MAX (1u << 20) /* bytes handed to libssh per write */
/* AES-GCM first: with AES instructions it beat chacha20 by 10-25% on loopback. */
#define CIPHERS "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com," \
		"aes256-ctr,aes192-ctr,aes128-ctr"

struct ssh_transport {
	struct transport base; /* first: the API hands out &base */
	ssh_session session;
	ssh_channel channel;
	struct ssh_channel_callbacks_struct cb; /* must outlive channel */
	char *label;            /* "alias" or "alias (hostname)", for messages */
	struct buf errtext;     /* the agent's stderr (tail) */
	bool errtext_dropped;   /* earlier stderr was dropped to keep the cap */
	char exit_signal[32];   /* "" until an exit-signal arrives */
	struct buf failure;     /* first libssh error of the data phase */
};

static struct ssh_transport *to_ssh(struct transport *t)
{
	return (struct ssh_transport *)t;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int time_left(int64_t deadline)
{
	int64_t left = deadline - now_ms();
	return left <= 0 ? 0 : (left > INT32_MAX ? INT32_MAX : (int)left);
}

/* Bound libssh's own blocking waits (flush, window, exit status). ms > 0. */
static void set_session_timeout(ssh_session s, int ms)
{
	long sec = ms / 1000, usec = (long)(ms % 1000) * 1000;
	ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &sec);
	ssh_options_set(s, SSH_OPTIONS_TIMEOUT_USEC, &usec);
}

/* ---- channel callbacks ------------------------------------------------ */

static int on_data(ssh_session s, ssh_channel ch, void *data, uint32_t len,
		   int is_stderr, void *user)
{
	struct ssh_transport *st = user;
	(void)s;
	(void)ch;
	if (!is_stderr)
		return 0; /* leave stdout in libssh's buffer for read() */
	struct buf *b = &st->errtext;
	if (len >= ERRTEXT_MAX) {
		data = (char *)data + (len - ERRTEXT_MAX);
		len = ERRTEXT_MAX;
		buf_reset(b);
		st->errtext_dropped = true;
	} else if (b->len + len > ERRTEXT_MAX) {
		buf_consume(b, b->len + len - ERRTEXT_MAX);
		st->errtext_dropped = true;
	}
	if (buf_append(b, data, len) < 0)
		st->errtext_dropped = true;
	return (int)len; /* consumed, whether kept or not */
}

static void on_exit_signal(ssh_session s, ssh_channel ch, const char *sig, int core,
			   const char *errmsg, const char *lang, void *user)
{
	struct ssh_transport *st = user;
	(void)s, (void)ch, (void)core, (void)errmsg, (void)lang;
	snprintf(st->exit_signal, sizeof(st->exit_signal), "%s", sig ? sig : "?");
}

/* ---- data phase ------------------------------------------------------- */

/* Map a libssh failure to -errno and keep its text for close(). */
static int channel_errno(struct ssh_transport *st)
{
	if (st->failure.len == 0)
		buf_printf(&st->failure, "%s", ssh_get_error(st->session));
	int status = ssh_get_status(st->session);
	if (!ssh_is_connected(st->session) || (status & (SSH_CLOSED | SSH_CLOSED_ERROR)) ||
	    ssh_channel_is_closed(st->channel))
		return -EPIPE;
	return -EIO;
}

static ssize_t ssh_t_read(struct transport *t, void *buf, size_t n, int timeout_ms)
{
	struct ssh_transport *st = to_ssh(t);
	if (n == 0)
		return 0;
	uint32_t count = n > READ_MAX ? READ_MAX : (uint32_t)n;
	int rc = ssh_channel_read_timeout(st->channel, buf, count, 0,
					  timeout_ms < 0 ? -1 : timeout_ms); /* -1: no limit */
	if (rc > 0)
		return rc;
	if (rc == SSH_AGAIN)
		return -EAGAIN;
	if (rc < 0)
		return channel_errno(st);
	return ssh_channel_is_eof(st->channel) ? 0 : -EAGAIN;
}

static int ssh_t_write(struct transport *t, const void *buf, size_t n)
{
	struct ssh_transport *st = to_ssh(t);
	const char *p = buf;

	while (n > 0) {
		uint32_t chunk = n > WRITE_MAX ? WRITE_MAX : (uint32_t)n;
		/* Returns fewer bytes when the peer's window stayed shut for the
		 * session timeout: then just wait again. */
		int rc = ssh_channel_write(st->channel, p, chunk);
		if (rc < 0)
			return channel_errno(st);
		if (rc == 0 && !ssh_channel_is_open(st->channel))
			return channel_errno(st);
		p += rc;
		n -= (size_t)rc;
	}
	return 0;
}

/* ---- close ------------------------------------------------------------ */

/* Discard output until EOF or the deadline. False if the connection broke. */
static bool drain_stdout(struct ssh_transport *st, int64_t deadline)
{
	char scratch[16384];
	while (!ssh_channel_is_eof(st->channel) && !ssh_channel_is_closed(st->channel)) {
		int left = time_left(deadline);
		if (left == 0)
			return true;
		int rc = ssh_channel_read_timeout(st->channel, scratch, sizeof(scratch), 0, left);
		if (rc < 0 && rc != SSH_AGAIN) {
			channel_errno(st);
			return false;
		}
	}
	return true;
}

/* EOF, drain, exit status. Returns the status or -errno with a diag line. */
static int finish_channel(struct ssh_transport *st, struct buf *diag)
{
	int64_t deadline = now_ms() + CLOSE_WAIT_MS;
	int status = -1;
	bool ok = st->failure.len == 0;

	set_session_timeout(st->session, CLOSE_WAIT_MS);
	if (ok && ssh_channel_is_open(st->channel) &&
	    ssh_channel_send_eof(st->channel) == SSH_ERROR) {
		channel_errno(st);
		ok = false;
	}
	if (ok)
		ok = drain_stdout(st, deadline);
	int left = time_left(deadline);
	if (ok && left > 0) {
		set_session_timeout(st->session, left);
		status = ssh_channel_get_exit_status(st->channel);
	}
	if (status >= 0)
		return status;

	const char *peer = st->base.peer;
	if (st->exit_signal[0]) {
		buf_printf(diag, "agent on %s killed by signal SIG%s\n", peer, st->exit_signal);
		return -EINTR;
	}
	if (!ok || !ssh_is_connected(st->session)) {
		if (st->failure.len == 0)
			buf_printf(&st->failure, "%s", ssh_get_error(st->session));
		buf_printf(diag, "connection to %s lost: %.*s\n", peer,
			   (int)st->failure.len, (const char *)st->failure.data);
		return -EPIPE;
	}
	if (time_left(deadline) == 0) {
		buf_printf(diag, "agent on %s did not exit within %d s after end of input\n",
			   peer, CLOSE_WAIT_MS / 1000);
		return -ETIMEDOUT;
	}
	buf_printf(diag, "agent on %s exited without reporting a status\n", peer);
	return -EPIPE;
}

static void append_errtext(struct ssh_transport *st, struct buf *diag)
{
	struct buf *e = &st->errtext;
	if (e->len == 0)
		return;
	if (st->errtext_dropped)
		buf_printf(diag, "[earlier stderr output of the agent on %s dropped]\n",
			   st->base.peer);
	buf_append(diag, e->data, e->len);
	if (e->data[e->len - 1] != '\n')
		buf_append(diag, "\n", 1);
}

static void st_free(struct ssh_transport *st)
{
	if (st->channel)
		ssh_channel_free(st->channel);
	if (st->session) {
		if (ssh_is_connected(st->session))
			ssh_disconnect(st->session);
		ssh_free(st->session);
	}
	buf_free(&st->errtext);
	buf_free(&st->failure);
	free(st->label);
	free(st->base.peer);
	free(st);
}

static int ssh_t_close(struct transport *t, struct buf *diag)
{
	struct ssh_transport *st = to_ssh(t);
	struct buf lines = BUF_INIT;

	int rc = finish_channel(st, &lines);
	set_session_timeout(st->session, 1000); /* bound channel close/disconnect */
	if (diag) {
		append_errtext(st, diag);
		buf_append(diag, lines.data, lines.len);
	}
	buf_free(&lines);
	st_free(st);
	return rc;
}

static const struct transport_ops ssh_ops = {
	.read = ssh_t_read,
	.write = ssh_t_write,
	.close = ssh_t_close,
};

/* ---- open: options ------------------------------------------------------ */

/* After the config file: user, -p and -i (prepended: tried first). */
static int set_cmdline_options(ssh_session s, const struct dest *d,
			       const struct ssh_options *o)
{
	unsigned int port = o->port > 0 ? (unsigned int)o->port : 0;
	int rc = 0;
	if (d->user)
		rc |= ssh_options_set(s, SSH_OPTIONS_USER, d->user);
	if (port)
		rc |= ssh_options_set(s, SSH_OPTIONS_PORT, &port);
	if (o->identity)
		rc |= ssh_options_set(s, SSH_OPTIONS_ADD_IDENTITY, o->identity);
	return rc ? -EINVAL : 0;
}

static int configure(struct ssh_transport *st, const struct dest *d,
		     const struct ssh_options *o, struct buf *err)
{
	ssh_session s = st->session;
	long timeout = CONNECT_TIMEOUT_S;
	int verbosity = o->verbosity;
	int nodelay = 1; /* small protocol messages and window adjusts must not wait for ACKs */
	const char *config = getenv("HERMES_SSH_CONFIG");
	const char *known = getenv("HERMES_KNOWN_HOSTS");

	/* A preference, not a requirement; the ssh config may override it. */
	ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, CIPHERS);
	ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, CIPHERS);
	if (ssh_options_set(s, SSH_OPTIONS_HOST, d->host) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_NODELAY, &nodelay) < 0 ||
	    (d->user && ssh_options_set(s, SSH_OPTIONS_USER, d->user) < 0)) {
		buf_printf(err, "bad ssh options for %s: %s", d->host, ssh_get_error(s));
		return -EINVAL;
	}
	if (config && *config && access(config, R_OK) < 0) {
		buf_printf(err, "cannot read ssh config %s (HERMES_SSH_CONFIG): %s", config,
			   strerror(errno));
		return -EINVAL;
	}
	if (ssh_options_parse_config(s, config && *config ? config : NULL) < 0) {
		buf_printf(err, "cannot use the ssh config for %s: %s", d->host, ssh_get_error(s));
		return -EINVAL;
	}
	/* The command line and environment win over the config file (its
	 * LogLevel would make libssh chatty: OpenSSH levels differ). */
	if (set_cmdline_options(s, d, o) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
	    (known && *known && ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, known) < 0)) {
		buf_printf(err, "bad ssh options for %s: %s", d->host, ssh_get_error(s));
		return -EINVAL;
	}
	return 0;
}

/* "alias" or "alias (hostname)" when the config renamed the host. */
static char *make_label(ssh_session s, const char *alias)
{
	char *real = NULL;
	char *label = NULL;
	if (ssh_options_get(s, SSH_OPTIONS_HOST, &real) == SSH_OK && real &&
	    strcmp(real, alias) != 0) {
		size_t n = strlen(alias) + strlen(real) + 4;
		label = malloc(n);
		if (label)
			snprintf(label, n, "%s (%s)", alias, real);
	} else {
		label = strdup(alias);
	}
	ssh_string_free_char(real);
	return label;
}

/* ---- open: host key ------------------------------------------------------- */

/* "ssh-ed25519 SHA256:..." of the server's key into out. */
static void server_key_text(ssh_session s, char *out, size_t size)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL;

	snprintf(out, size, "unknown key");
	if (ssh_get_server_publickey(s, &key) != SSH_OK)
		return;
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0)
		fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	snprintf(out, size, "%s %s", ssh_key_type_to_char(ssh_key_type(key)),
		 fp ? fp : "(no fingerprint)");
	ssh_string_free_char(fp);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
}

/* The name known_hosts uses: "host" on port 22, else "[host]:port". */
static void known_hosts_name(ssh_session s, char *out, size_t size)
{
	char *host = NULL;
	unsigned int port = 22;
	ssh_options_get(s, SSH_OPTIONS_HOST, &host);
	ssh_options_get_port(s, &port);
	if (port == 22)
		snprintf(out, size, "%s", host ? host : "?");
	else
		snprintf(out, size, "[%s]:%u", host ? host : "?", port);
	ssh_string_free_char(host);
}

static int refuse_key(struct ssh_transport *st, enum ssh_known_hosts_e state,
		      const char *file, const char *keytext, struct buf *err)
{
	char name[300];
	known_hosts_name(st->session, name, sizeof(name));
	if (state == SSH_KNOWN_HOSTS_CHANGED || state == SSH_KNOWN_HOSTS_OTHER)
		buf_printf(err,
			   "host key for %s has CHANGED (now %s%s): refusing to connect; "
			   "if this is expected, remove the old key: ssh-keygen -f '%s' -R '%s'",
			   st->label, keytext,
			   state == SSH_KNOWN_HOSTS_OTHER ? ", known_hosts has a key of another type" : "",
			   file, name);
	else
		buf_printf(err,
			   "host %s is not in %s (key %s); connect once with ssh, "
			   "or pass --accept-new-host-key",
			   st->label, file, keytext);
	return -EACCES;
}

static int verify_host_key(struct ssh_transport *st, bool accept_new, struct buf *err)
{
	ssh_session s = st->session;
	char keytext[160];
	char *file = NULL;
	int rc = 0;

	enum ssh_known_hosts_e state = ssh_session_is_known_server(s);
	if (state == SSH_KNOWN_HOSTS_OK)
		return 0;
	ssh_options_get(s, SSH_OPTIONS_KNOWNHOSTS, &file);
	const char *f = file ? file : "~/.ssh/known_hosts";
	server_key_text(s, keytext, sizeof(keytext));

	if (state == SSH_KNOWN_HOSTS_ERROR) {
		buf_printf(err, "cannot check the host key of %s against %s: %s", st->label, f,
			   ssh_get_error(s));
		rc = -EIO;
	} else if (state != SSH_KNOWN_HOSTS_UNKNOWN && state != SSH_KNOWN_HOSTS_NOT_FOUND) {
		rc = refuse_key(st, state, f, keytext, err);
	} else if (!accept_new) {
		rc = refuse_key(st, state, f, keytext, err);
	} else if (ssh_session_update_known_hosts(s) != SSH_OK) {
		buf_printf(err, "cannot add the host key of %s to %s: %s", st->label, f,
			   ssh_get_error(s));
		rc = -EIO;
	} else {
		log_warn("added host key of %s (%s) to %s", st->label, keytext, f);
	}
	ssh_string_free_char(file);
	return rc;
}

/* ---- open: authentication ------------------------------------------------- */

static void describe_methods(int methods, char *out, size_t size)
{
	static const struct {
		int bit;
		const char *name;
	} names[] = {
		{ SSH_AUTH_METHOD_PUBLICKEY, "publickey" },
		{ SSH_AUTH_METHOD_PASSWORD, "password" },
		{ SSH_AUTH_METHOD_INTERACTIVE, "keyboard-interactive" },
		{ SSH_AUTH_METHOD_GSSAPI_MIC, "gssapi-with-mic" },
		{ SSH_AUTH_METHOD_HOSTBASED, "hostbased" },
	};
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(methods & names[i].bit) || used >= size)
			continue;
		int n = snprintf(out + used, size - used, "%s%s", used ? "," : "", names[i].name);
		used += n > 0 ? (size_t)n : 0;
	}
	if (!out[0])
		snprintf(out, size, "none");
}

/* One line saying what failed and what was tried. */
static void auth_error(struct ssh_transport *st, const struct ssh_options *o, int methods,
		       bool tried_key, struct buf *err)
{
	ssh_session s = st->session;
	char allowed[96];
	char *user = NULL;
	const char *agent = getenv("SSH_AUTH_SOCK");

	describe_methods(methods, allowed, sizeof(allowed));
	ssh_options_get(s, SSH_OPTIONS_USER, &user);
	buf_printf(err, "authentication to %s@%s failed", user ? user : "?", st->label);
	if (!tried_key)
		buf_printf(err, ": the server does not accept public keys (it allows: %s)", allowed);
	else
		buf_printf(err, " (tried publickey: %s%s%s%skey files from ssh config and ~/.ssh; "
			   "server allows: %s)",
			   agent && *agent ? "ssh-agent, " : "", o->identity ? "-i " : "",
			   o->identity ? o->identity : "", o->identity ? ", " : "", allowed);
	ssh_string_free_char(user);
}

static int authenticate(struct ssh_transport *st, const struct ssh_options *o,
			struct buf *err)
{
	ssh_session s = st->session;

	int rc = ssh_userauth_none(s, NULL);
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	int methods = rc == SSH_AUTH_ERROR ? 0 : ssh_userauth_list(s, NULL);
	bool tried_key = false;
	if (methods & SSH_AUTH_METHOD_PUBLICKEY) {
		tried_key = true;
		rc = ssh_userauth_publickey_auto(s, NULL, NULL);
		if (rc == SSH_AUTH_SUCCESS)
			return 0;
	}
	if (rc == SSH_AUTH_ERROR)
		buf_printf(err, "authentication to %s failed: %s", st->label, ssh_get_error(s));
	else
		auth_error(st, o, methods, tried_key, err);
	return -EACCES;
}

/* ---- open ------------------------------------------------------------------ */

static int start_command(struct ssh_transport *st, const char *command, struct buf *err)
{
	st->channel = ssh_channel_new(st->session);
	if (!st->channel)
		return -ENOMEM;
	ssh_callbacks_init(&st->cb);
	st->cb.userdata = st;
	st->cb.channel_data_function = on_data;
	st->cb.channel_exit_signal_function = on_exit_signal;
	if (ssh_set_channel_callbacks(st->channel, &st->cb) != SSH_OK)
		return -ENOMEM;
	if (ssh_channel_open_session(st->channel) != SSH_OK) {
		buf_printf(err, "cannot open a session on %s: %s", st->label,
			   ssh_get_error(st->session));
		return -EIO;
	}
	if (ssh_channel_request_exec(st->channel, command) != SSH_OK) {
		buf_printf(err, "cannot run the agent on %s: %s", st->label,
			   ssh_get_error(st->session));
		return -EIO;
	}
	return 0;
}

static int connect_session(struct ssh_transport *st, struct buf *err)
{
	if (ssh_connect(st->session) == SSH_OK)
		return 0;
	unsigned int port = 22;
	ssh_options_get_port(st->session, &port);
	buf_printf(err, "cannot connect to %s port %u: %s", st->label, port,
		   ssh_get_error(st->session));
	return -EHOSTUNREACH;
}

/* "[user@]host[:port]" as the user gave it (IPv6 literals bracketed). */
static char *make_peer(const struct dest *d, int port)
{
	bool v6 = strchr(d->host, ':') != NULL;
	size_t n = (d->user ? strlen(d->user) : 0) + strlen(d->host) + 20;
	char *p = malloc(n);
	if (!p)
		return NULL;
	int used = snprintf(p, n, "%s%s%s%s%s", d->user ? d->user : "", d->user ? "@" : "",
			    v6 ? "[" : "", d->host, v6 ? "]" : "");
	if (port > 0 && used > 0)
		snprintf(p + used, n - (size_t)used, ":%d", port);
	return p;
}

static struct ssh_transport *st_new(const struct dest *d, const struct ssh_options *o)
{
	struct ssh_transport *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->base.ops = &ssh_ops;
	st->base.peer = make_peer(d, o->port);
	st->session = ssh_new();
	if (!st->base.peer || !st->session) {
		st_free(st);
		return NULL;
	}
	return st;
}

int transport_ssh_open(const struct dest *d, const struct ssh_options *o,
		       const char *command, struct transport **out, struct buf *err)
{
	*out = NULL;
	if (!d || d->local || !d->host || !o || !command) {
		buf_printf(err, "internal error: bad arguments to transport_ssh_open");
		return -EINVAL;
	}
	struct ssh_transport *st = st_new(d, o);
	if (!st)
		return -ENOMEM;
	int rc = configure(st, d, o, err);
	if (rc == 0) {
		st->label = make_label(st->session, d->host);
		rc = st->label ? connect_session(st, err) : -ENOMEM;
	}
	if (rc == 0)
		rc = verify_host_key(st, o->accept_new_host_key, err);
	if (rc == 0)
		rc = authenticate(st, o, err);
	if (rc == 0)
		rc = start_command(st, command, err);
	if (rc < 0) {
		set_session_timeout(st->session, 1000);
		st_free(st);
		return rc;
	}
	*out = &st->base;
	return 0;
}
