#!/usr/bin/env bash
# Mount suite: disconnects over SSH (a private sshd on 127.0.0.1). The sshd
# is stopped while the user edits: the mount keeps serving, no write waits
# on the network (each edit is timed, none may take 2 s), .hermes/sync says
# the host is away, a flush barrier waits; the sshd comes back and the host
# converges. Then the mount daemon is killed with -9 while offline, and a
# remount catches up every edit.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# sshd.sh first: its cleanup_add/EXIT trap is the one tree.sh then uses.
. "$SRCDIR/tests/lib/sshd.sh"
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/mount/lib.sh"
tree_require_tools
mount_require

sshd_start
ssh_config=$(tree_tmpdir)/ssh_config
: >"$ssh_config"
export HERMES_SSH_CONFIG=$ssh_config
export HERMES_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS
SSH_ARGS=(-p "$SSHD_PORT" -i "$SSHD_KEY")

# The listener and every session go; the config stays for sshd_restart.
sshd_down() {
	local pid
	pid=$(cat "$SSHD_DIR/sshd.pid")
	sshd_kill_sessions KILL
	kill "$pid"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
	fail "sshd (pid $pid) did not stop"
}
sshd_up() {
	rm -f "$SSHD_DIR/sshd.pid"
	/usr/sbin/sshd -f "$SSHD_DIR/sshd_config" -E "$SSHD_LOG" || fail "sshd did not restart"
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null && return 0
		sleep 0.05
	done
	fail "sshd did not listen again on port $SSHD_PORT"
}

# timed NAME CMD...: run an edit, fail if it takes 2 s or more.
SLOWEST=0
timed() {
	local name=$1 t0 dt
	shift
	t0=$(now_ms)
	"$@" || fail "edit '$name' failed"
	dt=$(($(now_ms) - t0))
	((dt > SLOWEST)) && SLOWEST=$dt
	((dt < 2000)) || fail "edit '$name' took $dt ms while the host was away"
}
put() { printf '%s\n' "$2" >"$1"; }
append() { printf '%s\n' "$2" >>"$1"; }
save_over() { printf '%s\n' "$2" >"$1.tmp" && mv "$1.tmp" "$1"; }
status() { cat "$1/.hermes/sync" >/dev/null; }

# wait_state MNT REGEX SECONDS: .hermes/sync shows a matching state line.
wait_state() {
	local t0
	t0=$(now_ms)
	until grep -Eq "^state: ($2)" "$1/.hermes/sync"; do
		(($(now_ms) - t0 < $3 * 1000)) ||
			fail "state did not become $2 within $3 s: $(cat "$1/.hermes/sync")"
		sleep 0.05
	done
}

# edits ROUND: a burst of editor-like operations on the mount, each timed.
edits() {
	local r=$1 i
	mkdir -p "$MNT/src/r$r"
	for i in $(seq 30); do
		timed "create $r/$i" put "$MNT/src/r$r/f$i.c" "int f$i(void) { return $i; }"
	done
	for i in $(seq 10); do
		timed "append $r/$i" append "$MNT/src/r$r/f$i.c" "/* edited offline $r */"
		timed "save-over $r/$i" save_over "$MNT/src/r$r/f$((i + 10)).c" "/* saved $r */"
	done
	timed "rename $r" mv "$MNT/src/r$r/f30.c" "$MNT/src/r$r/renamed.c"
	timed "delete $r" rm "$MNT/src/r$r/f29.c"
	timed "chmod $r" chmod 0755 "$MNT/src/r$r/f28.c"
	timed "big $r" dd if=/dev/urandom of="$MNT/src/r$r/blob.bin" bs=1M count=4 status=none
	timed "status $r" status "$MNT"
}

work=$(tree_tmpdir)
LOCAL=$work/local MNT=$work/mnt DST=$work/dst
mkdir -p "$MNT" "$DST"
gen_tree "$LOCAL"
mkdir -p "$LOCAL/src"
DEST=127.0.0.1:$DST

step "mount over SSH"
mount_at "$LOCAL" "$MNT" "$DEST" "${SSH_ARGS[@]}"
flush "$MNT" initial
converged "$LOCAL" "$DST"
grep -q "^host: $DEST" "$MNT/.hermes/sync" || fail ".hermes/sync: $(cat "$MNT/.hermes/sync")"

step "the sshd stops; editing goes on without waiting"
sshd_down
edits 1
wait_state "$MNT" 'offline|connecting' 30
grep -Eq '^last error: .+' "$MNT/.hermes/sync"
echo "  slowest edit while offline: $SLOWEST ms"
# A flush barrier started now waits for the host...
timeout 120 cat "$MNT/.hermes/flush" >"$work/flush.out" &
flusher=$!
sleep 0.5 # (only to show the barrier waits; correctness does not depend on it)
kill -0 "$flusher" 2>/dev/null || fail "the flush barrier returned while the host was away"
edits 2

step "the sshd comes back: the barrier returns, the host converges"
sshd_up
wait "$flusher" || fail "the flush barrier failed after the host came back"
flush "$MNT" "after reconnecting"
converged "$LOCAL" "$DST"
wait_state "$MNT" idle 10

step "offline again, then the mount daemon is killed with -9"
sshd_down
edits 3
printf 'the very last edit\n' >"$MNT/src/last.txt"
pid=$(pgrep -f "^$HERMES mount --agent-path $HERMES_AGENT .*$LOCAL $MNT" | head -n1)
[[ -n $pid ]] || fail "cannot find the mount daemon"
kill -9 "$pid"
_mount_cleanup "$MNT"
! mounted "$MNT" || fail "cannot unmount after the daemon was killed"
[[ $(cat "$LOCAL/src/last.txt") == 'the very last edit' ]] || fail "edit lost on the local disk"

step "remount with the host back: every edit reaches it"
sshd_up
mount_at "$LOCAL" "$MNT" "$DEST" "${SSH_ARGS[@]}"
flush "$MNT" remount
converged "$LOCAL" "$DST"

step "the connection drops (sessions killed) in the middle of a big push"
dd if=/dev/urandom of="$MNT/src/huge.bin" bs=1M count=64 status=none
sshd_kill_sessions KILL
timed "edit during the drop" append "$MNT/src/r1/f1.c" "/* during the drop */"
flush "$MNT" "after the drop"
converged "$LOCAL" "$DST"
"$HERMES" umount "$MNT" || fail "hermes umount failed"

daemon_log_clean "$LOCAL"
echo "slowest edit while offline: $SLOWEST ms"
echo "PASS: ssh_disconnect"
