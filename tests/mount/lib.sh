# shellcheck shell=bash
# tests/mount/lib.sh: helpers for the mount suite (source after tests/lib/tree.sh,
# and after tests/lib/sshd.sh when the test needs one).
#
#   mount_require              skip (77) without /dev/fuse, fail without fusermount3
#   mount_at LOCAL MNT DEST [ARGS...]
#                              hermes mount (daemonized), unmounted on exit
#   mount_fg LOCAL MNT DEST [ARGS...]
#                              hermes mount -f in the background: MOUNT_PID is its
#                              pid (our child, so its exit status can be read)
#   mounted MNT                true while MNT is a FUSE mount
#   wait_mounted MNT [PID]     bounded wait for the mount (fails if PID died)
#   wait_unmounted MNT         bounded wait for the mount to go
#   flush MNT WHAT             the flush barrier (cat MNT/.hermes/flush), bounded
#   converged LOCAL DST        compare_trees, failing the test on a difference
#   now_ms                     milliseconds since the epoch
#   daemon_log_clean LOCAL     fail if the daemon's log (LOCAL/.hermes/mount.log)
#                              holds a sanitizer report (ASan/UBSan builds)

mount_require() {
	[[ -e /dev/fuse ]] || { echo "SKIP: no /dev/fuse"; exit 77; }
	command -v fusermount3 >/dev/null || fail "fusermount3 missing (package fuse3)"
}

now_ms() { date +%s%3N; }

mounted() { awk -v m="$1" '$5 == m && / - fuse/ { f = 1 } END { exit !f }' /proc/self/mountinfo; }

wait_mounted() {
	local mnt=$1 pid=${2:-} i
	for i in $(seq 400); do
		mounted "$mnt" && return 0
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			fail "the mount daemon for $mnt died before mounting"
		fi
		sleep 0.05
	done
	fail "$mnt was not mounted within 20 s"
}

wait_unmounted() {
	local i
	for i in $(seq 600); do
		mounted "$1" || return 0
		sleep 0.05
	done
	fail "$1 still mounted after 30 s"
}

_mount_cleanup() { # MNT: unmount whatever is left, also a dead daemon's mount
	local i
	for i in $(seq 40); do
		mounted "$1" || return 0
		fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null || true
		sleep 0.05
	done
}

mount_at() {
	local local_dir=$1 mnt=$2 dest=$3
	shift 3
	MOUNT_LOCAL=$local_dir
	cleanup_add "_mount_cleanup '$mnt'"
	"$HERMES" mount --agent-path "$HERMES_AGENT" "$@" "$local_dir" "$mnt" "$dest" ||
		fail "hermes mount $local_dir $mnt $dest failed"
	mounted "$mnt" || fail "hermes mount returned but $mnt is not mounted"
}

mount_fg() {
	local local_dir=$1 mnt=$2 dest=$3
	shift 3
	MOUNT_LOCAL=$local_dir
	cleanup_add "_mount_cleanup '$mnt'"
	"$HERMES" mount -f --agent-path "$HERMES_AGENT" "$@" "$local_dir" "$mnt" "$dest" \
		2>>"$TREE_LOG/mount-fg.err" &
	MOUNT_PID=$!
	cleanup_add "kill -9 $MOUNT_PID 2>/dev/null || true"
	wait_mounted "$mnt" "$MOUNT_PID"
}

flush() {
	timeout 120 cat "$1/.hermes/flush" >/dev/null || {
		# the daemon's own account, for the failure report
		local log=${MOUNT_LOCAL:-/nonexistent}/.hermes/mount.log
		if grep -q 'ERROR: AddressSanitizer' "$log" 2>/dev/null; then
			sed -n '/ERROR: AddressSanitizer/,/SUMMARY/p' "$log" >&2
		else
			tail -n 40 "$log" >&2 2>/dev/null || true
		fi
		fail "flush barrier failed ($2): $(cat "$1/.hermes/sync" 2>&1)"
	}
}

converged() {
	compare_trees "$1" "$2" || fail "the host's tree $2 differs from $1"
}

daemon_log_clean() {
	local log=$1/.hermes/mount.log
	if [[ -e $log ]] && grep -Eq 'Sanitizer|runtime error:' "$log"; then
		grep -E -A20 'Sanitizer|runtime error:' "$log" | head -n 60 >&2
		fail "the mount daemon reported a sanitizer error (see $log)"
	fi
}
