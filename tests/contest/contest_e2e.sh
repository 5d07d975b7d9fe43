#!/usr/bin/env bash
# The contest service (contrib/contest) end to end, on a real hermesd and a
# private Podman service: verdicts of a correct, a slower correct, a wrong,
# a slow (TLE), a non-compiling and a crashing submission; the scoreboard's
# order by speedup; rejudge after the problem changed; one team cannot see
# another's code or logs; a submission that hunts for the expected outputs
# and other submissions finds nothing; a judging cut by a restart is redone;
# the CUDA problem compiles with nvcc and fails clearly without a GPU.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/lib/podman.sh"
. "$SRCDIR/tests/api/hermesd.sh"
. "$SRCDIR/tests/contest/lib.sh"
for t in curl jq python3 tar gcc; do command -v $t >/dev/null || fail "$t missing"; done

W=$(tree_tmpdir)
contest_start "$W"
sql() { # QUERY: its first value, read from the service's database
	python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' \
		"$W/contest.db" "$1"
}
SAMPLE=$SRCDIR/contrib/contest/sample
for t in admin alpha beta gamma mallory; do login "$t"; done

# Submissions made from the sample: alpha's is the OpenMP solution (with a
# marker mallory hunts for), beta's is correct but sleeps 1 s before each run.
S=$W/subs
mkdir -p "$S"
variant() { # NAME SED-EXPRESSION [MAKEFILE]: the reference's sum.c edited
	mkdir -p "$S/$1"
	cp "$SAMPLE/sum/reference/"{Makefile,run-sum.sh} "$S/$1/"
	sed -e "$2" "$SAMPLE/sum/reference/sum.c" >"$S/$1/sum.c"
}
cp -r "$SAMPLE/solutions/sum" "$S/alpha"
printf '/* ALPHA-PRIVATE-MARKER-7f3a */\n' >>"$S/alpha/sum.c"
mkdir -p "$S/beta"
cp "$SAMPLE/sum/reference/"{Makefile,sum.c} "$S/beta/"
printf '#!/bin/sh\nsleep 1\nexec ./sum\n' >"$S/beta/run-sum.sh"
variant wrong 's|printf("%" PRIu64 "\\n", s);|printf("%" PRIu64 "\\n", s + 1);|'
variant crash 's|\tuint64_t s = 0;|\tuint64_t s = 0;\n\tif (n > 5000) abort();|; s|#include <stdio.h>|#include <stdio.h>\n#include <stdlib.h>|'
variant broken 's|uint64_t s = 0;|uint64_t s = ;|'
mkdir -p "$S/slow"
cp -r "$S/alpha/." "$S/slow/"
printf '#!/bin/sh\nsleep 30\nexec ./sum\n' >"$S/slow/run-sum.sh"
# mallory: at build time, search the whole container for the expected
# outputs, alpha's marker and hermesd's state; the run prints what it found
# on stderr and exits 3 (a runtime error whose log mallory reads).
mkdir -p "$S/mallory"
cat >"$S/mallory/Makefile" <<'MK'
all:
	@( for p in 2275822794354409299 8079600565562574540 ALPHA-PRIVATE-MARKER; do \
	    grep -rIl --exclude-dir=proc --exclude-dir=sys -e $$p / 2>/dev/null | grep -v '^/workspace/sub/' | sed "s|^|found $$p in |"; \
	  done; \
	  find / \( -path /proc -o -path /sys \) -prune -o \( -name '*.out' -o -name 'jobs.db' -o -name 'contest.db' -o -name 'large.out' \) -print 2>/dev/null | sed 's|^|found file |'; \
	  ls /workspace /workspace/in; echo HUNT-DONE ) >hunt.txt 2>&1
MK
printf '#!/bin/sh\ncat hunt.txt >&2\nexit 3\n' >"$S/mallory/run-sum.sh"

step "the command line names what is wrong"
rc=0
contest add-problem "$W/nowhere" 2>"$W/err" || rc=$?
[[ $rc == 1 ]] && grep -qx "hermes-contest: $W/nowhere: no problem.json" "$W/err" ||
	fail "add-problem of a missing folder: rc $rc: $(cat "$W/err")"
rc=0
CONTEST_PASSWORD=x contest add-team alpha 2>"$W/err" || rc=$?
[[ $rc == 1 ]] && grep -qx "hermes-contest: team 'alpha' exists already" "$W/err" ||
	fail "add-team twice: rc $rc: $(cat "$W/err")"

