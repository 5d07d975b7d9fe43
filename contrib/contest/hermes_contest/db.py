"""db: the contest's SQLite database.

One Database object is shared by the web threads and the judge workers; every
method takes the lock and runs in its own transaction, so callers never see a
half-written row. Blobs (archives, test data) live in the database, so one
file holds the whole contest. Rows are returned as dicts.
"""
import hashlib
import hmac
import os
import sqlite3
import threading
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS contests (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS problems (
    id INTEGER PRIMARY KEY, contest_id INTEGER NOT NULL REFERENCES contests(id),
    name TEXT NOT NULL, title TEXT NOT NULL, statement TEXT NOT NULL,
    time_limit_s REAL NOT NULL, repeats INTEGER NOT NULL, gpus INTEGER NOT NULL,
    image TEXT, checker TEXT, version INTEGER NOT NULL,
    reference BLOB NOT NULL,            -- tar.gz of the sequential reference
    UNIQUE (contest_id, name));
CREATE TABLE IF NOT EXISTS tests (
    id INTEGER PRIMARY KEY, problem_id INTEGER NOT NULL REFERENCES problems(id),
    ord INTEGER NOT NULL, name TEXT NOT NULL, input BLOB NOT NULL, expected BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS teams (
    id INTEGER PRIMARY KEY, contest_id INTEGER NOT NULL REFERENCES contests(id),
    name TEXT NOT NULL UNIQUE, pw_salt BLOB NOT NULL, pw_hash BLOB NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY, team_id INTEGER NOT NULL REFERENCES teams(id), created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY, team_id INTEGER NOT NULL REFERENCES teams(id),
    problem_id INTEGER NOT NULL REFERENCES problems(id), created REAL NOT NULL,
    filename TEXT NOT NULL, archive BLOB NOT NULL);   -- tar.gz, normalised
-- A judging runs a submission, or (submission_id NULL) the problem's reference.
CREATE TABLE IF NOT EXISTS judgings (
    id INTEGER PRIMARY KEY, submission_id INTEGER REFERENCES submissions(id),
    problem_id INTEGER NOT NULL REFERENCES problems(id), problem_version INTEGER NOT NULL,
    created REAL NOT NULL, started REAL, ended REAL,
    status TEXT NOT NULL,               -- queued, running, done
    verdict TEXT, score REAL, time_us INTEGER, ref_us INTEGER,
    host TEXT, job_id TEXT, log TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS reference_times (
    problem_id INTEGER NOT NULL, version INTEGER NOT NULL, host TEXT NOT NULL,
    time_us INTEGER NOT NULL, judging_id INTEGER NOT NULL,
    PRIMARY KEY (problem_id, version, host));
"""

PBKDF2_ROUNDS = 200_000


def hash_password(password, salt):
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ROUNDS)


class DbError(Exception):
    pass


class Database:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)

    def _tx(self, fn):
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                r = fn(self.conn)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            return r

    def _all(self, sql, args=()):
        return self._tx(lambda c: [dict(r) for r in c.execute(sql, args)])

    def _one(self, sql, args=()):
        rows = self._all(sql, args)
        return rows[0] if rows else None

    # ---------------------------------------------------------- contests
    def contest(self, name):
        return self._one("SELECT * FROM contests WHERE name = ?", (name,))

    def add_contest(self, name):
        def f(c):
            row = c.execute("SELECT id FROM contests WHERE name = ?", (name,)).fetchone()
            if row:
                return row[0]
            return c.execute("INSERT INTO contests (name, created) VALUES (?, ?)",
                             (name, time.time())).lastrowid
        return self._tx(f)

    # ---------------------------------------------------------- teams
    def add_team(self, contest_id, name, password, is_admin=False):
        salt = os.urandom(16)
        h = hash_password(password, salt)

        def f(c):
            if c.execute("SELECT 1 FROM teams WHERE name = ?", (name,)).fetchone():
                raise DbError(f"team '{name}' exists already")
            return c.execute(
                "INSERT INTO teams (contest_id, name, pw_salt, pw_hash, is_admin) "
                "VALUES (?, ?, ?, ?, ?)", (contest_id, name, salt, h, int(is_admin))).lastrowid
        return self._tx(f)

    def check_login(self, name, password):
        """The team row when name and password match, else None (same work
        either way, so timing does not tell which one was wrong)."""
        row = self._one("SELECT * FROM teams WHERE name = ?", (name,))
        salt = row["pw_salt"] if row else b"\0" * 16
        h = hash_password(password, salt)
        if row and hmac.compare_digest(h, row["pw_hash"]):
            return row
        return None

    def new_session(self, team_id):
        token = os.urandom(24).hex()
        self._tx(lambda c: c.execute(
            "INSERT INTO sessions (token, team_id, created) VALUES (?, ?, ?)",
            (token, team_id, time.time())))
        return token

    def session_team(self, token):
        return self._one("SELECT t.id, t.name, t.is_admin, t.contest_id FROM sessions s "
                         "JOIN teams t ON t.id = s.team_id WHERE s.token = ?", (token,))

    def end_session(self, token):
        self._tx(lambda c: c.execute("DELETE FROM sessions WHERE token = ?", (token,)))

    def teams(self, contest_id):
        return self._all("SELECT id, name, is_admin FROM teams WHERE contest_id = ? ORDER BY id",
                         (contest_id,))

    # ---------------------------------------------------------- problems
    def put_problem(self, contest_id, p, tests, reference):
        """Add problem p (dict of the problems table's columns) or replace the
        one of the same name: its tests are replaced and its version goes up,
        which makes the cached reference times stale."""
        def f(c):
            old = c.execute("SELECT id, version FROM problems WHERE contest_id = ? AND name = ?",
                            (contest_id, p["name"])).fetchone()
            cols = (p["title"], p["statement"], p["time_limit_s"], p["repeats"], p["gpus"],
                    p.get("image"), p.get("checker"), reference)
            if old:
                pid, version = old[0], old[1] + 1
                c.execute("UPDATE problems SET title=?, statement=?, time_limit_s=?, repeats=?, "
                          "gpus=?, image=?, checker=?, reference=?, version=? WHERE id=?",
                          cols + (version, pid))
                c.execute("DELETE FROM tests WHERE problem_id = ?", (pid,))
            else:
                pid = c.execute(
                    "INSERT INTO problems (title, statement, time_limit_s, repeats, gpus, image, "
                    "checker, reference, version, contest_id, name) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)", cols + (contest_id, p["name"])).lastrowid
            for i, (name, inp, exp) in enumerate(tests):
                c.execute("INSERT INTO tests (problem_id, ord, name, input, expected) "
                          "VALUES (?, ?, ?, ?, ?)", (pid, i, name, inp, exp))
            return pid
        return self._tx(f)

    def problems(self, contest_id):
        return self._all("SELECT id, name, title, statement, time_limit_s, repeats, gpus, version "
                         "FROM problems WHERE contest_id = ? ORDER BY name", (contest_id,))

    def problem(self, pid):
        return self._one("SELECT * FROM problems WHERE id = ?", (pid,))

    def tests(self, pid):
        return self._all("SELECT * FROM tests WHERE problem_id = ? ORDER BY ord", (pid,))

    # ---------------------------------------------------------- submissions
    def add_submission(self, team_id, problem_id, filename, archive):
        def f(c):
            sid = c.execute("INSERT INTO submissions (team_id, problem_id, created, filename, "
                            "archive) VALUES (?, ?, ?, ?, ?)",
                            (team_id, problem_id, time.time(), filename, archive)).lastrowid
            _queue(c, sid, problem_id)
            return sid
        return self._tx(f)

    def submission(self, sid):
        return self._one("SELECT * FROM submissions WHERE id = ?", (sid,))

    def submissions(self, contest_id, team_id=None):
        """Submissions with their latest judging, newest first; one team's
        when team_id is given."""
        sql = ("SELECT s.id, s.team_id, t.name AS team, p.name AS problem, s.created, s.filename, "
               "j.id AS judging_id, j.status, j.verdict, j.score, j.time_us, j.ref_us "
               "FROM submissions s JOIN teams t ON t.id = s.team_id "
               "JOIN problems p ON p.id = s.problem_id "
               "LEFT JOIN judgings j ON j.id = (SELECT max(id) FROM judgings WHERE submission_id = s.id) "
               "WHERE t.contest_id = ?")
        args = [contest_id]
        if team_id is not None:
            sql += " AND s.team_id = ?"
            args.append(team_id)
        return self._all(sql + " ORDER BY s.id DESC", args)

    def judgings_of(self, sid):
        return self._all("SELECT * FROM judgings WHERE submission_id = ? ORDER BY id", (sid,))

    # ---------------------------------------------------------- judging queue
    def rejudge(self, sid):
        def f(c):
            row = c.execute("SELECT problem_id FROM submissions WHERE id = ?", (sid,)).fetchone()
            if not row:
                raise DbError(f"no submission {sid}")
            return _queue(c, sid, row[0])
        return self._tx(f)

    def start_reference(self, problem_id):
        """A judging of the problem's reference, already marked running (the
        worker that needs the reference time runs it at once)."""
        return self._tx(lambda c: _queue(c, None, problem_id, "running"))

    def claim_judging(self):
        """The oldest queued judging, now marked running; None when none."""
        def f(c):
            row = c.execute("SELECT * FROM judgings WHERE status = 'queued' AND "
                            "submission_id IS NOT NULL ORDER BY id LIMIT 1").fetchone()
            if not row:
                return None
            c.execute("UPDATE judgings SET status = 'running', started = ? WHERE id = ?",
                      (time.time(), row["id"]))
            return dict(row)
        return self._tx(f)

    def requeue_running(self):
        """Judgings a stopped service left running go back to the queue; a
        reference timing it left is closed (the next accepted submission
        times the reference again). The number requeued."""
        def f(c):
            c.execute("UPDATE judgings SET status = 'done', ended = ?, verdict = 'judge error', "
                      "log = 'the service stopped while this ran' "
                      "WHERE status = 'running' AND submission_id IS NULL", (time.time(),))
            return c.execute("UPDATE judgings SET status = 'queued', started = NULL, job_id = NULL "
                             "WHERE status = 'running'").rowcount
        return self._tx(f)

    def judging_update(self, jid, **cols):
        keys = sorted(cols)
        sql = "UPDATE judgings SET " + ", ".join(f"{k} = ?" for k in keys) + " WHERE id = ?"
        self._tx(lambda c: c.execute(sql, [cols[k] for k in keys] + [jid]))

    def judging(self, jid):
        return self._one("SELECT * FROM judgings WHERE id = ?", (jid,))

    def reference_time(self, problem_id, version, host):
        row = self._one("SELECT time_us FROM reference_times WHERE problem_id = ? AND version = ? "
                        "AND host = ?", (problem_id, version, host))
        return row["time_us"] if row else None

    def set_reference_time(self, problem_id, version, host, time_us, judging_id):
        self._tx(lambda c: c.execute(
            "INSERT OR REPLACE INTO reference_times (problem_id, version, host, time_us, judging_id) "
            "VALUES (?, ?, ?, ?, ?)", (problem_id, version, host, time_us, judging_id)))

    # ---------------------------------------------------------- scoreboard
    def scoreboard(self, contest_id):
        """Per team: the best score of each problem among its accepted
        submissions (latest judging of each), and their sum; best first."""
        rows = self._all(
            "SELECT t.name AS team, p.name AS problem, max(j.score) AS best "
            "FROM teams t JOIN submissions s ON s.team_id = t.id "
            "JOIN problems p ON p.id = s.problem_id "
            "JOIN judgings j ON j.id = (SELECT max(id) FROM judgings WHERE submission_id = s.id) "
            "WHERE t.contest_id = ? AND j.verdict = 'accepted' GROUP BY t.id, p.id", (contest_id,))
        board = {t["name"]: {"team": t["name"], "total": 0.0, "problems": {}}
                 for t in self.teams(contest_id) if not t["is_admin"]}
        for r in rows:
            e = board.setdefault(r["team"], {"team": r["team"], "total": 0.0, "problems": {}})
            e["problems"][r["problem"]] = r["best"]
            e["total"] += r["best"]
        return sorted(board.values(), key=lambda e: (-e["total"], e["team"]))


def _queue(c, sid, problem_id, status="queued"):
    version = c.execute("SELECT version FROM problems WHERE id = ?", (problem_id,)).fetchone()[0]
    now = time.time()
    return c.execute("INSERT INTO judgings (submission_id, problem_id, problem_version, created, "
                     "started, status) VALUES (?, ?, ?, ?, ?, ?)",
                     (sid, problem_id, version, now, now if status == "running" else None,
                      status)).lastrowid
