"""judge: run submissions through hermesd and decide their verdicts.

One hermesd job per judging. Its archive holds the submission under sub/
and the problem's inputs under in/; its command is the driver script,
written here (passed as the command, not as a file, so the submission
cannot rewrite it while it runs): it runs `make` in sub/, then `sh run-PROBLEM.sh < in/T.in > out/T.R` for each test T and
repeat R under `timeout`, timing each run, and prints one line per step:
    @@compile RC
    @@run T R RC MICROSECONDS
The expected outputs never enter the job: the outputs are fetched from the
job's workspace and compared here (exact up to trailing whitespace, or by
the problem's checker command). Verdicts: accepted, wrong answer, compile
error, runtime error, time limit exceeded, judge error (hermesd could not
run the job; its message is the log).

An accepted run's time is the sum over tests of the median of its repeats;
score = reference time / that time, the reference (the problem's sequential
program, judged the same way) timed once per problem version and hermesd
host, then cached. Judge workers take one judging at a time from the
database's queue, so timed runs do not compete with each other.
"""
import os
import shlex
import statistics
import subprocess
import tempfile
import threading
import time
import traceback

from . import archive
from .hermes import HermesError

ACCEPTED = "accepted"
WRONG = "wrong answer"
COMPILE = "compile error"
RUNTIME = "runtime error"
TLE = "time limit exceeded"
JUDGE_ERROR = "judge error"

LOG_CAP = 64 << 10
COMPILE_TIME_S = 120
TERMINAL = {"exited", "failed", "cancelled", "timed-out"}


def run_script_name(problem_name):
    return f"run-{problem_name}.sh"


def driver(problem, ntests):
    """The driver (a sh script) for a problem with ntests tests."""
    run = shlex.quote(run_script_name(problem["name"]))
    tl = f"{float(problem['time_limit_s']):g}"
    return f"""# the contest judge: build, then run each test {problem['repeats']} times
cd sub || exit 90
make >../compile.log 2>&1 </dev/null
rc=$?
echo "@@compile $rc"
[ "$rc" -eq 0 ] || exit 0
if [ ! -f {run} ]; then echo "@@norun"; exit 0; fi
mkdir -p ../out
t=1
while [ "$t" -le {ntests} ]; do
    r=1
    while [ "$r" -le {int(problem['repeats'])} ]; do
        s=$(date +%s%N)
        timeout -k 1 {tl} sh {run} <../in/$t.in >../out/$t.$r 2>../out/$t.$r.err
        rc=$?
        e=$(date +%s%N)
        echo "@@run $t $r $rc $(( (e - s) / 1000 ))"
        [ "$rc" -eq 0 ] || exit 0
        r=$((r + 1))
    done
    t=$((t + 1))
done
"""


def build_job(problem, tests, files, image):
    """(tar.gz, job JSON dict) judging files (the submission's) on tests."""
    ws = {}
    for i, t in enumerate(tests, 1):
        ws[f"in/{i}.in"] = t["input"]
    for name, data in files.items():
        ws["sub/" + name] = data
    runs = len(tests) * int(problem["repeats"])
    job = {
        "command": driver(problem, len(tests)),
        "gpus": int(problem["gpus"]),
        "limits": {
            "wall_time_s": int(COMPILE_TIME_S + runs * (float(problem["time_limit_s"]) + 2) + 30),
            "memory_bytes": 2 << 30,
            "pids": 1024,
            "output_bytes": 1 << 20,
        },
    }
    if problem.get("image") or image:
        job["image"] = problem.get("image") or image
    return archive.pack(ws), job


def same_output(expected, got):
    """Exact comparison, but blind to trailing whitespace on lines and to
    trailing empty lines. The 1-based first differing line, or 0."""
    a = expected.decode(errors="replace").rstrip().split("\n")
    b = got.decode(errors="replace").rstrip().split("\n")
    for i in range(max(len(a), len(b))):
        if i >= len(a) or i >= len(b) or a[i].rstrip() != b[i].rstrip():
            return i + 1
    return 0


class CheckerError(Exception):
    """The checker could not run: a judge error, not the team's fault."""


