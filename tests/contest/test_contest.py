"""Unit tests of contrib/contest without hermesd: archive reading and its
refusals, output comparison and checkers, problem folders, the verdict logic
of the judge (against a scripted stand-in for hermesd), the database's
scoreboard and the reference-time cache. Run: python3 tests/contest/test_contest.py
"""
import io
import json
import os
import sqlite3
import sys
import tarfile
import tempfile
import unittest
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../contrib/contest"))
from hermes_contest import archive, judge, problems  # noqa: E402
from hermes_contest.db import Database  # noqa: E402

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../contrib/contest/sample")


def tar_bytes(entries, mode="w"):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def reg(name, data=b"x"):
    i = tarfile.TarInfo(name)
    i.size = len(data)
    return i, data


class ArchiveTest(unittest.TestCase):
    def test_tar_tgz_zip(self):
        files = {"Makefile": b"all:\n", "src/a.c": b"int x;\n"}
        self.assertEqual(archive.read_upload(tar_bytes([reg(n, d) for n, d in files.items()])), files)
        self.assertEqual(archive.read_upload(archive.pack(files)), files)
        z = io.BytesIO()
        with zipfile.ZipFile(z, "w") as zf:
            for n, d in files.items():
                zf.writestr(n, d)
        self.assertEqual(archive.read_upload(z.getvalue()), files)

    def test_one_top_directory_is_dropped(self):
        got = archive.read_upload(tar_bytes([reg("team/Makefile"), reg("team/src/a.c")]))
        self.assertEqual(sorted(got), ["Makefile", "src/a.c"])
        # unpack keeps what pack was given, even a single top directory
        self.assertEqual(sorted(archive.unpack(archive.pack({"d/x": b"1"}))), ["d/x"])

    def test_refusals(self):
        link = tarfile.TarInfo("Makefile")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        hard = tarfile.TarInfo("h")
        hard.type, hard.linkname = tarfile.LNKTYPE, "a"
        cases = {
            "symlink": [(link, None)],
            "hardlink": [reg("a"), (hard, None)],
            "dotdot": [reg("../evil")],
            "absolute": [reg("/etc/evil")],
            "twice": [reg("a"), reg("./a")],
        }
        for what, entries in cases.items():
            with self.subTest(what), self.assertRaises(archive.ArchiveError):
                archive.read_upload(tar_bytes(entries))
        with self.assertRaisesRegex(archive.ArchiveError, "not a readable tar"):
            archive.read_upload(b"garbage" * 100)
        with self.assertRaisesRegex(archive.ArchiveError, "no files"):
            archive.read_upload(tar_bytes([]))
        z = io.BytesIO()
        with zipfile.ZipFile(z, "w") as zf:
            info = zipfile.ZipInfo("run-sum.sh")
            info.external_attr = 0o120777 << 16  # a symlink
            zf.writestr(info, "/etc/passwd")
        with self.assertRaisesRegex(archive.ArchiveError, "only regular files"):
            archive.read_upload(z.getvalue())
        many = tar_bytes([reg(f"f{i}") for i in range(archive.MAX_FILES + 1)])
        with self.assertRaisesRegex(archive.ArchiveError, "more than"):
            archive.read_upload(many)


class CompareTest(unittest.TestCase):
    def test_same_output(self):
        self.assertEqual(judge.same_output(b"1\n2\n", b"1 \n2\n\n\n"), 0)
        self.assertEqual(judge.same_output(b"1\n2\n", b"1\n3\n"), 2)
        self.assertEqual(judge.same_output(b"1\n2\n", b"1\n"), 2)
        self.assertEqual(judge.same_output(b"1\n", b""), 1)

    def test_checker(self):
        with tempfile.TemporaryDirectory() as d:
            chk = os.path.join(d, "close.py")
            with open(chk, "w") as f:
                f.write("import sys\nout, exp = (float(open(p).read()) for p in sys.argv[2:4])\n"
                        "ok = abs(out - exp) < 1e-6\nprint('ok' if ok else f'{out} is off')\n"
                        "sys.exit(0 if ok else 1)\n")
            cmd = f"{sys.executable} {chk}"
            self.assertEqual(judge.run_checker(cmd, b"", b"1.0000000001\n", b"1\n")[0], True)
            ok, text = judge.run_checker(cmd, b"", b"1.1\n", b"1\n")
            self.assertFalse(ok)
            self.assertIn("1.1 is off", text)
            with self.assertRaisesRegex(judge.CheckerError, "checker '/nonexistent/checker'"):
                judge.run_checker("/nonexistent/checker", b"", b"", b"")


