#!/usr/bin/env bash
# End to end: hermesd on 127.0.0.1 with the real private Podman service.
# Submit (tar.gz and tar.zst), follow logs, fetch artifacts, cancel, auth
# failures, another token's job invisible, malformed / oversize / hostile
# archives, wall time, GPU exclusivity (a fake CDI GPU found through a
# stand-in nvidia-smi), quotas, metrics, and the CLI.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/lib/podman.sh"
. "$SRCDIR/tests/api/hermesd.sh"
for t in curl jq zstd python3 tar; do command -v $t >/dev/null || fail "$t missing"; done

podman_start || fail "no Podman service"
W=$(tree_tmpdir)
A=alice-secret-0001 B=bob-secret-00002 C=carol-secret-003
hermesd_config "$W" "backend = podman" "podman_socket = $PODMAN_SOCK" "image = $PODMAN_IMAGE" \
	"gpus = auto" "cpu_slots = 2" "max_upload = 200000" "max_unpacked = 1000000" \
	"token = alice $A max_gpus=1" "token = bob $B" "token = carol $C max_queued=1 max_running=1"
export HERMES_CDI_DIR=$PODMAN_CDI_DIR # job_check_gpus finds the fake GPU there
# gpus = auto asks nvidia-smi: a stand-in prints what a one-GPU host would
mkdir -p "$W/bin"
cat >"$W/bin/nvidia-smi" <<'SH'
#!/bin/sh
case "$*" in
*--query-gpu=index,name,utilization.gpu,memory.used,memory.total*--format=csv,noheader,nounits*)
	echo "0, NVIDIA H200, 37, 1024, 143771" ;;
*) echo "unexpected arguments: $*" >&2; exit 1 ;;
esac
SH
chmod +x "$W/bin/nvidia-smi"
PATH=$W/bin:$PATH hermesd_start "$W"

step "a bad configuration is refused with its file and line"
printf 'listen = 127.0.0.1:0\ntoken = x secret-xxxxx\ncolour = red\n' >"$W/bad.conf"
rc=0
"$HERMESD" -c "$W/bad.conf" 2>"$W/bad.err" || rc=$?
[[ $rc == 1 ]] && grep -qx "hermesd: $W/bad.conf:3: unknown setting 'colour'" "$W/bad.err" ||
	fail "bad config: rc $rc: $(cat "$W/bad.err")"
printf 'listen = 127.0.0.1:0\n' >"$W/bad.conf"
chmod 644 "$W/bad.conf"
rc=0
"$HERMESD" -c "$W/bad.conf" 2>"$W/bad.err" || rc=$?
[[ $rc == 1 ]] && grep -q "no token line" "$W/bad.err" || fail "config without tokens: rc $rc: $(cat "$W/bad.err")"

printf 'listen = 127.0.0.1:0\nstate_dir = /proc/hermes-nope\ntoken = x secret-xxxxx\n' >"$W/bad.conf"
rc=0
"$HERMESD" -c "$W/bad.conf" 2>"$W/bad.err" || rc=$?
[[ $rc == 1 ]] && grep -q "$W/bad.conf can be read by every user" "$W/bad.err" &&
	grep -q "/proc/hermes-nope: cannot create the state directory" "$W/bad.err" ||
	fail "unusable state_dir / world-readable config: rc $rc: $(cat "$W/bad.err")"

step "health, metrics, auth"
api "" GET /healthz
expect_status 200 healthz
api "" GET /v1/jobs
expect_error 401 "no token" "bearer token"
api "wrong-token-123" GET /v1/jobs
expect_error 401 "unknown token" "bearer token"
api "$A" GET /v1/jobs/999
expect_error 404 "unknown job" "no such job"
api "$A" GET /v1/nothing
expect_error 404 "unknown resource" "no such resource"
api "$A" PUT /v1/jobs
expect_error 405 "PUT /v1/jobs" "not supported"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"true","gpus":2}'
expect_error 403 "more GPUs than the token may use" "at most 1 GPU"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"true","colour":"red"}'
expect_error 400 "unknown key" "unknown key 'colour'"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":'
expect_error 400 "broken JSON" "not valid JSON"
api "$A" POST /v1/jobs
expect_error 400 "no job header" "X-Hermes-Job"

