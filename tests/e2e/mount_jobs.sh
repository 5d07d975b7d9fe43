#!/usr/bin/env bash
# End-to-end: jobs through a mount (.hermes/run, out/, wait, cancel, jobs/ID)
# and the hermes run/status/logs/cancel commands, with the embedded local
# agent and a private Podman service (tests/lib/podman.sh). Checks the
# barrier (a job sees the edit written just before it), streaming (a reader
# gets output before the job ends), exit codes, stderr split, a second run
# while one runs, cancel, timeout, an unknown image and a GPU request on a
# host without GPUs, each with its message; containers never outlive a job.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
# shellcheck source=tests/lib/podman.sh
. "$SRCDIR/tests/lib/podman.sh"
[[ -e /dev/fuse ]] || { echo "SKIP: no /dev/fuse"; exit 77; }

work=$(tree_tmpdir)
LOCAL=$work/local MNT=$work/mnt DST=$work/dst
mkdir -p "$LOCAL" "$MNT" "$DST"

podman_start
cleanup_add podman_stop
# No CDI spec for the agent: this host has no GPU.
export HERMES_CDI_DIR=$work/no-cdi
mkdir -p "$HERMES_CDI_DIR"

# conf [WALL_TIME]: the project's hermes.conf, written through the mount
# once it is up (a write behind its back would not be mirrored).
CONF=$LOCAL/hermes.conf
conf() { printf 'image = %s\ngpus = none\nwall_time = %s\n' "$PODMAN_IMAGE" "${1:-60s}" >"$CONF"; }
conf
cleanup_add "fusermount3 -u '$MNT' 2>/dev/null || true"
"$HERMES" mount --agent-path "$HERMES_AGENT" --podman-socket "$PODMAN_SOCK" \
	"$LOCAL" "$MNT" "$DST" || fail "mount failed"
H=$MNT/.hermes
CONF=$MNT/hermes.conf

# wait_job: .hermes/wait, bounded.
wait_job() { timeout 120 cat "$H/wait" || fail "wait did not return"; }
field() { sed -n "s/^$1: //p" "${2:-$H/out/status}"; }
containers_left() { podman_cli ps -aq --filter label=hermes.owner | wc -l; }

step "a job: stdout, stderr, exit code"
echo 'echo hello; echo oops >&2; exit 3' >"$H/run" || fail "write to .hermes/run failed"
status=$(wait_job)
grep -qx 'state: exited' <<<"$status" || fail "state: $status"
grep -qx 'exit_code: 3' <<<"$status" || fail "exit code: $status"
[[ $(cat "$H/out/stdout") == hello ]] || fail "stdout: $(cat "$H/out/stdout")"
[[ $(cat "$H/out/stderr") == oops ]] || fail "stderr: $(cat "$H/out/stderr")"
id=$(field id)
[[ -d $H/jobs/$id ]] || fail "no .hermes/jobs/$id"
[[ $(cat "$H/jobs/$id/command") == 'echo hello; echo oops >&2; exit 3' ]] || fail "command file"
[[ $(cat "$H/jobs/$id/stdout") == hello ]] || fail "jobs/$id/stdout"
[[ ! -e $DST/.hermes/jobs ]] || fail "job files reached the host tree"

step "barrier: a job sees the edit written just before it"
for i in 1 2 3 4 5; do
	printf 'edit %s\n' "$i" >"$MNT/file.txt"
	echo 'cat file.txt' >"$H/run"
	wait_job >/dev/null
	[[ $(cat "$H/out/stdout") == "edit $i" ]] || fail "job $i saw '$(cat "$H/out/stdout")'"
done

step "streaming: output before the job ends; a second run is refused"
echo 'echo first; sleep 3; echo second' >"$H/run"
id=$(field id)
timeout 60 cat "$H/out/stdout" >"$work/stream" &
reader=$!
for _ in $(seq 100); do
	[[ -s $work/stream ]] && break
	sleep 0.05
done
[[ $(cat "$work/stream") == first ]] || fail "no output while the job runs: '$(cat "$work/stream")'"
[[ $(field state) == running ]] || fail "state while streaming: $(field state)"
if (echo 'echo intruder' >"$H/run") 2>"$work/busy.err"; then
	fail "a second run was accepted while one runs"
