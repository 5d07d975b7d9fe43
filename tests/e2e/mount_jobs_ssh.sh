#!/usr/bin/env bash
# End-to-end: jobs of a mount whose destination is reached over SSH (a
# private sshd on 127.0.0.1): the job connection is a second SSH channel to
# `hermes-agent --jobs`; output, exit code and the barrier travel over it,
# and a dropped connection fails the running job with a message naming the
# host, after which the next job runs over a fresh connection.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/sshd.sh
. "$SRCDIR/tests/lib/sshd.sh"
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
# shellcheck source=tests/lib/podman.sh
. "$SRCDIR/tests/lib/podman.sh"
[[ -e /dev/fuse ]] || { echo "SKIP: no /dev/fuse"; exit 77; }

sshd_start
podman_start
cleanup_add podman_stop
export HERMES_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS
export HERMES_SSH_CONFIG=$SSHD_DIR/empty_config
: >"$HERMES_SSH_CONFIG"

work=$(tree_tmpdir)
LOCAL=$work/local MNT=$work/mnt DST=$work/dst
mkdir -p "$LOCAL" "$MNT" "$DST"
printf 'image = %s\ngpus = none\nwall_time = 60s\n' "$PODMAN_IMAGE" >"$LOCAL/hermes.conf"
printf 'int main(void) { return 0; }\n' >"$LOCAL/main.c"
cleanup_add "fusermount3 -u '$MNT' 2>/dev/null || true"
"$HERMES" mount -p "$SSHD_PORT" -i "$SSHD_KEY" --agent-path "$HERMES_AGENT" \
	--podman-socket "$PODMAN_SOCK" "$LOCAL" "$MNT" "127.0.0.1:$DST" || fail "mount over ssh failed"
H=$MNT/.hermes
field() { sed -n "s/^$1: //p" "$H/out/status"; }

step "a job over ssh sees the latest edit"
printf 'over ssh\n' >"$MNT/note.txt"
rc=0
out=$("$HERMES" run -C "$MNT" -- sh -c 'cat note.txt; exit 4') || rc=$?
((rc == 4)) || fail "exit code over ssh: $rc"
[[ $out == 'over ssh' ]] || fail "output over ssh: '$out'"

step "the connection drops while a job runs"
echo 'echo started; sleep 60' >"$H/run"
for _ in $(seq 100); do
	grep -q started "$H/out/stdout" 2>/dev/null </dev/null && break
	sleep 0.1
done
sshd_kill_sessions
status=$(timeout 60 cat "$H/wait") || fail "wait hung after the drop"
grep -qx 'state: failed' <<<"$status" || fail "after the drop: $status"
grep -q '127.0.0.1' <<<"$status" || fail "the message does not name the host: $status"

step "the next job runs over a new connection"
for _ in $(seq 50); do
	timeout 30 cat "$H/flush" >/dev/null 2>&1 && break
	sleep 0.2
done
rc=0
out=$("$HERMES" run -C "$MNT" -- echo again) || rc=$?
((rc == 0)) && [[ $out == again ]] || fail "after reconnecting: exit $rc, '$out'"
for _ in $(seq 100); do
	[[ $(podman_cli ps -aq --filter label=hermes.owner | wc -l) == 0 ]] && break
	sleep 0.2
done
[[ $(podman_cli ps -aq --filter label=hermes.owner | wc -l) == 0 ]] || fail "the dropped job's container was left behind"
"$HERMES" umount "$MNT" || fail "umount"
echo PASS