def run_checker(command, inp, got, expected):
    """The problem's checker: `COMMAND INPUT OUTPUT EXPECTED` (paths), run on
    the service host; accepted when it exits 0. (ok, its output)."""
    with tempfile.TemporaryDirectory(prefix="contest-check.") as d:
        paths = []
        for name, data in (("input", inp), ("output", got), ("expected", expected)):
            p = os.path.join(d, name)
            with open(p, "wb") as f:
                f.write(data)
            paths.append(p)
        try:
            r = subprocess.run(shlex.split(command) + paths, cwd=d, capture_output=True,
                               timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CheckerError(f"checker '{command}': {e}") from None
        return r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")[:4096]


class Stopping(Exception):
    """The service is stopping: the judging stays 'running' in the database
    and goes back to the queue at the next start (Database.requeue_running)."""


class Outcome:
    def __init__(self, verdict, log, time_us=None, host=None, job_id=None):
        self.verdict, self.log, self.time_us = verdict, log, time_us
        self.host, self.job_id = host, job_id


def _text(data):
    if data is None:
        return ""
    s = data.decode(errors="replace")
    return s if len(s) <= LOG_CAP else s[:LOG_CAP] + "\n[... cut]"


class Judge:
    def __init__(self, db, hermes, image=None, poll_s=0.2):
        self.db, self.hermes, self.image, self.poll_s = db, hermes, image, poll_s
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.threads = []

    # ------------------------------------------------------------ one job
    def _wait(self, job_id, wall_s):
        deadline = time.monotonic() + wall_s + 300
        while not self.stop.is_set():
            job = self.hermes.job(job_id)
            if job["state"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                self.hermes.cancel(job_id)
                raise HermesError(f"hermesd job {job_id} did not end in {wall_s + 300} s")
            time.sleep(self.poll_s)
        try:
            self.hermes.cancel(job_id)
        except HermesError:
            pass  # it may have ended meanwhile; the judging is redone anyway
        raise Stopping()

    def run(self, problem, tests, files, on_job=None):
        """Judge files on problem; an Outcome."""
        blob, spec = build_job(problem, tests, files, self.image)
        try:
            job_id = self.hermes.submit(blob, spec)
            if on_job:
                on_job(job_id)
            job = self._wait(job_id, spec["limits"]["wall_time_s"])
        except HermesError as e:
            return Outcome(JUDGE_ERROR, str(e))
        out = Outcome(None, "", host=job.get("host") or "", job_id=job_id)
        try:
            self._evaluate(job, problem, tests, out)
        except (HermesError, CheckerError) as e:
            out.verdict, out.log = JUDGE_ERROR, str(e)
        return out

    def _evaluate(self, job, problem, tests, out):
        jid = job["id"]
        if job["state"] == "timed-out":
            out.verdict = TLE
            out.log = f"the whole job ran past its wall time ({job.get('message') or ''})"
            return
        if job["state"] != "exited":
            out.verdict = JUDGE_ERROR
            out.log = f"hermesd job {jid} {job['state']}: {job.get('message') or ''}"
            return
        lines = _text(self.hermes.logs(jid, LOG_CAP)).splitlines()
        marks = [ln.split() for ln in lines if ln.startswith("@@")]
        if not marks or marks[0][0] != "@@compile" or len(marks[0]) != 2:
            out.verdict = JUDGE_ERROR
            out.log = f"the judge's driver stopped early (exit {job.get('exit_code')}):\n" + "\n".join(lines)
            return
        compile_log = _text(self.hermes.file(jid, "compile.log", LOG_CAP))
        if marks[0][1] != "0":
            out.verdict, out.log = COMPILE, f"make failed (exit {marks[0][1]}):\n{compile_log}"
            return
        if len(marks) > 1 and marks[1] == ["@@norun"]:
            out.verdict = COMPILE
            out.log = f"the archive has no {run_script_name(problem['name'])}"
            return
        self._runs(jid, problem, tests, marks[1:], out)

    def _runs(self, jid, problem, tests, marks, out):
        repeats = int(problem["repeats"])
        want = [(t, r) for t in range(1, len(tests) + 1) for r in range(1, repeats + 1)]
        times = {}
        report = []
        for i, m in enumerate(marks):
            if len(m) != 5 or m[0] != "@@run" or i >= len(want) or \
                    (int(m[1]), int(m[2])) != want[i]:
                out.verdict = JUDGE_ERROR
                out.log = f"unexpected judge line {' '.join(m)!r} (written by the submission?)"
                return
            t, r, rc, us = int(m[1]), int(m[2]), int(m[3]), int(m[4])
            name = tests[t - 1]["name"]
            where = f"test {t} ({name}), run {r}"
            if rc == 124 or (rc == 137 and us >= problem["time_limit_s"] * 1e6):
                out.verdict = TLE
                out.log = f"{where}: over the time limit of {problem['time_limit_s']:g} s"
                return
            if rc != 0:
                err = _text(self.hermes.file(jid, f"out/{t}.{r}.err", LOG_CAP))
                out.verdict = RUNTIME
                out.log = f"{where}: exit code {rc}" + (f"; signal {rc - 128}" if rc > 128 else "") \
                    + f"\nstandard error:\n{err}"
                return
            got = self.hermes.file(jid, f"out/{t}.{r}", len(tests[t - 1]["expected"]) + (1 << 20))
            bad = self._compare(problem, tests[t - 1], got or b"")
            if bad:
                out.verdict, out.log = WRONG, f"{where}: {bad}"
                return
            times.setdefault(t, []).append(us)
        if len(marks) != len(want):
            out.verdict = JUDGE_ERROR
            out.log = f"the judge's driver reported {len(marks)} of {len(want)} runs"
            return
        for t, ts in sorted(times.items()):
            report.append(f"test {t} ({tests[t - 1]['name']}): median "
                          f"{statistics.median(ts) / 1e6:.4f} s of {', '.join(f'{x / 1e6:.4f}' for x in ts)}")
        out.verdict = ACCEPTED
        out.time_us = int(sum(statistics.median(ts) for ts in times.values()))
        out.log = "\n".join(report)

    @staticmethod
    def _compare(problem, test, got):
        if problem.get("checker"):
            ok, text = run_checker(problem["checker"], test["input"], got, test["expected"])
            return None if ok else f"the checker refused the output: {text}"
        line = same_output(test["expected"], got)
        return f"output differs from the expected output at line {line}" if line else None

    # ------------------------------------------------------------ judgings
    def judge(self, judging):
        """Run one claimed judging to its end and record it."""
        jid = judging["id"]
        problem = self.db.problem(judging["problem_id"])
        tests = self.db.tests(problem["id"])
        sub = self.db.submission(judging["submission_id"])
        files = archive.unpack(sub["archive"])
        out = self.run(problem, tests, files,
                       lambda job_id: self.db.judging_update(jid, job_id=job_id,
                                                             problem_version=problem["version"]))
        score = ref_us = None
        if out.verdict == ACCEPTED:
            ref_us, err = self.reference_time(problem, tests, out.host)
            if ref_us is None:
                out.verdict, out.log = JUDGE_ERROR, out.log + "\n" + err
            else:
                score = ref_us / max(out.time_us, 1)
                out.log += f"\nreference {ref_us / 1e6:.4f} s, speedup {score:.3f}"
        self.db.judging_update(jid, status="done", ended=time.time(), verdict=out.verdict,
                               log=out.log, time_us=out.time_us, host=out.host, score=score,
                               ref_us=ref_us)

    def reference_time(self, problem, tests, host):
        """The reference's time on host (cached per problem version and host);
        (None, why) when the reference itself is not accepted."""
        cached = self.db.reference_time(problem["id"], problem["version"], host)
        if cached is not None:
            return cached, None
        rid = self.db.start_reference(problem["id"])
        out = self.run(problem, tests, archive.unpack(problem["reference"]),
                       lambda job_id: self.db.judging_update(rid, job_id=job_id))
        self.db.judging_update(rid, status="done", ended=time.time(), verdict=out.verdict,
                               log=out.log, time_us=out.time_us, host=out.host)
        if out.verdict != ACCEPTED:
            return None, f"the reference of {problem['name']} was not accepted ({out.verdict}, " \
                f"judging {rid}): {out.log}"
        if out.host != host:
            return None, f"the reference ran on {out.host}, not on {host}"
        self.db.set_reference_time(problem["id"], problem["version"], host, out.time_us, rid)
        return out.time_us, None

    # ------------------------------------------------------------ workers
    def start(self, workers=1):
        self.db.requeue_running()
        for i in range(workers):
            t = threading.Thread(target=self._loop, name=f"judge-{i}", daemon=True)
            t.start()
            self.threads.append(t)

    def notify(self):
        self.wake.set()

    def _loop(self):
        while not self.stop.is_set():
            judging = self.db.claim_judging()
            if judging is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            try:
                self.judge(judging)
            except Stopping:
                return
            except Exception:  # a bug must not kill the worker nor leave it "running"
                traceback.print_exc()
                self.db.judging_update(judging["id"], status="done", ended=time.time(),
                                       verdict=JUDGE_ERROR, log=traceback.format_exc())

    def shutdown(self):
        self.stop.set()
        self.wake.set()
        for t in self.threads:
            t.join(timeout=10)
