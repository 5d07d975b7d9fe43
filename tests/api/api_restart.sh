#!/usr/bin/env bash
# Fair order across tokens with one slot; then hermesd killed with -9
# while one job runs and two wait: after a restart
# the running one is reported failed (never lost, never run again), its
# container is gone, and the queued ones run, once each.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/lib/podman.sh"
. "$SRCDIR/tests/api/hermesd.sh"
for t in curl jq; do command -v $t >/dev/null || fail "$t missing"; done

podman_start || fail "no Podman service"
W=$(tree_tmpdir)
A=alice-secret-0001 B=bob-secret-00002
hermesd_config "$W" "backend = podman" "podman_socket = $PODMAN_SOCK" "image = $PODMAN_IMAGE" \
	"gpus = none" "cpu_slots = 1" "token = alice $A" "token = bob $B"
hermesd_start "$W"

step "fair order: with one slot, two tokens' queued jobs alternate"
# The blocker holds the only slot until the test creates 'go' in its workspace.
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"while [ ! -e go ]; do sleep 0.05; done"}'
blocker=$(jq -r .id <<<"$API_BODY")
wait_state "$A" "$blocker" running
order=()
for tok in "$A" "$A" "$A" "$B" "$B" "$B"; do
	api "$tok" POST /v1/jobs -H 'X-Hermes-Job: {"command":"true"}'
	expect_status 201 "queued job"
	order+=("$tok:$(jq -r .id <<<"$API_BODY")")
done
touch "$W/state/jobs/$blocker/ws/go"
wait_state "$A" "$blocker" exited
started=()
for e in "${order[@]}"; do
	wait_state "${e%%:*}" "${e#*:}" exited
	get_job "${e%%:*}" "${e#*:}"
	started+=("$(field started) ${e%%:*}")
done
got=$(printf '%s\n' "${started[@]}" | sort -g | cut -d' ' -f2 | tr '\n' ' ')
# alice started the blocker, so bob's turn comes first
[[ $got == "$B $A $B $A $B $A " ]] || fail "start order by token: $got"

step "one job runs, two wait behind it (one CPU slot)"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"echo long; sleep 300"}'
long=$(jq -r .id <<<"$API_BODY")
wait_state "$A" "$long" running
queued=()
for i in 1 2; do
	api "$A" POST /v1/jobs -H "X-Hermes-Job: {\"command\":\"echo queued $i\"}"
	expect_status 201 "queued job $i"
	queued+=("$(jq -r .id <<<"$API_BODY")")
done
for id in "${queued[@]}"; do
	get_job "$A" "$id"
	[[ $(field state) == queued ]] || fail "job $id should wait: $JOB"
done
labelled() { podman_cli ps -aq --filter label=hermes.owner=hermesd | wc -l; }
[[ $(labelled) == 1 ]] || fail "expected the running job's container"

step "kill -9 hermesd, start it again"
hermesd_kill KILL
hermesd_start "$W"
get_job "$A" "$long"
[[ $(field state) == failed ]] || fail "the job that ran is not failed: $JOB"
field message | grep -q "hermesd stopped or died while the job ran" || fail "no message: $JOB"
[[ $(field runs) == 1 ]] || fail "the killed job was started again: $JOB"
for id in "${queued[@]}"; do wait_state "$A" "$id" exited; done
i=1
for id in "${queued[@]}"; do
	get_job "$A" "$id"
	[[ $(field exit_code) == 0 && $(field runs) == 1 ]] || fail "queued job $id: $JOB"
	api "$A" GET "/v1/jobs/$id/logs"
	[[ $API_BODY == "queued $i" ]] || fail "job $id output: $API_BODY"
	i=$((i + 1))
done
[[ $(labelled) == 0 ]] || fail "the killed run's container was not removed: $(podman_cli ps -a)"
grep -q "1 job(s) that ran when hermesd stopped are marked failed" "$W/hermesd.log" ||
	fail "the restart did not report the failed job: $(cat "$W/hermesd.log")"

step "SIGTERM: the running job is stopped and reported, hermesd exits 0"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"sleep 300"}'
s=$(jq -r .id <<<"$API_BODY")
wait_state "$A" "$s" running
start=$SECONDS
hermesd_kill TERM
[[ $HD_RC == 0 ]] || fail "hermesd exited $HD_RC on SIGTERM"
hermesd_log_clean "$W"
((SECONDS - start < 30)) || fail "SIGTERM took $((SECONDS - start)) s"
hermesd_start "$W"
get_job "$A" "$s"
[[ $(field state) == failed && $(field message) == "hermesd stopped while the job ran" ]] ||
	fail "job stopped by SIGTERM: $JOB"
[[ $(labelled) == 0 ]] || fail "SIGTERM left a container"
hermesd_kill TERM
[[ $HD_RC == 0 ]] || fail "hermesd exited $HD_RC"
echo "api_restart: all passed"
