#!/usr/bin/env bash
# bench/run-bench.sh: the cost of a job through a mount, side by side with a
# plain `podman run` of the same image and command on the same Podman.
#
#   bash bench/run-bench.sh [BUILDDIR]      (default: build)
#
# Measures, N times (BENCH_RUNS, default 15), medians printed:
#   hermes   `echo true > MNT/.hermes/run` until `cat MNT/.hermes/wait` returns
#   podman   `podman run --rm --network none IMAGE /bin/sh -c true`
# and prints hermes - podman (target: <= +100 ms). Uses a private Podman
# service (tests/lib/podman.sh, runc) and the embedded local agent.
set -euo pipefail

SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRCDIR/build}" && pwd)
HERMES=$BUILD/hermes HERMES_AGENT=$BUILD/hermes-agent
RUNS=${BENCH_RUNS:-15}
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
# shellcheck source=tests/lib/podman.sh
. "$SRCDIR/tests/lib/podman.sh"

work=$(tree_tmpdir)
LOCAL=$work/local MNT=$work/mnt DST=$work/dst
mkdir -p "$LOCAL" "$MNT" "$DST"
podman_start
cleanup_add podman_stop
export HERMES_CDI_DIR=$work/no-cdi
mkdir -p "$HERMES_CDI_DIR"
printf 'image = %s\ngpus = none\n' "$PODMAN_IMAGE" >"$LOCAL/hermes.conf"
cleanup_add "fusermount3 -u '$MNT' 2>/dev/null || true"
"$HERMES" mount --agent-path "$HERMES_AGENT" --podman-socket "$PODMAN_SOCK" "$LOCAL" "$MNT" "$DST"
cat "$MNT/.hermes/flush" >/dev/null

now_ms() { date +%s%3N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

hermes_once() {
	local t0
	t0=$(now_ms)
	echo true >"$MNT/.hermes/run"
	grep -qx 'state: exited' "$MNT/.hermes/wait"
	echo $(($(now_ms) - t0))
}
podman_once() {
	local t0
	t0=$(now_ms)
	podman_cli run --rm --network none "$PODMAN_IMAGE" /bin/sh -c true
	echo $(($(now_ms) - t0))
}

hermes_once >/dev/null # the job connection is opened by the first run
podman_once >/dev/null
h=() p=()
for ((i = 0; i < RUNS; i++)); do
	h+=("$(hermes_once)")
	p+=("$(podman_once)")
done
hm=$(printf '%s\n' "${h[@]}" | median)
pm=$(printf '%s\n' "${p[@]}" | median)
printf '%-44s %10s\n' "median of $RUNS (ms)" ""
printf '%-44s %10s\n' ".hermes/run -> .hermes/wait (hermes)" "$hm"
printf '%-44s %10s\n' "podman run --rm (same image, same command)" "$pm"
printf '%-44s %+10s\n' "hermes - podman" "$(awk -v a="$hm" -v b="$pm" 'BEGIN { print a - b }')"
