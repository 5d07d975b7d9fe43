#!/usr/bin/env bash
# sync-bench.sh: hermes against rsync over the same loopback sshd, side by side.
#
#   sudo bench/sync-bench.sh        (root: it starts a private sshd)
#
# Binaries: $HERMES / $HERMES_AGENT, default build/hermes and build/hermes-agent.
# Measures, each tool into its own destination on 127.0.0.1:
#   (a) initial sync of a copy of /usr/include: median of 3 timed runs, each
#       into a fresh empty directory (one untimed run of each first, to warm
#       the page cache)
#   (b) bytes on the wire after appending one line to stdio.h
#   (c) a 1-byte change in a 100 MiB random file: bytes on the wire and time,
#       median of 3 (a different byte each time)
# and prints a table: metric, hermes, rsync, ratio (hermes/rsync), target,
# PASS/FAIL. Exit status 0 when every target is met, 1 otherwise.
# Everything it makes is removed on exit. About a minute on 2 cores.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILDDIR=${BUILDDIR:-$repo/build}
HERMES=${HERMES:-$BUILDDIR/hermes}
HERMES_AGENT=${HERMES_AGENT:-$BUILDDIR/hermes-agent}
SRCDIR=$repo
export SRCDIR BUILDDIR HERMES HERMES_AGENT

die() {
	printf 'sync-bench: %s\n' "$*" >&2
	exit 2
}
(($(id -u) == 0)) || die "run as root (it starts a private sshd on 127.0.0.1)"
[[ -x $HERMES ]] || die "no hermes at $HERMES (build first, or set HERMES)"
[[ -x $HERMES_AGENT ]] || die "no hermes-agent at $HERMES_AGENT (set HERMES_AGENT)"
for t in rsync ssh ssh-keygen openssl; do
	command -v "$t" >/dev/null || die "$t is not installed"
done

# sshd.sh owns the EXIT trap; tree.sh registers its temp root with it.
# shellcheck source=tests/lib/sshd.sh
. "$repo/tests/lib/sshd.sh"
# shellcheck source=tests/lib/tree.sh
. "$repo/tests/lib/tree.sh"

W=$(tree_tmpdir)
LOG=$W/log
mkdir -p "$LOG"

sshd_start || die "could not start the test sshd"
export HERMES_SSH_CONFIG=$SSHD_SSH_CONFIG
export HERMES_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS
HOST=127.0.0.1
# rsync gets the same server through OpenSSH; /.hermes is hermes' own state
# in SRC and is not part of the data.
RSYNC=(rsync -a --exclude=/.hermes -e "$SSHD_SSH")
HSYNC=("$HERMES" sync -p "$SSHD_PORT" -i "$SSHD_KEY" --agent-path "$HERMES_AGENT")

# ------------------------------------------------------------------ helpers ---
# run_timed LOGNAME CMD...: run CMD, stdout/stderr to $LOG/LOGNAME.{out,err};
# ELAPSED = wall time in seconds (3 decimals). Aborts the bench on failure.
run_timed() {
	local name=$1 t0 t1 rc=0
	shift
	t0=${EPOCHREALTIME/./}
	"$@" </dev/null >"$LOG/$name.out" 2>"$LOG/$name.err" || rc=$?
	t1=${EPOCHREALTIME/./}
	if ((rc != 0)); then
		echo "sync-bench: '$*' failed with status $rc:" >&2
		tail -n 20 "$LOG/$name.err" >&2
		exit 1
	fi
	ELAPSED=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e6 }')
}

median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

# rsync_bytes FILE: "Total bytes sent" + "Total bytes received" of rsync --stats
rsync_bytes() {
	local s r
	s=$(sed -n 's/^Total bytes sent: *\([0-9,]*\).*/\1/p' "$1" | tr -d ,)
	r=$(sed -n 's/^Total bytes received: *\([0-9,]*\).*/\1/p' "$1" | tr -d ,)
	[[ -n $s && -n $r ]] || die "no byte totals in rsync output $1"
	echo $((s + r))
}

# hermes_bytes FILE: "bytes sent" + "bytes received" of hermes --stats
hermes_bytes() {
	local s r
	s=$(sed -n 's/^bytes sent: *\([0-9]*\) *$/\1/p' "$1")
	r=$(sed -n 's/^bytes received: *\([0-9]*\) *$/\1/p' "$1")
	[[ -n $s && -n $r ]] || die "no 'bytes sent/received' in hermes --stats output $1"
	echo $((s + r))
}

ROWS=()
FAILED=0
# row METRIC HERMES RSYNC TARGET_KIND TARGET: TARGET_KIND is ratio (hermes/rsync
# <= TARGET), abs (hermes <= TARGET) or info (no target).
row() {
	local metric=$1 h=$2 r=$3 kind=$4 target=${5:-} ratio verdict tdesc
	ratio=$(awk -v h="$h" -v r="$r" 'BEGIN { if (r > 0) printf "%.2f", h / r; else print "-" }')
	case $kind in
	ratio)
		tdesc="ratio <= $target"
		verdict=$(awk -v x="$ratio" -v t="$target" 'BEGIN { print (x != "-" && x + 0 <= t + 0) ? "PASS" : "FAIL" }')
		;;
	abs)
		tdesc="hermes <= $target"
		verdict=$(awk -v x="$h" -v t="$target" 'BEGIN { print (x + 0 <= t + 0) ? "PASS" : "FAIL" }')
		;;
	*)
		tdesc="-"
		verdict="info"
		;;
	esac
	[[ $verdict == FAIL ]] && FAILED=1
	ROWS+=("$metric|$h|$r|$ratio|$tdesc|$verdict")
}

