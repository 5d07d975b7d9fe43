#!/usr/bin/env bash
# Mount suite: SIGTERM and SIGINT end the mount daemon cleanly: it sends
# what is pending, unmounts and exits 0, within a bounded time, also while a
# process holds a file open on the mount and while the mount is busy.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/mount/lib.sh"
tree_require_tools
mount_require

work=$(tree_tmpdir)
LOCAL=$work/local MNT=$work/mnt DST=$work/dst
mkdir -p "$LOCAL/src" "$MNT" "$DST"
printf 'one\n' >"$LOCAL/src/one.txt"

# wait_exit PID SECONDS: the exit status of our child PID, failing if it
# is still running after SECONDS.
wait_exit() {
	local pid=$1 t0 rc=0
	t0=$(now_ms)
	while kill -0 "$pid" 2>/dev/null; do
		if (($(now_ms) - t0 > $2 * 1000)); then
			fail "the mount daemon (pid $pid) did not exit within $2 s of the signal"
		fi
		# a zombie has exited: wait reaps it
		[[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
		sleep 0.05
	done
	wait "$pid" || rc=$?
	echo "  exit status $rc after $(($(now_ms) - t0)) ms"
	return "$rc"
}

for sig in TERM INT; do
	step "SIG$sig to a foreground mount right after edits"
	mount_fg "$LOCAL" "$MNT" "$DST"
	flush "$MNT" initial
	for i in $(seq 20); do printf 'edit %d\n' "$i" >"$MNT/src/file-$sig-$i.txt"; done
	printf 'appended\n' >>"$MNT/src/one.txt"
	kill -s "$sig" "$MOUNT_PID"
	wait_exit "$MOUNT_PID" 30 || fail "SIG$sig: the daemon exited with status $?"
	! mounted "$MNT" || fail "SIG$sig: still mounted after the daemon exited"
	converged "$LOCAL" "$DST"
	grep -E 'hermes:' "$TREE_LOG/mount-fg.err" && fail "SIG$sig: the daemon logged an error"
done

step "SIGTERM while a process holds a file open for writing"
mount_fg "$LOCAL" "$MNT" "$DST"
exec 3>"$MNT/held.txt"
printf 'held\n' >&3
sleep 600 <"$MNT/src/one.txt" &
holder=$!
cleanup_add "kill $holder 2>/dev/null || true"
kill -TERM "$MOUNT_PID"
wait_exit "$MOUNT_PID" 30 || fail "SIGTERM with open files: exit status $?"
exec 3>&-
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
wait_unmounted "$MNT"
[[ $(cat "$LOCAL/held.txt") == held ]] || fail "data written to the held file was lost"

step "SIGTERM to the daemonized mount"
mount_at "$LOCAL" "$MNT" "$DST"
printf 'daemon\n' >"$MNT/daemon.txt"
pid=$(pgrep -f "^$HERMES mount --agent-path $HERMES_AGENT $LOCAL $MNT" | head -n1)
[[ -n $pid ]] || fail "cannot find the mount daemon"
kill -TERM "$pid"
wait_unmounted "$MNT"
t0=$(now_ms)
while kill -0 "$pid" 2>/dev/null && [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]]; do
	(($(now_ms) - t0 < 30000)) || fail "the daemon did not exit within 30 s of SIGTERM"
	sleep 0.05
done
converged "$LOCAL" "$DST"
grep -q 'hermes:.*\(error\|cannot\)' "$LOCAL/.hermes/mount.log" 2>/dev/null &&
	fail "the daemon logged an error: $(cat "$LOCAL/.hermes/mount.log")"

daemon_log_clean "$LOCAL"
echo "PASS: signal"