step "submit a tar.gz, follow its output, fetch an artifact"
code=$(tree_tmpdir)
mkdir -p "$code/sub"
printf 'input bytes\n' >"$code/sub/in.txt"
printf 'echo "start $GREETING"\ncat sub/in.txt\nsleep 1\necho out-$((6*7)) >result.txt\nln -s /etc/hostname leak\necho end\nexit 3\n' >"$code/run.sh"
tar -C "$code" -czf "$W/code.tgz" .
api "$A" POST /v1/jobs --data-binary @"$W/code.tgz" \
	-H 'X-Hermes-Job: {"command":"sh run.sh","env":{"GREETING":"hi there"}}'
expect_status 201 "submit"
J1=$(jq -r .id <<<"$API_BODY")
curl -sf -N -H "Authorization: Bearer $A" "$HD_URL/v1/jobs/$J1/logs?follow=1" >"$W/follow.out" ||
	fail "follow failed"
printf 'start hi there\ninput bytes\nend\n' | cmp - "$W/follow.out" || fail "followed output differs: $(cat "$W/follow.out")"
get_job "$A" "$J1"
[[ $(field state) == exited && $(field exit_code) == 3 ]] || fail "job $J1: $JOB"
jq -e '.started >= .created and .ended >= .started and .host != "" and .runs == 1' <<<"$JOB" >/dev/null ||
	fail "job $J1 times/host: $JOB"
api "$A" GET "/v1/jobs/$J1/logs"
[[ $API_BODY == "$(cat "$W/follow.out")" ]] || fail "logs differ from the followed ones"
api "$A" GET "/v1/jobs/$J1/files/result.txt"
expect_status 200 artifact
[[ $API_BODY == out-42 ]] || fail "artifact: $API_BODY"
api "$A" GET "/v1/jobs/$J1/files/sub/in.txt"
[[ $API_BODY == "input bytes" ]] || fail "artifact in a subdirectory: $API_BODY"

step "artifact traversal is refused"
api "$A" GET "/v1/jobs/$J1/files/../../../../etc/passwd" --path-as-is
expect_error 400 "files/../" "not a relative path"
api "$A" GET "/v1/jobs/$J1/files/%2e%2e/%2e%2e/jobs.db"
expect_error 400 "files/%2e%2e" "not a relative path"
api "$A" GET "/v1/jobs/$J1/files/leak"
expect_error 404 "symlink made by the job" "symlinks are not followed"
api "$A" GET "/v1/jobs/$J1/files/nothing.txt"
expect_error 404 "missing artifact" "no such file"

step "another token sees nothing of alice's job"
for p in "" /logs /files/result.txt; do
	api "$B" GET "/v1/jobs/$J1$p"
	expect_error 404 "bob GET job$p" "no such job"
done
api "$B" DELETE "/v1/jobs/$J1"
expect_error 404 "bob DELETE" "no such job"
api "$B" GET /v1/jobs
[[ $API_BODY == "[]" ]] || fail "bob's list shows jobs: $API_BODY"
api "$A" GET /v1/jobs
[[ $(jq length <<<"$API_BODY") == 1 ]] || fail "alice's list: $API_BODY"