class ProblemsTest(unittest.TestCase):
    def test_sample(self):
        p, tests, ref = problems.from_dir(os.path.join(SAMPLE, "sum"))
        self.assertEqual((p["name"], p["repeats"], p["gpus"]), ("sum", 3, 0))
        self.assertEqual([t[0] for t in tests], ["large", "small"])
        self.assertEqual(sorted(archive.unpack(ref)), ["Makefile", "run-sum.sh", "sum.c"])
        p, _, _ = problems.from_dir(os.path.join(SAMPLE, "vecadd"))
        self.assertEqual((p["gpus"], p["image"]), (1, "localhost/hermes-contest:cuda"))

    def test_errors(self):
        base = {"problem.json": json.dumps({"name": "p", "time_limit_s": 1}).encode(),
                "tests/a.in": b"1", "tests/a.out": b"1",
                "reference/Makefile": b"", "reference/run-p.sh": b""}
        problems.from_files(base, "x")
        for change, msg in [
            ({"problem.json": b"{"}, "x/problem.json: not valid JSON"),
            ({"problem.json": b'{"name": "P!", "time_limit_s": 1}'}, "'name' must match"),
            ({"problem.json": b'{"name": "p", "time_limit_s": 0}'}, "'time_limit_s'"),
            ({"problem.json": b'{"name": "p", "time_limit_s": 1, "colour": 1}'}, "unknown keys"),
            ({"tests/a.out": None}, "tests/a.in has no tests/a.out"),
            ({"reference/run-p.sh": None}, "reference/ needs a Makefile and run-p.sh"),
        ]:
            files = dict(base)
            for k, v in change.items():
                if v is None:
                    del files[k]
                else:
                    files[k] = v
            with self.subTest(msg), self.assertRaisesRegex(problems.ProblemError, msg):
                problems.from_files(files, "x")


class FakeHermes:
    """hermesd as judge.Judge sees it: one finished job with a log and files."""

    def __init__(self, log, files, state="exited", host="h1"):
        self.log, self.files, self.state, self.host = log, files, state, host
        self.submitted = []

    def submit(self, blob, spec):
        self.submitted.append((archive.unpack(blob), spec))
        return str(len(self.submitted))

    def job(self, job_id):
        return {"id": job_id, "state": self.state, "exit_code": 0, "host": self.host,
                "message": "boom" if self.state == "failed" else ""}

    def logs(self, job_id, limit):
        return self.log.encode()

    def file(self, job_id, path, limit):
        return self.files.get(path)

    def cancel(self, job_id):
        self.cancelled = job_id


PROBLEM = {"name": "sum", "time_limit_s": 2, "repeats": 2, "gpus": 1, "image": None,
           "checker": None}
TESTS = [{"name": "a", "input": b"1 2\n", "expected": b"3\n"},
         {"name": "b", "input": b"2 2\n", "expected": b"4\n"}]


def runs(rc_us, outs=("3\n", "3\n", "4\n", "4\n")):
    marks = ["@@compile 0"] + [f"@@run {t} {r} {rc} {us}" for (t, r), (rc, us)
                               in zip([(1, 1), (1, 2), (2, 1), (2, 2)], rc_us)]
    files = {f"out/{t}.{r}": o.encode() for (t, r), o in zip([(1, 1), (1, 2), (2, 1), (2, 2)], outs)}
    return "\n".join(marks) + "\n", files