step "bad uploads are refused with the reason"
cs alpha POST "/api/submit?problem=sum" --data-binary 'not an archive'
cs_expect 400 "garbage upload"
grep -q "not a readable tar archive" <<<"$CS_BODY" || fail "garbage upload: $CS_BODY"
mkdir -p "$W/norun" && cp "$S/alpha/"{Makefile,sum.c} "$W/norun/"
tar -C "$W/norun" -czf "$W/norun.tgz" .
cs alpha POST "/api/submit?problem=sum" --data-binary @"$W/norun.tgz"
cs_expect 400 "no run script"
grep -q "lacks run-sum.sh" <<<"$CS_BODY" || fail "no run script: $CS_BODY"
cs alpha POST "/api/submit?problem=nope" --data-binary @"$W/norun.tgz"
cs_expect 400 "unknown problem"
python3 - "$W/evil.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    i = tarfile.TarInfo("Makefile"); i.type = tarfile.SYMTYPE; i.linkname = "/etc/passwd"; t.addfile(i)
PY
cs alpha POST "/api/submit?problem=sum" --data-binary @"$W/evil.tar"
cs_expect 400 "symlink upload"
grep -q "only regular files" <<<"$CS_BODY" || fail "symlink upload: $CS_BODY"
code=$(curl -s -o "$W/csrf.out" -w '%{http_code}' -b "$W/jar.alpha" --data-binary @"$W/norun.tgz" \
	"$CS_URL/api/submit?problem=sum")
if [[ $code != 403 ]] || ! grep -q "X-Contest: 1" "$W/csrf.out"; then
	fail "POST without X-Contest: $code $(cat "$W/csrf.out")"
fi
cs nobody GET /api/submissions
cs_expect 401 "no session"

step "the OpenMP solution is accepted with a speedup"
submit alpha sum "$S/alpha"
A1=$SUB_ID
wait_judged alpha "$A1"
expect_verdict accepted "alpha's OpenMP solution"
expect_log 'reference [0-9.]+ s, speedup [0-9.]+' "alpha's log"
jq -e '.judgings[-1] | .score > 0 and .time_us > 0 and .ref_us > 0' <<<"$SUB" >/dev/null ||
	fail "alpha's score: $SUB"
echo "alpha: $(jq -c '.judgings[-1] | {score, time_us, ref_us}' <<<"$SUB")"

step "a correct but slower solution is accepted with a lower score"
submit beta sum "$S/beta"
B1=$SUB_ID
wait_judged beta "$B1"
expect_verdict accepted "beta's sleepy solution"
echo "beta: $(jq -c '.judgings[-1] | {score, time_us, ref_us}' <<<"$SUB")"

step "wrong, slow, non-compiling and crashing submissions"
declare -A want=([wrong]="wrong answer" [slow]="time limit exceeded" [broken]="compile error"
	[crash]="runtime error")
declare -A logre=([wrong]='test 1 \(large\), run 1: output differs from the expected output at line 1'
	[slow]='test 1 \(large\), run 1: over the time limit of 3 s'
	[broken]='make failed \(exit 2\):.*|sum.c:[0-9]+:[0-9]+: error: expected expression'
	[crash]='test 1 \(large\), run 1: exit code 134; signal 6')
declare -A ids
for k in wrong slow broken crash; do
	submit gamma sum "$S/$k"
	ids[$k]=$SUB_ID
done
for k in wrong slow broken crash; do
	wait_judged gamma "${ids[$k]}"
	expect_verdict "${want[$k]}" "$k submission"
	expect_log "${logre[$k]}" "$k submission"
	jq -e '.judgings[-1].score == null' <<<"$SUB" >/dev/null || fail "$k got a score: $SUB"
done
# the expected output never shows in a verdict's log
cs gamma GET "/api/submissions/${ids[wrong]}"
! grep -q 2275822794354409299 <<<"$CS_BODY" || fail "the WA log shows the expected output: $CS_BODY"

step "a submission hunting for expected outputs and others' code finds nothing"
submit mallory sum "$S/mallory"
M1=$SUB_ID
wait_judged mallory "$M1"
expect_verdict "runtime error" "mallory"
expect_log HUNT-DONE "mallory ran its hunt"
expect_log '^2.in$' "mallory listed its inputs"
log=$(jq -r '.judgings[-1].log' <<<"$SUB")
! grep -q '^found' <<<"$log" || fail "mallory found something: $log"

step "one team cannot see another's code or logs"
for p in "/api/submissions/$A1" "/api/submissions/$A1/archive"; do
	cs beta GET "$p"
	cs_expect 404 "beta GET $p"
	grep -q "no submission $A1" <<<"$CS_BODY" || fail "beta GET $p: $CS_BODY"
	! grep -q ALPHA-PRIVATE <<<"$CS_BODY" || fail "beta saw alpha's code"
done
cs beta GET "/api/submissions/99999"
cs_expect 404 "a missing submission"
cs beta GET /api/submissions
[[ $(jq -r '[.[].team] | unique | join(",")' <<<"$CS_BODY") == beta ]] || fail "beta's list: $CS_BODY"
curl -sf -b "$W/jar.alpha" -o "$W/a1.tgz" "$CS_URL/api/submissions/$A1/archive" ||
	fail "alpha cannot download her archive"
tar -xzOf "$W/a1.tgz" sum.c | grep -q ALPHA-PRIVATE-MARKER || fail "alpha's archive lacks her code"
cs beta POST /api/admin/rejudge --data "{\"submission\":$A1}"
cs_expect 403 "beta rejudges"