step "malformed, oversize and hostile archives are refused"
head -c 5000 /dev/urandom >"$W/garbage"
api "$A" POST /v1/jobs --data-binary @"$W/garbage" -H 'X-Hermes-Job: {"command":"true"}'
expect_error 400 "garbage body" "archive"
head -c 300000 /dev/urandom >"$W/big"
api "$A" POST /v1/jobs --data-binary @"$W/big" -H 'X-Hermes-Job: {"command":"true"}'
expect_error 413 "oversize (Content-Length)" "max_upload"
api "$A" POST /v1/jobs -T "$W/big" -X POST -H 'Transfer-Encoding: chunked' -H 'X-Hermes-Job: {"command":"true"}'
expect_error 413 "oversize (chunked)" "max_upload"
# unpacks beyond max_unpacked: 2 MB of zeros compress to almost nothing
head -c 2000000 /dev/zero >"$code/zeros"
tar -C "$code" -c . | zstd -q >"$W/bomb.tar.zst"
rm "$code/zeros"
api "$A" POST /v1/jobs --data-binary @"$W/bomb.tar.zst" -H 'X-Hermes-Job: {"command":"true"}'
expect_error 413 "archive bomb" "more than the allowed size"
victim=$(tree_tmpdir)
python3 - "$W" "$victim" <<'PY'
import io, sys, tarfile
w, victim = sys.argv[1], sys.argv[2]
def make(name, entries):
    with tarfile.open(f"{w}/{name}.tar", "w") as t:
        for e, data in entries:
            t.addfile(e, io.BytesIO(data) if data is not None else None)
def reg(n, data=b"pwned\n"):
    i = tarfile.TarInfo(n); i.size = len(data); return (i, data)
def link(n, target, kind=tarfile.SYMTYPE):
    i = tarfile.TarInfo(n); i.type = kind; i.linkname = target; return (i, None)
make("dotdot", [reg("ok.txt"), reg("../../../../" + victim.lstrip("/") + "/dotdot")])
make("absolute", [reg(victim + "/absolute")])
make("symlink_escape", [link("esc", victim), reg("esc/via_link")])
make("symlink_up", [link("up", "../../..")])
make("hardlink", [reg("a"), link("h", "a", tarfile.LNKTYPE)])
dev = tarfile.TarInfo("null"); dev.type = tarfile.CHRTYPE; dev.devmajor = 1; dev.devminor = 3
make("device", [(dev, None)])
fifo = tarfile.TarInfo("fifo"); fifo.type = tarfile.FIFOTYPE
make("fifo", [(fifo, None)])
with tarfile.open(f"{w}/many.tgz", "w:gz") as t: # 3000 empty files: 1.5 MB of headers
    for i in range(3000):
        t.addfile(tarfile.TarInfo(f"f{i}"), io.BytesIO(b""))
PY
api "$A" POST /v1/jobs --data-binary @"$W/many.tgz" -H 'X-Hermes-Job: {"command":"true"}'
expect_error 413 "3000 empty files" "more than the allowed size"
for bad in dotdot absolute symlink_escape symlink_up hardlink device fifo; do
	api "$A" POST /v1/jobs --data-binary @"$W/$bad.tar" -H 'X-Hermes-Job: {"command":"true"}'
	expect_error 400 "archive $bad" "archive entry"
done
[[ -z $(ls -A "$victim") ]] || fail "a hostile archive wrote outside the workspace: $(ls -A "$victim")"
api "$A" GET /v1/jobs
[[ $(jq length <<<"$API_BODY") == 1 ]] || fail "refused uploads left jobs behind: $API_BODY"
[[ -z $(ls -A "$W/state/tmp") ]] || fail "uploads left in state/tmp: $(ls "$W/state/tmp")"

step "cancel a running job; its followed log ends"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"echo started; sleep 300"}'
expect_status 201 "submit sleeper"
J2=$(jq -r .id <<<"$API_BODY")
wait_state "$A" "$J2" running
timeout 60 curl -sf -N -H "Authorization: Bearer $A" "$HD_URL/v1/jobs/$J2/logs?follow=1" >"$W/j2.out" &
follower=$!
for _ in $(seq 200); do grep -q started "$W/j2.out" && break; sleep 0.05; done
api "$A" DELETE "/v1/jobs/$J2"
expect_status 202 "cancel"
wait_state "$A" "$J2" cancelled
api "$A" DELETE "/v1/jobs/$J2"
expect_error 409 "cancel of an ended job" "already ended (cancelled)"
wait "$follower" || fail "the followed log did not end cleanly after cancel"
[[ $(cat "$W/j2.out") == started ]] || fail "cancelled job's log: $(cat "$W/j2.out")"

