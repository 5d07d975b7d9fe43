#!/usr/bin/env bash
# The Slurm backend: hermesd submits jobs with sbatch to a real single-node
# Slurm (tests/lib/slurm.sh); the batch script runs the container through the
# private Podman service. Output, exit codes and artifacts come back; a GPU
# job asks --gres=gpu:1 (the node has one fake GPU); cancel is scancel; a
# job running when hermesd is killed is failed and scancelled at restart.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/lib/podman.sh"
. "$SRCDIR/tests/lib/slurm.sh"
. "$SRCDIR/tests/api/hermesd.sh"
for t in curl jq tar; do command -v $t >/dev/null || fail "$t missing"; done

podman_start || fail "no Podman service"
slurm_start || fail "no Slurm"
W=$(tree_tmpdir)
chmod 755 "$W" "$TREE_TMP"
A=alice-secret-0001
hermesd_config "$W" "backend = slurm" "podman_command = podman --url unix://$PODMAN_SOCK" \
	"slurm_partition = hermes" "slurm_gpu_device = nvidia.com/gpu=0" "image = $PODMAN_IMAGE" \
	"cpu_slots = 2" "token = alice $A"
hermesd_start "$W"

step "a job runs through Slurm: output, exit code, artifact, host"
code=$(tree_tmpdir)
printf 'in slurm\n' >"$code/msg"
tar -C "$code" -czf "$W/code.tgz" .
api "$A" POST /v1/jobs --data-binary @"$W/code.tgz" \
	-H 'X-Hermes-Job: {"command":"cat msg; echo err >&2; echo made >art; exit 5","env":{"X":"y"}}'
expect_status 201 submit
J=$(jq -r .id <<<"$API_BODY")
curl -sf -N -H "Authorization: Bearer $A" "$HD_URL/v1/jobs/$J/logs?follow=1" >"$W/j.out" || fail "follow"
wait_state "$A" "$J" exited failed
get_job "$A" "$J"
[[ $(field state) == exited && $(field exit_code) == 5 ]] || fail "job: $JOB; log: $(cat "$W/j.out")"
[[ $(field host) == "$(hostname -s)" ]] || fail "host: $JOB"
bid=$(field backend_id)
[[ $bid =~ ^[0-9]+$ ]] || fail "no Slurm job id: $JOB"
scontrol show job "$bid" | grep -q "JobName=hermes-$J" || fail "Slurm does not know job $bid"
grep -q "in slurm" "$W/j.out" && grep -q "^err$" "$W/j.out" || fail "output: $(cat "$W/j.out")"
api "$A" GET "/v1/jobs/$J/files/art"
[[ $API_BODY == made ]] || fail "artifact: $API_BODY"

step "a GPU job asks Slurm for --gres=gpu:1 and gets the GPU device"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"echo gpu=$HERMES_FAKE_GPU","gpus":1}'
G=$(jq -r .id <<<"$API_BODY")
wait_state "$A" "$G" exited failed
get_job "$A" "$G"
[[ $(field state) == exited && $(field exit_code) == 0 ]] || fail "GPU job: $JOB: $(cat "$W/state/jobs/$G/log")"
grep -q '^#SBATCH --gres=gpu:1$' "$W/state/jobs/$G/slurm.sh" || fail "no --gres in the batch script"
scontrol show job "$(field backend_id)" | grep -q "gres.*gpu:1\|gpu=1" || fail "Slurm did not allocate a GPU"
api "$A" GET "/v1/jobs/$G/logs"
[[ $API_BODY == "gpu=0" ]] || fail "GPU job output: $API_BODY"

step "cancel is scancel; the container goes too"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"echo up; sleep 300"}'
S=$(jq -r .id <<<"$API_BODY")
wait_state "$A" "$S" running
for _ in $(seq 300); do grep -q up "$W/state/jobs/$S/log" 2>/dev/null && break; sleep 0.1; done
get_job "$A" "$S"
sid=$(field backend_id)
api "$A" DELETE "/v1/jobs/$S"
expect_status 202 cancel
wait_state "$A" "$S" cancelled
[[ -z $(squeue -h -j "$sid" 2>/dev/null) ]] || fail "Slurm job $sid still queued"
for _ in $(seq 200); do
	[[ -z $(podman_cli --url "unix://$PODMAN_SOCK" ps -q --filter "name=hermesd-slurm-$S") ]] && break
	sleep 0.1
done
[[ -z $(podman_cli --url "unix://$PODMAN_SOCK" ps -q --filter "name=hermesd-slurm-$S") ]] ||
	fail "the cancelled job's container still runs"

step "an scancel outside hermesd: the job is reported cancelled"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"sleep 300"}'
X=$(jq -r .id <<<"$API_BODY")
for _ in $(seq 300); do
	get_job "$A" "$X"
	[[ -n $(field backend_id) && $(squeue -h -j "$(field backend_id)" -o %T 2>/dev/null) == RUNNING ]] && break
	sleep 0.1
done
scancel "$(field backend_id)" || fail "scancel failed"
wait_state "$A" "$X" cancelled failed
get_job "$A" "$X"
[[ $(field state) == cancelled ]] && field message | grep -q "cancelled outside hermesd" ||
	fail "job scancelled behind hermesd's back: $JOB"

step "hermesd killed with -9 while a job runs in Slurm: reported failed and scancelled"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"sleep 300"}'
K=$(jq -r .id <<<"$API_BODY")
for _ in $(seq 300); do
	get_job "$A" "$K"
	[[ -n $(field backend_id) && $(squeue -h -j "$(field backend_id)" -o %T 2>/dev/null) == RUNNING ]] && break
	sleep 0.1
done
kid=$(field backend_id)
[[ -n $kid ]] || fail "job $K never ran in Slurm: $JOB"
hermesd_kill KILL
hermesd_start "$W"
get_job "$A" "$K"
[[ $(field state) == failed ]] || fail "job running at the crash: $JOB"
for _ in $(seq 200); do [[ -z $(squeue -h -j "$kid" 2>/dev/null) ]] && break; sleep 0.1; done
[[ -z $(squeue -h -j "$kid" 2>/dev/null) ]] || fail "Slurm job $kid of the failed job still runs"

hermesd_kill TERM
[[ $HD_RC == 0 ]] || fail "hermesd exited $HD_RC"
hermesd_log_clean "$W"
echo "api_slurm: all passed"