step "the scoreboard orders teams by speedup"
cs beta GET /api/scoreboard
cs_expect 200 scoreboard
jq -e '[.[].team] == ["alpha", "beta", "gamma", "mallory"] and .[0].total > .[1].total
	and .[1].total > 0 and .[2].total == 0 and .[3].total == 0' <<<"$CS_BODY" >/dev/null ||
	fail "scoreboard: $CS_BODY"

step "rejudge after the admin changed the problem"
P2=$W/sum-v2
cp -r "$SAMPLE/sum" "$P2"
sed -i 's/"time_limit_s": 3/"time_limit_s": 4/' "$P2/problem.json"
tar -C "$P2" -czf "$W/sum-v2.tgz" .
cs alpha POST "/api/admin/problems" --data-binary @"$W/sum-v2.tgz"
cs_expect 403 "a team adds a problem"
cs admin POST "/api/admin/problems?filename=sum-v2.tgz" --data-binary @"$W/sum-v2.tgz"
cs_expect 201 "admin replaces sum"
jq -e '.name == "sum" and .version == 2' <<<"$CS_BODY" >/dev/null || fail "problem upload: $CS_BODY"
cs admin POST /api/admin/rejudge --data '{"problem":"sum"}'
cs_expect 202 "rejudge sum"
[[ $(jq '.judgings | length' <<<"$CS_BODY") == 7 ]] || fail "rejudge queued: $CS_BODY"
wait_judged alpha "$A1"
expect_verdict accepted "alpha rejudged"
[[ $(jq '.judgings | length' <<<"$SUB") == 2 ]] || fail "alpha has not 2 judgings: $SUB"
wait_judged gamma "${ids[slow]}"
expect_verdict "time limit exceeded" "slow rejudged"
expect_log 'over the time limit of 4 s' "slow rejudged under the new limit"
wait_judged gamma "${ids[wrong]}"
expect_verdict "wrong answer" "wrong rejudged"
# the reference was timed once per problem version
n=$(sql 'SELECT count(*) FROM judgings WHERE submission_id IS NULL')
[[ $n == 2 ]] || fail "the reference ran $n times, not 2 (once per version)"

step "a judging cut by a restart of the service is redone"
submit alpha sum "$S/alpha"
R1=$SUB_ID
for ((i = 0; i < 600; i++)); do
	cs alpha GET "/api/submissions/$R1"
	[[ $(jq -r '.judgings[-1].status' <<<"$CS_BODY") == running ]] && break
	sleep 0.1
done
[[ $(jq -r '.judgings[-1].status' <<<"$CS_BODY") == running ]] || fail "never running: $CS_BODY"
kill -TERM "$CS_PID"
wait "$CS_PID" || fail "the contest service exited $? on SIGTERM while judging"
contest_serve
wait_judged alpha "$R1"
expect_verdict accepted "the judging redone after the restart"
[[ $(jq '.judgings | length' <<<"$SUB") == 1 ]] || fail "restart made a second judging: $SUB"

step "the CUDA problem: nvcc compiles in the job, which gets GPU 0 and fails clearly without a real one"
bash "$SRCDIR/contrib/contest/build-image.sh" --cuda >"$W/cuda-image.log" 2>&1 ||
	fail "CUDA judge image: $(cat "$W/cuda-image.log")"
tar -C "$SAMPLE/vecadd" -czf "$W/vecadd.tgz" .
cs admin POST "/api/admin/problems?filename=vecadd.tgz" --data-binary @"$W/vecadd.tgz"
cs_expect 201 "admin adds vecadd"
cs alpha GET /api/problems
jq -e 'map(.name) == ["sum", "vecadd"] and .[1].gpus == 1' <<<"$CS_BODY" >/dev/null ||
	fail "problems: $CS_BODY"
submit alpha vecadd "$SAMPLE/solutions/vecadd"
wait_judged alpha "$SUB_ID"
expect_verdict "runtime error" "CUDA solution without a GPU"
expect_log 'test 1 \(large\), run 1: exit code 2' "CUDA solution's exit"
expect_log '^vecadd: no CUDA device: ' "CUDA solution's error"
job=$(sql "SELECT job_id FROM judgings WHERE submission_id = $SUB_ID")
get_job "$HD_TOKEN" "$job"
jq -e '.gpu == "0" and .spec.gpus == 1 and .spec.image == "localhost/hermes-contest:cuda"' \
	<<<"$JOB" >/dev/null || fail "the CUDA job's GPU or image: $JOB"

step "the service stops cleanly"
kill -TERM "$CS_PID"
wait "$CS_PID" || fail "the contest service exited $? on SIGTERM"
contest_log_clean
hermesd_kill TERM
[[ $HD_RC == 0 ]] || fail "hermesd exited $HD_RC on SIGTERM"
hermesd_log_clean "$W"
echo "contest_e2e: all passed"