step "a job over its wall time is timed out"
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"echo before; sleep 60","limits":{"wall_time_s":1}}'
T=$(jq -r .id <<<"$API_BODY")
wait_state "$A" "$T" timed-out
get_job "$A" "$T"
jq -e '.ended - .started < 30 and .exit_code == null' <<<"$JOB" >/dev/null || fail "timed-out job: $JOB"

step "each GPU runs one job at a time; CPU jobs run beside them"
ids=()
for i in 1 2; do
	api "$A" POST /v1/jobs -H "X-Hermes-Job: {\"command\":\"echo gpu \$HERMES_FAKE_GPU; sleep 1\",\"gpus\":1}"
	expect_status 201 "gpu job $i"
	ids+=("$(jq -r .id <<<"$API_BODY")")
done
api "$A" POST /v1/jobs -H 'X-Hermes-Job: {"command":"echo cpu"}'
cpu=$(jq -r .id <<<"$API_BODY")
for id in "${ids[@]}" "$cpu"; do wait_state "$A" "$id" exited; done
g1=$(curl -sf -H "Authorization: Bearer $A" "$HD_URL/v1/jobs/${ids[0]}")
g2=$(curl -sf -H "Authorization: Bearer $A" "$HD_URL/v1/jobs/${ids[1]}")
[[ $(jq -r .gpu <<<"$g1") == 0 && $(jq -r .gpu <<<"$g2") == 0 ]] || fail "GPU not recorded: $g1 $g2"
jq -e -n --argjson a "$g1" --argjson b "$g2" '$a.ended <= $b.started or $b.ended <= $a.started' >/dev/null ||
	fail "two jobs held GPU 0 at once: $g1 $g2"
api "$A" GET "/v1/jobs/${ids[0]}/logs"
[[ $API_BODY == "gpu 0" ]] || fail "GPU job output: $API_BODY"
api "$A" GET /v1/gpus
jq -e 'length == 1 and .[0].index == "0" and .[0].name == "NVIDIA H200" and .[0].utilization == 0.37
	and .[0].memory_used_bytes == 1073741824 and .[0].job == null' <<<"$API_BODY" >/dev/null ||
	fail "/v1/gpus: $API_BODY"

step "per-token quotas: carol may run 1 and queue 1"
api "$C" POST /v1/jobs -H 'X-Hermes-Job: {"command":"sleep 300"}'
c1=$(jq -r .id <<<"$API_BODY")
wait_state "$C" "$c1" running
api "$C" POST /v1/jobs -H 'X-Hermes-Job: {"command":"echo second"}'
expect_status 201 "carol's second job"
c2=$(jq -r .id <<<"$API_BODY")
api "$C" POST /v1/jobs -H 'X-Hermes-Job: {"command":"true"}'
expect_error 429 "carol over max_queued" "max_queued"
sleep 1 # a free CPU slot must not start carol's second job while her first runs
get_job "$C" "$c2"
[[ $(field state) == queued ]] || fail "carol's 2nd job started beyond max_running: $JOB"
api "$C" DELETE "/v1/jobs/$c1"
wait_state "$C" "$c2" exited

step "metrics"
api "" GET /metrics
expect_status 200 metrics
for m in 'hermes_jobs_queued 0' 'hermes_jobs_running 0' 'hermes_jobs_ended_total{state="cancelled"} 2' \
	'hermes_jobs_ended_total{state="timed-out"} 1' 'hermes_job_duration_seconds_count 8' \
	'hermes_gpu_utilization_ratio{gpu="0"} 0.37' 'hermes_gpu_memory_used_bytes{gpu="0"} 1073741824' \
	'hermes_gpu_memory_total_bytes{gpu="0"} 150754820096' 'hermes_gpu_busy{gpu="0"} 0'; do
	grep -qF "$m" <<<"$API_BODY" || fail "metrics lack '$m': $API_BODY"