# ------------------------------------------------------- (a) initial sync ---
SRC=$W/include
cp -a /usr/include "$SRC"
nfiles=$(find "$SRC" -type f | wc -l)
nbytes=$(du -sb "$SRC" | cut -f1)
printf 'data: copy of /usr/include: %d files, %d bytes (%d MiB)\n' \
	"$nfiles" "$nbytes" $((nbytes / 1048576))
printf 'ssh: 127.0.0.1 port %s; hermes %s\n' "$SSHD_PORT" "$HERMES"

echo "(a) initial sync: warming up"
mkdir -p "$W/warm-r" "$W/warm-h"
run_timed warm-r "${RSYNC[@]}" "$SRC/" "$HOST:$W/warm-r/"
run_timed warm-h "${HSYNC[@]}" "$SRC" "$HOST:$W/warm-h"
rm -rf "$W/warm-r" "$W/warm-h"

ta_r=() ta_h=()
for i in 1 2 3; do
	rm -rf "$W/dst-r" "$W/dst-h" "$SRC/.hermes"
	mkdir -p "$W/dst-r" "$W/dst-h"
	run_timed "init-r$i" "${RSYNC[@]}" "$SRC/" "$HOST:$W/dst-r/"
	ta_r+=("$ELAPSED")
	run_timed "init-h$i" "${HSYNC[@]}" "$SRC" "$HOST:$W/dst-h"
	ta_h+=("$ELAPSED")
	printf '  run %d: rsync %ss, hermes %ss\n' "$i" "${ta_r[-1]}" "${ta_h[-1]}"
done
# sanity: both copies hold the data
cmp -s "$SRC/stdio.h" "$W/dst-h/stdio.h" || die "hermes' copy of stdio.h differs"
cmp -s "$SRC/stdio.h" "$W/dst-r/stdio.h" || die "rsync's copy of stdio.h differs"
row "(a) initial sync, s (median of 3)" "$(median3 "${ta_h[@]}")" "$(median3 "${ta_r[@]}")" ratio 0.8

# ------------------------------------------------- (b) one-line header edit ---
echo "(b) one line appended to stdio.h"
printf '/* sync-bench: one more line */\n' >>"$SRC/stdio.h"
run_timed edit-r "${RSYNC[@]}" --stats "$SRC/" "$HOST:$W/dst-r/"
tb_r=$ELAPSED
run_timed edit-h "${HSYNC[@]}" --stats "$SRC" "$HOST:$W/dst-h"
tb_h=$ELAPSED
cmp -s "$SRC/stdio.h" "$W/dst-h/stdio.h" || die "hermes did not bring stdio.h up to date"
row "(b) one-line edit, bytes on the wire" "$(hermes_bytes "$LOG/edit-h.out")" \
	"$(rsync_bytes "$LOG/edit-r.out")" abs 2048
row "(b) one-line edit, s" "$tb_h" "$tb_r" info

# ---------------------------------------- (c) 1 byte in a 100 MiB file ---
echo "(c) 1-byte change in a 100 MiB random file"
BIG=$W/bigsrc
mkdir -p "$BIG" "$W/big-r" "$W/big-h"
_tree_bytes 4242 $((100 * 1024 * 1024)) >"$BIG/big.bin"
run_timed big-init-r "${RSYNC[@]}" "$BIG/" "$HOST:$W/big-r/"
run_timed big-init-h "${HSYNC[@]}" "$BIG" "$HOST:$W/big-h"
tc_r=() tc_h=() bc_r=() bc_h=()
for i in 1 2 3; do
	off=$((i * 26 * 1024 * 1024 + i * 12345))
	old=$(od -An -tu1 -j "$off" -N1 "$BIG/big.bin" | tr -d ' ')
	# shellcheck disable=SC2059 # the format is the byte itself
	printf "\\$(printf '%03o' $((old ^ 0xff)))" |
		dd of="$BIG/big.bin" bs=1 seek="$off" conv=notrunc status=none
	run_timed "big-r$i" "${RSYNC[@]}" --stats "$BIG/" "$HOST:$W/big-r/"
	tc_r+=("$ELAPSED")
	bc_r+=("$(rsync_bytes "$LOG/big-r$i.out")")
	run_timed "big-h$i" "${HSYNC[@]}" --stats "$BIG" "$HOST:$W/big-h"
	tc_h+=("$ELAPSED")
	bc_h+=("$(hermes_bytes "$LOG/big-h$i.out")")
	printf '  run %d (byte %d): rsync %ss %s bytes, hermes %ss %s bytes\n' \
		"$i" "$off" "${tc_r[-1]}" "${bc_r[-1]}" "${tc_h[-1]}" "${bc_h[-1]}"
done
cmp -s "$BIG/big.bin" "$W/big-h/big.bin" || die "hermes' copy of the 100 MiB file differs"
cmp -s "$BIG/big.bin" "$W/big-r/big.bin" || die "rsync's copy of the 100 MiB file differs"
row "(c) 1 byte in 100 MiB, bytes (median)" "$(median3 "${bc_h[@]}")" "$(median3 "${bc_r[@]}")" ratio 1.2
row "(c) 1 byte in 100 MiB, s (median of 3)" "$(median3 "${tc_h[@]}")" "$(median3 "${tc_r[@]}")" ratio 1.0

# -------------------------------------------------------------------- table ---
echo
fmt='%-40s %12s %12s %7s  %-16s %s\n'
# shellcheck disable=SC2059
printf "$fmt" metric hermes rsync ratio target result
for r in "${ROWS[@]}"; do
	IFS='|' read -r m h rs ra t v <<<"$r"
	# shellcheck disable=SC2059
	printf "$fmt" "$m" "$h" "$rs" "$ra" "$t" "$v"
done
exit "$FAILED"