fi
grep -q 'resource busy' "$work/busy.err" || fail "second run: $(cat "$work/busy.err")"
wait "$reader" || fail "reader failed"
[[ $(cat "$work/stream") == $'first\nsecond' ]] || fail "streamed: $(cat "$work/stream")"
[[ $(field id) == "$id" ]] || fail "the refused run replaced the job"

step "cancel"
echo 'sleep 100' >"$H/run"
start=$(date +%s)
echo cancel >"$H/cancel" || fail "cancel failed"
status=$(wait_job)
grep -qx 'state: cancelled' <<<"$status" || fail "after cancel: $status"
(($(date +%s) - start < 30)) || fail "cancel took too long"
[[ $(containers_left) == 0 ]] || fail "a container outlived its job"
if (echo x >"$H/cancel") 2>/dev/null; then fail "cancel with no job succeeded"; fi

step "hermes run, status, logs, cancel"
cd "$MNT"
rc=0
out=$("$HERMES" run -- sh -c 'echo out; echo err >&2; exit 7' 2>"$work/run.err") || rc=$?
((rc == 7)) || fail "hermes run exit $rc"
[[ $out == out ]] || fail "hermes run stdout: $out"
grep -qx err "$work/run.err" || fail "hermes run stderr: $(cat "$work/run.err")"
"$HERMES" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["state"] == "exited" and s["exit_code"] == 7, s
' || fail "hermes status --json"
id=$(field id)
[[ $("$HERMES" logs "$id" 2>/dev/null) == out ]] || fail "hermes logs $id"
if "$HERMES" cancel 2>"$work/cancel.err"; then fail "hermes cancel with no job succeeded"; fi
grep -q 'no job is running' "$work/cancel.err" || fail "hermes cancel: $(cat "$work/cancel.err")"
cd - >/dev/null

step "Ctrl-C on hermes run cancels the job"
"$HERMES" run -C "$MNT" -- sh -c 'echo going; sleep 100' >"$work/int.out" 2>&1 &
runner=$!
for _ in $(seq 100); do
	grep -q going "$work/int.out" && break
	sleep 0.1
done
grep -q going "$work/int.out" || fail "the job did not start: $(cat "$work/int.out")"
kill -INT "$runner"
rc=0
timeout 60 tail --pid="$runner" -f /dev/null || fail "hermes run did not end after SIGINT"
wait "$runner" || rc=$?
((rc == 130)) || fail "hermes run after SIGINT: exit $rc ($(cat "$work/int.out"))"
[[ $(field state) == cancelled ]] || fail "state after SIGINT: $(field state)"

step "timeout"
conf 2s
rc=0
"$HERMES" run -C "$MNT" -- sleep 30 2>"$work/timeout.err" || rc=$?
((rc == 124)) || fail "timed-out job: exit $rc ($(cat "$work/timeout.err"))"
[[ $(field state) == timed-out ]] || fail "state: $(field state)"

step "unknown image: the write fails, the status says why"
printf 'image = localhost/no-such-image:1\ngpus = none\n' >"$CONF"
if (echo true >"$H/run") 2>"$work/image.err"; then fail "a job with an unknown image started"; fi
grep -q 'no-such-image' "$H/out/status" || fail "status: $(cat "$H/out/status")"
[[ $(field state) == failed ]] || fail "state: $(field state)"

step "a GPU job on a host without GPUs"
printf 'image = %s\ngpus = all\n' "$PODMAN_IMAGE" >"$CONF"
rc=0
"$HERMES" run -C "$MNT" -- nvidia-smi 2>"$work/gpu.err" || rc=$?
((rc == 125)) || fail "GPU job: exit $rc"
grep -qi 'cdi\|nvidia' "$work/gpu.err" || fail "GPU message: $(cat "$work/gpu.err")"
[[ $(wc -l <"$work/gpu.err") -le 2 ]] || fail "GPU message is not one clear line: $(cat "$work/gpu.err")"

step "umount with the job files kept"
conf
"$HERMES" umount "$MNT" || fail "umount"
ls "$LOCAL/.hermes/jobs" | grep -qx "$id" || fail "job $id not kept in LOCALDIR/.hermes/jobs"
[[ $(containers_left) == 0 ]] || fail "containers left"
echo "PASS"
