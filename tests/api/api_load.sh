#!/usr/bin/env bash
# Load: HERMES_LOAD_JOBS (default 200) jobs submitted by 10 clients at once
# (5 tokens, 2 clients each), each job with its own small archive. All
# finish, none is lost, none runs twice (runs == 1 and one line of output
# each). (Fair order is checked deterministically in api_restart.)
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/lib/podman.sh"
. "$SRCDIR/tests/api/hermesd.sh"
for t in curl jq; do command -v $t >/dev/null || fail "$t missing"; done
N=${HERMES_LOAD_JOBS:-200}
CLIENTS=10
((N % CLIENTS == 0)) || fail "HERMES_LOAD_JOBS must be a multiple of $CLIENTS"

podman_start || fail "no Podman service"
W=$(tree_tmpdir)
lines=("backend = podman" "podman_socket = $PODMAN_SOCK" "image = $PODMAN_IMAGE" "gpus = none"
	"cpu_slots = 2")
for t in 0 1 2 3 4; do lines+=("token = user$t secret-of-user-$t"); done
hermesd_config "$W" "${lines[@]}"
hermesd_start "$W"

client() { # C: submit N/CLIENTS jobs as token C/2, record "id expected-output"
	local c=$1 tok=secret-of-user-$(($1 / 2)) i id d
	for ((i = 0; i < N / CLIENTS; i++)); do
		d=$W/c$c-$i
		mkdir -p "$d"
		printf 'c%s-j%s\n' "$c" "$i" >"$d/name"
		id=$(tar -C "$d" -cz . | curl -sf -H "Authorization: Bearer $tok" \
			-H 'X-Hermes-Job: {"command":"cat name"}' --data-binary @- "$HD_URL/v1/jobs" | jq -r .id) ||
			{ echo "client $c: submit $i failed" >&2; return 1; }
		echo "$id c$c-j$i" >>"$W/submitted.$c"
	done
}

step "$N jobs from $CLIENTS clients"
start=$SECONDS
pids=()
for ((c = 0; c < CLIENTS; c++)); do
	client "$c" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a client failed"; done
submit_s=$((SECONDS - start))
cat "$W"/submitted.* >"$W/all"
[[ $(wc -l <"$W/all") == "$N" ]] || fail "only $(wc -l <"$W/all") of $N submissions answered"
[[ $(cut -d' ' -f1 "$W/all" | sort -u | wc -l) == "$N" ]] || fail "duplicate job ids"

step "all finish"
for ((i = 0; i < 3000; i++)); do
	api "" GET /metrics
	grep -q '^hermes_jobs_queued 0$' <<<"$API_BODY" && grep -q '^hermes_jobs_running 0$' <<<"$API_BODY" && break
	sleep 0.1
done
total_s=$((SECONDS - start))
grep -q "^hermes_job_duration_seconds_count $N\$" <<<"$API_BODY" || fail "not all jobs ended: $API_BODY"

step "none lost, none ran twice, each printed its own line"
: >"$W/states"
for t in 0 1 2 3 4; do
	api "secret-of-user-$t" GET /v1/jobs
	jq -r '.[] | "\(.id) \(.state) \(.exit_code) \(.runs)"' <<<"$API_BODY" >>"$W/states"
done
[[ $(wc -l <"$W/states") == "$N" ]] || fail "$(wc -l <"$W/states") jobs listed, $N submitted"
bad=$(awk '$2 != "exited" || $3 != 0 || $4 != 1' "$W/states")
[[ -z $bad ]] || fail "jobs that did not run exactly once to exit 0: $bad"
while read -r id want; do
	got=$(cat "$W/state/jobs/$id/log")
	[[ $got == "$want" ]] || fail "job $id printed '$got', expected '$want'"
done <"$W/all"

rss=$(awk '/VmHWM/ { print $2 }' "/proc/$HD_PID/status")
echo "api_load: $N jobs: submitted in ${submit_s}s, all done in ${total_s}s" \
	"($((N * 60 / (total_s > 0 ? total_s : 1))) jobs/min), hermesd peak RSS ${rss} KiB"
hermesd_kill TERM
[[ $HD_RC == 0 ]] || fail "hermesd exited $HD_RC"
hermesd_log_clean "$W"
