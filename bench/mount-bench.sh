#!/usr/bin/env bash
# mount-bench.sh: hermes mount against its own backing directory, and sshfs
# against the same disk, side by side, on one machine.
#
#   sudo bench/mount-bench.sh       (root: drops the page cache, starts a
#                                    private sshd on 127.0.0.1)
#
# Binaries: $HERMES / $HERMES_AGENT, default build/hermes and build/hermes-agent.
# hermes mounts LOCALDIR with DEST on 127.0.0.1 over SSH (the same private
# sshd sshfs uses), so the mirror's background work competes for the same
# CPUs as it would on a laptop. Measures, median of BENCH_RUNS (default 3):
#   seq write  BENCH_MIB MiB (default 1024) in 1 MiB writes + fsync (bench/seqio.c)
#   seq read   the same file, cold (echo 3 > /proc/sys/vm/drop_caches first)
#   stat       every file of a copy of /usr/include (~8,000 files), cold and warm
#   save       one-line edit of a header in that tree (editor-style: write a
#              temp file, rename it over), then read .hermes/flush: median
#              of 20, and wire bytes per edit from .hermes/sync
# and prints: metric, native, hermes, ratio, sshfs, ratio, target, PASS/FAIL.
# Ratios are throughput ratios (higher is better) for write/read and time
# ratios (lower is better) for stat. Exit status 0 when every target is met.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILDDIR=${BUILDDIR:-$repo/build}
HERMES=${HERMES:-$BUILDDIR/hermes}
HERMES_AGENT=${HERMES_AGENT:-$BUILDDIR/hermes-agent}
SRCDIR=$repo
MIB=${BENCH_MIB:-1024}
RUNS=${BENCH_RUNS:-3}
export SRCDIR BUILDDIR HERMES HERMES_AGENT

die() {
	printf 'mount-bench: %s\n' "$*" >&2
	exit 2
}
(($(id -u) == 0)) || die "run as root (drops caches, starts a private sshd on 127.0.0.1)"
[[ -x $HERMES ]] || die "no hermes at $HERMES (build first, or set HERMES)"
[[ -x $HERMES_AGENT ]] || die "no hermes-agent at $HERMES_AGENT (set HERMES_AGENT)"
for t in sshfs fusermount3 cc ssh ssh-keygen; do
	command -v "$t" >/dev/null || die "$t is not installed"
done

# sshd.sh owns the EXIT trap; tree.sh registers its temp root with it.
. "$repo/tests/lib/sshd.sh"
. "$repo/tests/lib/tree.sh"
. "$repo/tests/mount/lib.sh"

W=$(tree_tmpdir)
cc -O2 -o "$W/seqio" "$repo/bench/seqio.c" || die "cannot build bench/seqio.c"
sshd_start || die "could not start the test sshd"
export HERMES_SSH_CONFIG=$SSHD_SSH_CONFIG
export HERMES_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS

NATIVE=$W/native LOCAL=$W/local MNT=$W/mnt DST=$W/dst SSRC=$W/sshfs-src SMNT=$W/sshfs-mnt
mkdir -p "$NATIVE" "$LOCAL" "$MNT" "$DST" "$SSRC" "$SMNT"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# timed_s CMD...: run CMD, print its wall time in seconds
timed_s() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null
	t1=$(date +%s%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
}
stat_all() { find "$1" -printf '%s\n' >/dev/null; }

step "trees: /usr/include copied into the native dir, LOCALDIR and the sshfs source"
for d in "$NATIVE" "$LOCAL" "$SSRC"; do cp -a /usr/include "$d/inc"; done
nfiles=$(find "$LOCAL/inc" -type f | wc -l)
echo "  $nfiles files"

step "mount hermes (DEST over SSH) and sshfs"
mount_at "$LOCAL" "$MNT" "127.0.0.1:$DST" -p "$SSHD_PORT" -i "$SSHD_KEY"
t=$(timed_s cat "$MNT/.hermes/flush")
echo "  initial mirror of the tree: $t s"
cleanup_add "fusermount3 -u '$SMNT' 2>/dev/null || true"
sshfs -F "$SSHD_SSH_CONFIG" "127.0.0.1:$SSRC" "$SMNT" || die "sshfs mount failed"

# The targets are measured in turn within each run (native, hermes, sshfs,
# then again), not one after the other: this disk's speed drifts over a
# minute, and a ratio must compare measurements taken under the same drift.
TARGETS=(native hermes sshfs)
target_path() { # target_path TARGET REL: where REL lives for TARGET
	case $1 in
	native) echo "$NATIVE/$2" ;;
	hermes) echo "$MNT/$2" ;;
	sshfs) echo "$SMNT/$2" ;;
	esac
}
# record ARRAY TARGET VALUE: append VALUE to the list ARRAY[TARGET] (space-separated)
record() { local -n arr=$1; arr[$2]="${arr[$2]:-}${arr[$2]:+ }$3"; }
median_of() { tr ' ' '\n' <<<"$1" | median; }

# ------------------------------------------------------------- seq write ---
step "seq write: $MIB MiB x $RUNS"
declare -A W_ALL R_ALL C_ALL H_ALL W_S R_S SC SW
for _ in $(seq "$RUNS"); do
	for target in "${TARGETS[@]}"; do
		f=$(target_path "$target" seq.bin)
		rm -f "$f"
		[[ $target != hermes ]] || cat "$MNT/.hermes/flush" >/dev/null
		drop_caches
		record W_ALL "$target" "$("$W/seqio" write "$f" "$MIB")"
		# the mirror sends the file in the background: let it finish
		# before the next measurement, and report how long it took
		[[ $target != hermes ]] || echo "  hermes: on the host $(timed_s cat "$MNT/.hermes/flush") s later"
	done
