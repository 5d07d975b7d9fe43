# sshd.sh: a private sshd on 127.0.0.1 for end-to-end tests (bash; source it).
#
#   . "$SRCDIR/tests/lib/sshd.sh"
#   sshd_start                 # or: SSHD_PATH="$BUILDDIR:$PATH" sshd_start
#   HERMES_SSH_CONFIG=$SSHD_SSH_CONFIG HERMES_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS \
#       "$HERMES" sync src 127.0.0.1:/tmp/dst
#   rsync -e "$SSHD_SSH" ...   # the same server through OpenSSH
#
# sshd_start exports:
#   SSHD_DIR          temp dir holding everything below (removed by sshd_stop)
#   SSHD_PORT         the port it listens on (127.0.0.1 only)
#   SSHD_KEY          client private key (ed25519, no passphrase), authorized
#   SSHD_KNOWN_HOSTS  known_hosts with "[127.0.0.1]:PORT ssh-ed25519 ..."
#   SSHD_HOST_PUB     the server's public host key file
#   SSHD_SSH_CONFIG   client config: Host 127.0.0.1 (alias hermes-test) with
#                     Port, User, IdentityFile, UserKnownHostsFile, strict checking
#   SSHD_SSH          "ssh -F $SSHD_SSH_CONFIG", ready for rsync -e
#   SSHD_LOG          the server's log file
# Sessions get PATH=$SSHD_PATH (default: the caller's PATH), so a build dir
# can be put on the remote PATH.
#
# sshd_stop               kills the sessions and the server, removes SSHD_DIR
# sshd_kill_sessions [SIG] kills the per-connection sshd processes (default
#                         KILL), leaving the listener: the client sees its
#                         connection drop, the agent sees EOF
# cleanup_add CMD...      runs CMD on exit (last added runs first); the library
#                         owns the EXIT trap, so callers use this instead of trap
#
# Works as root (PermitRootLogin prohibit-password) or as any other user, and
# under `set -euo pipefail`. Note that libssh finds ~/.ssh through the passwd
# entry, not $HOME: point hermes at these files with HERMES_SSH_CONFIG and
# HERMES_KNOWN_HOSTS rather than by changing HOME.

if [[ -n "${_HERMES_SSHD_SH:-}" ]]; then
	return 0
fi
_HERMES_SSHD_SH=1

_HERMES_CLEANUP=()