done

step "the CLI: submit --wait, submit, jobs, logs, cancel"
export HERMES_URL=$HD_URL HERMES_TOKEN=$A
proj=$(tree_tmpdir)
mkdir -p "$proj/src" "$proj/.git"
printf 'from the project\n' >"$proj/src/data.txt"
printf 'not sent\n' >"$proj/.git/HEAD"
mkdir -p "$proj/build" "$proj/src/deep"
printf 'build/\n*.o\n' >"$proj/.gitignore"
printf '!keep.o\n' >"$proj/src/.hermesignore"
touch "$proj/build/out" "$proj/src/x.o" "$proj/src/keep.o" "$proj/src/deep/y.o"
rc=0
"$HERMES_REMOTE" submit -C "$proj" -e WHO=cli --wait -- sh -c 'cat src/data.txt; echo "$WHO"; find . | sort; exit 7' \
	>"$W/cli.out" 2>"$W/cli.err" || rc=$?
[[ $rc == 7 ]] || fail "submit --wait exited $rc, not 7: $(cat "$W/cli.err")"
printf 'from the project\ncli\n.\n./.gitignore\n./src\n./src/.hermesignore\n./src/data.txt\n./src/deep\n./src/keep.o\n' |
	cmp - "$W/cli.out" || fail "submit --wait output: $(cat "$W/cli.out")"
id=$("$HERMES_REMOTE" submit -C "$proj" -- 'echo two words; sleep 300')
[[ $id =~ ^[0-9]+$ ]] || fail "submit printed '$id'"
wait_state "$A" "$id" running
for _ in $(seq 300); do api "$A" GET "/v1/jobs/$id/logs"; [[ -n $API_BODY ]] && break; sleep 0.05; done
"$HERMES_REMOTE" jobs >"$W/jobs.out" || fail "hermes jobs failed"
grep -Eq "^$id +running +- .*echo two words; sleep 300$" "$W/jobs.out" || fail "hermes jobs: $(cat "$W/jobs.out")"
"$HERMES_REMOTE" cancel "$id" || fail "hermes cancel failed"
rc=0
"$HERMES_REMOTE" logs -f "$id" >"$W/logs.out" || rc=$?
[[ $rc == 0 && $(cat "$W/logs.out") == "two words" ]] || fail "hermes logs -f: rc $rc: $(cat "$W/logs.out")"
get_job "$A" "$id"
[[ $(field state) == cancelled ]] || fail "hermes cancel did not cancel: $JOB"
rc=0
"$HERMES_REMOTE" jobs --token wrong-token-xyz 2>"$W/err.out" || rc=$?
[[ $rc == 1 ]] && grep -q "^hermes: GET $HD_URL/v1/jobs: HTTP 401: missing or unknown bearer token" "$W/err.out" ||
	fail "bad token: rc $rc: $(cat "$W/err.out")"
rc=0
HERMES_URL=http://127.0.0.1:1 "$HERMES_REMOTE" jobs 2>"$W/err.out" || rc=$?
[[ $rc == 1 ]] && grep -q "^hermes: GET http://127.0.0.1:1/v1/jobs: " "$W/err.out" ||
	fail "unreachable hermesd: rc $rc: $(cat "$W/err.out")"
rc=0
"$HERMES_REMOTE" logs 99999 2>"$W/err.out" || rc=$?
[[ $rc == 1 ]] && grep -q "HTTP 404: job 99999: no such job" "$W/err.out" || fail "unknown id: $(cat "$W/err.out")"

step "hermesd stops cleanly on SIGTERM"
hermesd_kill TERM
[[ $HD_RC == 0 ]] || fail "hermesd exited $HD_RC on SIGTERM"
hermesd_log_clean "$W"
echo "api_e2e: all passed"
