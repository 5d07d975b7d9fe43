#!/usr/bin/env bash
# bench_job.sh RUN_JOB [N]: time a `true` job through job.h (create, attach,
# start, wait, remove over the REST API) against `podman run --rm` of the
# same image and command on the same private service, N times each (default
# 10), and print the medians side by side. Registered as a meson benchmark:
#   meson test -C BUILD --benchmark job_overhead
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/podman.sh
. "$SRCDIR/tests/lib/podman.sh"
RUN_JOB=$1 N=${2:-10}
podman_start
ws=$PODMAN_DIR/ws
mkdir -p "$ws"
printf 'image = %s\ngpus = none\nuser = image\n' "$PODMAN_IMAGE" >"$ws/hermes.conf"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

"$RUN_JOB" -n 2 "$PODMAN_SOCK" "$ws" true >/dev/null # warm the image and the service
job=$("$RUN_JOB" -n "$N" "$PODMAN_SOCK" "$ws" true | median)
runs=()
for ((i = 0; i < N; i++)); do
	t0=$(date +%s.%N)
	podman --url "unix://$PODMAN_SOCK" run --rm --network none "$PODMAN_IMAGE" true
	t1=$(date +%s.%N)
	runs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
done
plain=$(printf '%s\n' "${runs[@]}" | median)
awk -v n="$N" -v j="$job" -v p="$plain" 'BEGIN {
	printf "median of %d: job_run %.3f s, podman run --rm %.3f s, difference %+.0f ms\n",
		n, j, p, (j - p) * 1000 }'
