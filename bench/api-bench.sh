#!/usr/bin/env bash
# hermesd figures, measured side by side with plain Podman on this machine:
#   1. submit-to-start latency on an idle host: POST /v1/jobs of `true` until
#      the job has ended, vs `podman run --rm IMAGE true` on the same private
#      Podman service (median of BENCH_REPS runs); plus hermesd's own
#      created -> started delay
#   2. throughput: BENCH_JOBS trivial jobs from 10 clients (cpu_slots = 2) vs
#      the same number of `podman run --rm` in 2 parallel streams
#   3. hermesd's peak RSS (VmHWM) over the whole run
# Usage: bench/api-bench.sh [BUILDDIR]   (root; podman, runc, curl, jq)
set -euo pipefail

SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
BUILDDIR=${1:-${BUILDDIR:-$SRCDIR/build}}
export SRCDIR BUILDDIR
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/lib/podman.sh"
. "$SRCDIR/tests/api/hermesd.sh"
REPS=${BENCH_REPS:-10}
JOBS=${BENCH_JOBS:-200}
[[ -x $HERMESD ]] || fail "no hermesd at $HERMESD (build first, or pass BUILDDIR)"

podman_start || fail "no Podman service"
W=$(tree_tmpdir)
T=bench-token-0001
hermesd_config "$W" "backend = podman" "podman_socket = $PODMAN_SOCK" "image = $PODMAN_IMAGE" \
	"gpus = none" "cpu_slots = 2" "token = bench $T"
hermesd_start "$W"
P=(podman --url "unix://$PODMAN_SOCK")

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\\n\", $* }"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

run_hermesd_once() {
	local t0 id s
	t0=$(now)
	id=$(curl -sf -H "Authorization: Bearer $T" -H 'X-Hermes-Job: {"command":"true"}' -X POST \
		"$HD_URL/v1/jobs" | jq -r .id)
	while :; do
		s=$(curl -sf -H "Authorization: Bearer $T" "$HD_URL/v1/jobs/$id")
		[[ $(jq -r .state <<<"$s") == exited ]] && break
		sleep 0.01
	done
	echo "$(calc "$(now) - $t0") $(jq '.started - .created' <<<"$s")"
}

step "latency on an idle host ($REPS runs each)"
"${P[@]}" run --rm --network=none "$PODMAN_IMAGE" true # warm the image
run_hermesd_once >/dev/null
: >"$W/lat.h" >"$W/lat.p"
for ((i = 0; i < REPS; i++)); do
	run_hermesd_once >>"$W/lat.h"
	t0=$(now)
	"${P[@]}" run --rm --network=none "$PODMAN_IMAGE" true
	calc "$(now) - $t0" >>"$W/lat.p"
done
lh=$(cut -d' ' -f1 "$W/lat.h" | median)
lq=$(cut -d' ' -f2 "$W/lat.h" | median)
lp=$(median <"$W/lat.p")

step "throughput: $JOBS trivial jobs"
# (waits name their pids: a bare `wait` would wait for hermesd too)
t0=$(now)
pids=()
for ((c = 0; c < 10; c++)); do
	(for ((i = 0; i < JOBS / 10; i++)); do
		curl -sf -o /dev/null -H "Authorization: Bearer $T" -H 'X-Hermes-Job: {"command":"true"}' \
			-X POST "$HD_URL/v1/jobs" || exit 1
	done) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a client failed"; done
want=$((JOBS + REPS + 1))
for ((i = 0; i < 6000; i++)); do
	m=$(curl -sf "$HD_URL/metrics")
	grep -q "^hermes_job_duration_seconds_count $want\$" <<<"$m" && break
	sleep 0.1
done
grep -q "^hermes_job_duration_seconds_count $want\$" <<<"$m" || fail "jobs did not all end"
th=$(calc "$(now) - $t0")
t0=$(now)
pids=()
for s in 0 1; do
	(for ((i = 0; i < JOBS / 2; i++)); do "${P[@]}" run --rm --network=none "$PODMAN_IMAGE" true; done) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a podman run stream failed"; done
tp=$(calc "$(now) - $t0")
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$HD_PID/status")
hermesd_kill TERM

printf '\n%-44s %12s %12s %8s\n' "figure" "hermesd" "podman run" "ratio"
printf '%-44s %11.3fs %11.3fs %8.2f\n' "latency, submit to end of 'true' (median)" "$lh" "$lp" "$(calc "$lh / $lp")"
printf '%-44s %11.3fs %12s\n' "  of which queue delay (created -> started)" "$lq" "-"
printf '%-44s %12.0f %12.0f %8.2f\n' "throughput, jobs/min ($JOBS jobs)" "$(calc "$JOBS * 60 / $th")" \
	"$(calc "$JOBS * 60 / $tp")" "$(calc "$tp / $th")"
printf '%-44s %9s KiB\n' "hermesd peak RSS" "$rss"