class JudgeTest(unittest.TestCase):
    def outcome(self, log, files, state="exited", problem=PROBLEM):
        h = FakeHermes(log, files, state)
        j = judge.Judge(None, h, image="img", poll_s=0)
        out = j.run(problem, TESTS, {"Makefile": b"", "run-sum.sh": b""})
        return out, h

    def test_job_contents(self):
        log, files = runs([(0, 100), (0, 300), (0, 1000), (0, 2000)])
        out, h = self.outcome(log, files)
        ws, spec = h.submitted[0]
        self.assertEqual(sorted(ws), ["in/1.in", "in/2.in", "sub/Makefile", "sub/run-sum.sh"])
        for t in TESTS:  # the expected outputs are nowhere in the job
            self.assertFalse(any(t["expected"] == v for k, v in ws.items() if not k.startswith("in/")))
        self.assertEqual((spec["gpus"], spec["image"]), (1, "img"))
        self.assertIn("timeout -k 1 2 sh run-sum.sh", spec["command"])
        self.assertEqual((out.verdict, out.time_us, out.host), (judge.ACCEPTED, 200 + 1500, "h1"))

    def test_verdicts(self):
        cases = [
            (runs([(0, 1), (0, 1), (0, 1), (0, 1)], ("3\n", "3\n", "5\n", "4\n")), judge.WRONG,
             "test 2 \\(b\\), run 1: output differs from the expected output at line 1"),
            (runs([(0, 1), (124, 2000000)]), judge.TLE, "test 1 \\(a\\), run 2: over the time limit"),
            (runs([(0, 1), (137, 3000000)]), judge.TLE, "over the time limit of 2 s"),
            (runs([(139, 10)]), judge.RUNTIME, "exit code 139; signal 11"),
            (("@@compile 2\n", {"compile.log": b"a.c:1: error: x"}), judge.COMPILE,
             "make failed \\(exit 2\\):\na.c:1: error: x"),
            (("@@compile 0\n@@norun\n", {}), judge.COMPILE, "no run-sum.sh"),
            (("oops\n", {}), judge.JUDGE_ERROR, "the judge's driver stopped early"),
            (("@@compile 0\n@@run 1 1 0 5\n@@run 1 1 0 5\n", {"out/1.1": b"3\n"}),
             judge.JUDGE_ERROR, "unexpected judge line '@@run 1 1 0 5'"),
            (("@@compile 0\n@@run 1 1 0 5\n", {"out/1.1": b"3\n"}), judge.JUDGE_ERROR,
             "reported 1 of 4 runs"),
        ]
        for (log, files), verdict, pattern in cases:
            with self.subTest(pattern):
                out, _ = self.outcome(log, files)
                self.assertEqual(out.verdict, verdict, out.log)
                self.assertRegex(out.log, pattern)
        out, _ = self.outcome("", {}, state="failed")
        self.assertEqual(out.verdict, judge.JUDGE_ERROR)
        self.assertRegex(out.log, "hermesd job 1 failed: boom")
        out, _ = self.outcome("", {}, state="timed-out")
        self.assertEqual(out.verdict, judge.TLE)

    def test_stopping_cancels_and_leaves_the_judging(self):
        h = FakeHermes("", {}, state="running")
        j = judge.Judge(None, h, poll_s=0)
        j.stop.set()
        with self.assertRaises(judge.Stopping):
            j.run(PROBLEM, TESTS, {})
        self.assertEqual(h.cancelled, "1")

    def test_checker_decides(self):
        log, files = runs([(0, 1)] * 4, ("anything\n",) * 4)
        p = dict(PROBLEM, checker="true")
        self.assertEqual(self.outcome(log, files, problem=p)[0].verdict, judge.ACCEPTED)
        p = dict(PROBLEM, checker="false")
        out, _ = self.outcome(log, files, problem=p)
        self.assertEqual(out.verdict, judge.WRONG)
        self.assertIn("the checker refused the output", out.log)
        out, _ = self.outcome(log, files, problem=dict(PROBLEM, checker="/nonexistent/chk"))
        self.assertEqual(out.verdict, judge.JUDGE_ERROR)
        self.assertIn("checker '/nonexistent/chk'", out.log)


class DbTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.db = Database(os.path.join(self.dir.name, "c.db"))
        self.cid = self.db.add_contest("c")
        p, tests, ref = problems.from_dir(os.path.join(SAMPLE, "sum"))
        self.pid = self.db.put_problem(self.cid, p, tests, ref)

    def tearDown(self):
        self.dir.cleanup()

    def finish(self, sid, verdict, score):
        j = self.db.claim_judging()
        self.assertEqual(j["submission_id"], sid)
        self.db.judging_update(j["id"], status="done", verdict=verdict, score=score)

    def test_login(self):
        t = self.db.add_team(self.cid, "a", "secret")
        self.assertEqual(self.db.check_login("a", "secret")["id"], t)
        self.assertIsNone(self.db.check_login("a", "wrong"))
        self.assertIsNone(self.db.check_login("nobody", "secret"))
        tok = self.db.new_session(t)
        self.assertEqual(self.db.session_team(tok)["name"], "a")
        self.db.end_session(tok)
        self.assertIsNone(self.db.session_team(tok))
        raw = sqlite3.connect(self.db.path).execute("SELECT pw_hash FROM teams").fetchone()[0]
        self.assertNotIn(b"secret", raw)

    def test_scoreboard_best_latest_accepted(self):
        a, b = self.db.add_team(self.cid, "a", "p"), self.db.add_team(self.cid, "b", "p")
        self.db.add_team(self.cid, "root", "p", is_admin=True)
        s1 = self.db.add_submission(a, self.pid, "x", archive.pack({"f": b""}))
        self.finish(s1, "accepted", 1.5)
        s2 = self.db.add_submission(b, self.pid, "x", archive.pack({"f": b""}))
        self.finish(s2, "accepted", 2.5)
        s3 = self.db.add_submission(a, self.pid, "x", archive.pack({"f": b""}))
        self.finish(s3, "accepted", 0.5)
        board = self.db.scoreboard(self.cid)
        self.assertEqual([(e["team"], e["total"]) for e in board], [("b", 2.5), ("a", 1.5)])
        # a rejudge that turns b's only accepted run into a wrong answer
        self.db.rejudge(s2)
        self.finish(s2, "wrong answer", None)
        self.assertEqual([(e["team"], e["total"]) for e in self.db.scoreboard(self.cid)],
                         [("a", 1.5), ("b", 0.0)])
        self.assertEqual([s["id"] for s in self.db.submissions(self.cid, b)], [s2])

    def test_reference_cache_per_version_and_host(self):
        self.db.set_reference_time(self.pid, 1, "h1", 1000, 1)
        self.assertEqual(self.db.reference_time(self.pid, 1, "h1"), 1000)
        self.assertIsNone(self.db.reference_time(self.pid, 1, "h2"))
        p, tests, ref = problems.from_dir(os.path.join(SAMPLE, "sum"))
        self.assertEqual(self.db.put_problem(self.cid, p, tests, ref), self.pid)
        self.assertEqual(self.db.problem(self.pid)["version"], 2)
        self.assertIsNone(self.db.reference_time(self.pid, 2, "h1"))

    def test_requeue_running(self):
        t = self.db.add_team(self.cid, "a", "p")
        sid = self.db.add_submission(t, self.pid, "x", archive.pack({"f": b""}))
        j = self.db.claim_judging()
        ref = self.db.start_reference(self.pid)
        self.assertIsNone(self.db.claim_judging())
        self.assertEqual(self.db.requeue_running(), 1)
        self.assertEqual(self.db.claim_judging()["id"], j["id"])
        self.assertEqual(j["submission_id"], sid)
        # a reference timing cut by the stop is closed, never claimed
        self.assertEqual((self.db.judging(ref)["status"], self.db.judging(ref)["verdict"]),
                         ("done", "judge error"))
        self.assertIsNone(self.db.claim_judging())


if __name__ == "__main__":
    unittest.main()