done
for target in "${TARGETS[@]}"; do
	W_S[$target]=$(median_of "${W_ALL[$target]}")
	echo "  $target: ${W_ALL[$target]} s"
done

# -------------------------------------------------------------- seq read ---
step "seq read (cold): $MIB MiB x $RUNS"
for _ in $(seq "$RUNS"); do
	for target in "${TARGETS[@]}"; do
		drop_caches
		record R_ALL "$target" "$("$W/seqio" read "$(target_path "$target" seq.bin)")"
	done
done
for target in "${TARGETS[@]}"; do
	R_S[$target]=$(median_of "${R_ALL[$target]}")
	echo "  $target: ${R_ALL[$target]} s"
done
rm -f "$NATIVE/seq.bin" "$MNT/seq.bin" "$SMNT/seq.bin"
cat "$MNT/.hermes/flush" >/dev/null

# ------------------------------------------------------------------ stat ---
step "stat of $nfiles files, cold and warm, x $RUNS"
for _ in $(seq "$RUNS"); do
	for target in "${TARGETS[@]}"; do
		d=$(target_path "$target" inc)
		drop_caches
		record C_ALL "$target" "$(timed_s stat_all "$d")"
		record H_ALL "$target" "$(timed_s stat_all "$d")"
	done
done
for target in "${TARGETS[@]}"; do
	SC[$target]=$(median_of "${C_ALL[$target]}")
	SW[$target]=$(median_of "${H_ALL[$target]}")
	echo "  $target: cold ${C_ALL[$target]} s, warm ${H_ALL[$target]} s"
done

# ------------------------------------------------------------------ save ---
step "save-to-host latency: one-line edit of inc/stdio.h + flush, x 20"
wire_out() { awk -F': ' '/^wire bytes out:/ { print $2 }' "$MNT/.hermes/sync"; }
edit_and_flush() {
	local f=$MNT/inc/stdio.h
	{ cat "$f"; printf '/* edit %s */\n' "$1"; } >"$f.swp"
	mv "$f.swp" "$f"
	cat "$MNT/.hermes/flush" >/dev/null
}
# (the copy in the edit is part of an editor's save; it is in the timing)
cat "$MNT/.hermes/flush" >/dev/null
w0=$(wire_out)
lat=()
for i in $(seq 20); do
	lat+=("$(timed_s edit_and_flush "$i")")
done
w1=$(wire_out)
SAVE_MS=$(printf '%s\n' "${lat[@]}" | median | awk '{ printf "%.1f", $1 * 1000 }')
SAVE_B=$(((w1 - w0) / 20))
echo "  latencies (s): ${lat[*]}"
cmp -s "$LOCAL/inc/stdio.h" "$DST/inc/stdio.h" || die "the host's stdio.h differs after the edits"

# ----------------------------------------------------------------- table ---
RC=0
row() { # metric native hermes sshfs kind(thr|time) target
	local r s verdict
	if [[ $5 == thr ]]; then
		r=$(awk -v n="$2" -v h="$3" 'BEGIN { printf "%.2f", n / h }')
		s=$(awk -v n="$2" -v h="$4" 'BEGIN { printf "%.2f", n / h }')
		verdict=$(awk -v r="$r" -v t="$6" 'BEGIN { print (r >= t) ? "PASS" : "FAIL" }')
		printf '%-22s %9s %9s %7s %9s %7s   >= %-5s %s\n' "$1" "$2" "$3" "$r" "$4" "$s" "$6" "$verdict"
	else
		r=$(awk -v n="$2" -v h="$3" 'BEGIN { printf "%.2f", h / n }')
		s=$(awk -v n="$2" -v h="$4" 'BEGIN { printf "%.2f", h / n }')
		verdict=$(awk -v r="$r" -v t="$6" 'BEGIN { print (t == "-" || r <= t) ? "PASS" : "FAIL" }')
		printf '%-22s %9s %9s %7s %9s %7s   <= %-5s %s\n' "$1" "$2" "$3" "$r" "$4" "$s" "$6" "$verdict"
	fi
	[[ $verdict == PASS ]] || RC=1
}
echo
echo "hermes mount vs native and sshfs ($MIB MiB files, $nfiles-file tree, median of $RUNS)"
printf '%-22s %9s %9s %7s %9s %7s   %s\n' metric native hermes ratio sshfs ratio target
row "seq write (s)" "${W_S[native]}" "${W_S[hermes]}" "${W_S[sshfs]}" thr 0.80
row "seq read cold (s)" "${R_S[native]}" "${R_S[hermes]}" "${R_S[sshfs]}" thr 0.90
row "stat all cold (s)" "${SC[native]}" "${SC[hermes]}" "${SC[sshfs]}" time 1.5
row "stat all warm (s)" "${SW[native]}" "${SW[hermes]}" "${SW[sshfs]}" time 1.5
verdict=$(awk -v m="$SAVE_MS" 'BEGIN { print (m <= 50) ? "PASS" : "FAIL" }')
printf '%-22s %9s %9s %7s %9s %7s   <= %-5s %s\n' "save median (ms)" - "$SAVE_MS" - - - 50 "$verdict"
[[ $verdict == PASS ]] || RC=1
verdict=$((SAVE_B <= 2048 ? 1 : 0))
printf '%-22s %9s %9s %7s %9s %7s   <= %-5s %s\n' "save wire bytes/edit" - "$SAVE_B" - - - 2048 "$([[ $verdict == 1 ]] && echo PASS || echo FAIL)"
[[ $verdict == 1 ]] || RC=1
exit "$RC"