_cleanup_run() {
	local rc=$? i
	for ((i = ${#_HERMES_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${_HERMES_CLEANUP[i]}" || true
	done
	_HERMES_CLEANUP=()
	return "$rc"
}

cleanup_add() {
	_HERMES_CLEANUP+=("$*")
}

trap _cleanup_run EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

_sshd_log_tail() {
	echo "sshd.sh: --- $SSHD_LOG ---" >&2
	tail -n 30 "$SSHD_LOG" >&2 2>/dev/null || true
}

# A port nobody listens on now (the server may still lose a race: retried).
_sshd_pick_port() {
	local p
	if command -v python3 >/dev/null 2>&1 &&
		p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) &&
		[[ -n "$p" ]]; then
		echo "$p"
		return 0
	fi
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

_sshd_port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_sshd_write_config() {
	local port=$1
	cat >"$SSHD_DIR/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
PidFile $SSHD_DIR/sshd.pid
HostKey $SSHD_DIR/host_ed25519_key
AuthorizedKeysFile $SSHD_DIR/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
PermitUserEnvironment no
SetEnv "PATH=${SSHD_PATH:-$PATH}"
UseDNS no
X11Forwarding no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
}

_sshd_write_client_files() {
	local user
	user=$(id -un)
	echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$SSHD_HOST_PUB")" >"$SSHD_KNOWN_HOSTS"
	cat >"$SSHD_SSH_CONFIG" <<EOF
Host 127.0.0.1 hermes-test
	HostName 127.0.0.1
	Port $SSHD_PORT
	User $user
	IdentityFile $SSHD_KEY
	IdentitiesOnly yes
	UserKnownHostsFile $SSHD_KNOWN_HOSTS
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking yes
	BatchMode yes
	LogLevel ERROR
EOF
}

# Start sshd on `port`; 0 once it accepts connections, 1 if it died, 2 on timeout.
_sshd_try_port() {
	local port=$1 i pid
	_sshd_write_config "$port"
	: >"$SSHD_LOG"
	rm -f "$SSHD_DIR/sshd.pid"
	if ! /usr/sbin/sshd -f "$SSHD_DIR/sshd_config" -E "$SSHD_LOG"; then
		return 1
	fi
	for i in $(seq 1 100); do
		pid=$(cat "$SSHD_DIR/sshd.pid" 2>/dev/null || true)
		if [[ -n "$pid" ]] && _sshd_port_open "$port"; then
			return 0
		fi
		if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		# The daemon may exit 0 before it binds: a lost port race shows in the log.
		if [[ -z "$pid" ]] && grep -q 'Cannot bind any address' "$SSHD_LOG" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 2
}

sshd_start() {
	local try rc=1 port
	if [[ -n "${SSHD_DIR:-}" && -d "${SSHD_DIR:-}" ]]; then
		echo "sshd.sh: sshd already started in $SSHD_DIR" >&2
		return 1
	fi
	mkdir -p /run/sshd 2>/dev/null || true
	SSHD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hermes-sshd.XXXXXX") || return 1
	export SSHD_DIR
	cleanup_add sshd_stop
	export SSHD_LOG=$SSHD_DIR/sshd.log
	export SSHD_KEY=$SSHD_DIR/client_key
	export SSHD_HOST_PUB=$SSHD_DIR/host_ed25519_key.pub
	export SSHD_KNOWN_HOSTS=$SSHD_DIR/known_hosts
	export SSHD_SSH_CONFIG=$SSHD_DIR/ssh_config

	if ! { ssh-keygen -q -t ed25519 -N '' -C hermes-test-host -f "$SSHD_DIR/host_ed25519_key" &&
		ssh-keygen -q -t ed25519 -N '' -C hermes-test-client -f "$SSHD_KEY" &&
		cp "$SSHD_KEY.pub" "$SSHD_DIR/authorized_keys"; }; then
		echo "sshd.sh: ssh-keygen failed" >&2
		return 1
	fi
	chmod 600 "$SSHD_KEY" "$SSHD_DIR/authorized_keys"

	for try in 1 2 3 4 5; do
		port=$(_sshd_pick_port) || break
		rc=0
		_sshd_try_port "$port" || rc=$?
		[[ $rc -eq 0 || $rc -eq 2 ]] && break
	done
	if [[ $rc -ne 0 ]]; then
		echo "sshd.sh: sshd did not start (try $try, port ${port:-none})" >&2
		_sshd_log_tail
		return 1
	fi
	export SSHD_PORT=$port
	_sshd_write_client_files
	export SSHD_SSH="ssh -F $SSHD_SSH_CONFIG"
}

# Pids of the descendants of $1 (depth first, parents before children).
_sshd_descendants() {
	local c
	for c in $(pgrep -P "$1" 2>/dev/null); do
		echo "$c"
		_sshd_descendants "$c"
	done
}

sshd_kill_sessions() {
	local sig=${1:-KILL} listener pid comm
	listener=$(cat "$SSHD_DIR/sshd.pid" 2>/dev/null) || return 1
	for pid in $(_sshd_descendants "$listener"); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		if [[ "$comm" == sshd ]]; then
			kill -s "$sig" "$pid" 2>/dev/null || true
		fi
	done
	return 0
}

sshd_stop() {
	local pid i
	[[ -n "${SSHD_DIR:-}" && -d "$SSHD_DIR" ]] || return 0
	pid=$(cat "$SSHD_DIR/sshd.pid" 2>/dev/null || true)
	if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
		sshd_kill_sessions KILL || true
		kill "$pid" 2>/dev/null || true
		for i in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$SSHD_DIR"
	unset SSHD_DIR SSHD_PORT SSHD_KEY SSHD_KNOWN_HOSTS SSHD_SSH_CONFIG SSHD_SSH SSHD_LOG SSHD_HOST_PUB
}
