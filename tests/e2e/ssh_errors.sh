#!/usr/bin/env bash
# End-to-end: SSH error cases against a private sshd on 127.0.0.1
# (tests/lib/sshd.sh): nothing listening, wrong key, unknown host key (and
# --accept-new-host-key), changed host key, agent missing on the host.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/sshd.sh
. "$SRCDIR/tests/lib/sshd.sh"
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
tree_require_tools ssh-keygen

sshd_start

work=$(tree_tmpdir)
src=$work/src
mkdir -p "$src/sub"
printf 'hello\n' >"$src/a.txt"
printf 'world\n' >"$src/sub/b.txt"
: >"$work/ssh_config"
export HERMES_SSH_CONFIG=$work/ssh_config
export HERMES_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS
host=127.0.0.1

# is_listening PORT: something accepts TCP connections on 127.0.0.1:PORT
is_listening() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# --------------------------------------------------------------------------
step "sanity: the harness works with the right key"
mkdir -p "$work/dst-ok"
HERMES_ARGS=(-p "$SSHD_PORT" -i "$SSHD_KEY")
hs ok "$src" "$host:$work/dst-ok"
expect_ok "sync with the right key"
compare_trees "$src" "$work/dst-ok" || fail "sync with the right key: trees differ"

# --------------------------------------------------------------------------
step "nothing listening on the port"
port=""
for ((i = 0; i < 200; i++)); do
	p=$((20000 + (RANDOM * 7 + i) % 40000))
	if ((p != SSHD_PORT)) && ! is_listening "$p"; then
		port=$p
		break
	fi
done
[[ -n $port ]] || fail "test setup: found no free port"
mkdir -p "$work/dst-noport"
HERMES_ARGS=(-p "$port" -i "$SSHD_KEY")
hs noport "$src" "$host:$work/dst-noport"
expect_fail "nothing listening"
expect_err "nothing listening" -i 'cannot connect'
expect_err "nothing listening (names the host)" -F "$host"

# --------------------------------------------------------------------------
step "wrong key"
ssh-keygen -q -t ed25519 -N '' -C wrong-key -f "$work/wrong-key"
mkdir -p "$work/dst-wrongkey"
HERMES_ARGS=(-p "$SSHD_PORT" -i "$work/wrong-key")
hs wrongkey "$src" "$host:$work/dst-wrongkey"
expect_fail "wrong key"
expect_err "wrong key" -i 'authentication'
[[ -z $(ls -A "$work/dst-wrongkey") ]] || fail "wrong key: something was written to DEST"

# --------------------------------------------------------------------------
step "unknown host key"
HERMES_ARGS=(-p "$SSHD_PORT" -i "$SSHD_KEY")
: >"$work/known_hosts.empty"
mkdir -p "$work/dst-unknown"
HERMES_KNOWN_HOSTS=$work/known_hosts.empty hs unknown "$src" "$host:$work/dst-unknown"
expect_fail "unknown host key"
expect_err "unknown host key (names the host)" -F "$host"
expect_err "unknown host key (mentions the option)" -F -- '--accept-new-host-key'
[[ -z $(ls -A "$work/dst-unknown") ]] || fail "unknown host key: something was written to DEST"
[[ ! -s $work/known_hosts.empty ]] || fail "unknown host key: known_hosts was written without --accept-new-host-key"

step "unknown host key with --accept-new-host-key"
HERMES_KNOWN_HOSTS=$work/known_hosts.empty hs accept --accept-new-host-key "$src" "$host:$work/dst-unknown"
expect_ok "--accept-new-host-key"
compare_trees "$src" "$work/dst-unknown" || fail "--accept-new-host-key: trees differ"
[[ -s $work/known_hosts.empty ]] || fail "--accept-new-host-key: no entry was added to known_hosts"
echo "known_hosts now:"
sed 's/^/  /' "$work/known_hosts.empty"
printf 'changed\n' >>"$src/a.txt"
HERMES_KNOWN_HOSTS=$work/known_hosts.empty hs accepted "$src" "$host:$work/dst-unknown"
expect_ok "sync with the host key accepted before (no option)"
compare_trees "$src" "$work/dst-unknown" || fail "after accepting the host key: trees differ"

# --------------------------------------------------------------------------
step "changed host key"
ssh-keygen -q -t ed25519 -N '' -C other-host -f "$work/other-host-key"
printf '[%s]:%s %s\n' "$host" "$SSHD_PORT" "$(cut -d' ' -f1,2 "$work/other-host-key.pub")" \
	>"$work/known_hosts.changed"
cp "$work/known_hosts.changed" "$work/known_hosts.changed.orig"
mkdir -p "$work/dst-changed"
HERMES_KNOWN_HOSTS=$work/known_hosts.changed hs changed "$src" "$host:$work/dst-changed"
expect_fail "changed host key"
expect_err "changed host key" -F 'CHANGED'
HERMES_KNOWN_HOSTS=$work/known_hosts.changed hs changed-accept --accept-new-host-key \
	"$src" "$host:$work/dst-changed"
expect_fail "changed host key with --accept-new-host-key"
expect_err "changed host key with --accept-new-host-key" -F 'CHANGED'
[[ -z $(ls -A "$work/dst-changed") ]] || fail "changed host key: something was written to DEST"
cmp -s "$work/known_hosts.changed" "$work/known_hosts.changed.orig" ||
	fail "changed host key: known_hosts was modified"

# --------------------------------------------------------------------------
step "agent missing on the host"
mkdir -p "$work/dst-noagent"
HS_AGENT=/nonexistent/hermes-agent hs noagent "$src" "$host:$work/dst-noagent"
expect_fail "agent missing on the host"
expect_err "agent missing on the host" -F 'hermes-agent'
expect_err "agent missing on the host (not found)" -i 'not found'
expect_err "agent missing on the host (names the host)" -F "$host"
expect_err "agent missing on the host (how to install it)" -i 'install'

echo "PASS: ssh_errors"
