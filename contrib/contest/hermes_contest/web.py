"""web: the contest's HTTP server: static pages and a JSON API.

    POST /api/login {"team","password"}   sets the session cookie (HttpOnly,
                                          SameSite=Strict); POST /api/logout
    GET  /api/me, /api/problems, /api/scoreboard
    POST /api/submit?problem=NAME&filename=F   body: the archive (tar, tar.gz, zip)
    GET  /api/submissions                  the team's own (an admin: all)
    GET  /api/submissions/ID[/archive]     one of the team's own, with its
                                          judgings and logs / its archive
    POST /api/admin/problems               body: a problem folder as tar(.gz)/zip
    POST /api/admin/rejudge {"submission": ID} or {"problem": NAME}

Another team's submission answers 404, exactly like a missing one, so ids
tell nothing. Every POST must carry the header X-Contest: 1, which a page of
another origin cannot send without a CORS preflight this server never
grants (with the SameSite cookie: no cross-site request forgery). Errors are
JSON {"error": "..."} naming what was wrong.
"""
import json
import os
import re
import sys
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import archive, problems
from .db import DbError
from .judge import run_script_name

STATIC = os.path.join(os.path.dirname(__file__), "static")
STATIC_TYPES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript",
                "style.css": "text/css"}
MAX_BODY = 16 << 20


class HttpError(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


class Service:
    """What the handlers need: the database, the contest, the judge."""

    def __init__(self, db, contest_id, judge):
        self.db, self.contest_id, self.judge = db, contest_id, judge


class Handler(BaseHTTPRequestHandler):
    server_version = "hermes-contest/0.1"
    service = None  # set by make_server

    def log_message(self, fmt, *args):  # quiet: the tests read stderr for errors only
        pass

    # ------------------------------------------------------------ plumbing
    def _send(self, status, body, ctype="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
        if n < 0 or n > MAX_BODY:
            raise HttpError(413, f"body over {MAX_BODY >> 20} MiB")
        return self.rfile.read(n)

    def _json_body(self):
        try:
            v = json.loads(self._body() or b"{}")
        except ValueError:
            raise HttpError(400, "the body is not valid JSON") from None
        if not isinstance(v, dict):
            raise HttpError(400, "expected a JSON object")
        return v

    def _token(self):
        for part in (self.headers.get("Cookie") or "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == "session" and v:
                return v
        return None

    def _team(self):
        token = self._token()
        team = self.service.db.session_team(token) if token else None
        if team is None:
            raise HttpError(401, "log in first")
        return team

    def _admin(self):
        team = self._team()
        if not team["is_admin"]:
            raise HttpError(403, "admins only")
        return team

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            if method == "POST" and self.headers.get("X-Contest") != "1":
                raise HttpError(403, "POST needs the header X-Contest: 1")
            for m, pattern, fn in ROUTES:
                match = re.fullmatch(pattern, url.path)
                if match and m == method:
                    return fn(self, query, *match.groups())
            if any(re.fullmatch(p, url.path) for _, p, _ in ROUTES):
                raise HttpError(405, f"{method} {url.path} is not supported")
            raise HttpError(404, f"no such resource: {url.path}")
        except HttpError as e:
            self._send(e.status, {"error": str(e)})
        except (archive.ArchiveError, problems.ProblemError, DbError) as e:
            self._send(400, {"error": str(e)})
        except Exception as e:  # a bug: answer 500 and leave its trace in the log
            traceback.print_exc()
            print(f"hermes-contest: {method} {self.path}: {e!r}", file=sys.stderr)
            self._send(500, {"error": f"internal error: {e!r}"})

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    # ------------------------------------------------------------ pages
    def static(self, query, name=None):
        name = name or "index.html"
        if name not in STATIC_TYPES:
            raise HttpError(404, f"no such resource: /static/{name}")
        with open(os.path.join(STATIC, name), "rb") as f:
            self._send(200, f.read(), STATIC_TYPES[name])

    # ------------------------------------------------------------ session
    def login(self, query):
        b = self._json_body()
        team = self.service.db.check_login(str(b.get("team", "")), str(b.get("password", "")))
        if team is None or team["contest_id"] != self.service.contest_id:
            raise HttpError(401, "unknown team or wrong password")
        token = self.service.db.new_session(team["id"])
        cookie = f"session={token}; HttpOnly; SameSite=Strict; Path=/"
        self._send(200, {"team": team["name"], "admin": bool(team["is_admin"])},
                   headers=[("Set-Cookie", cookie)])

    def logout(self, query):
        if self._token():
            self.service.db.end_session(self._token())
        self._send(200, {"ok": True},
                   headers=[("Set-Cookie", "session=; Max-Age=0; Path=/; SameSite=Strict")])

    def me(self, query):
        team = self._team()
        self._send(200, {"team": team["name"], "admin": bool(team["is_admin"])})

    # ------------------------------------------------------------ contest
    def problem_list(self, query):
        self._team()
        self._send(200, [{k: p[k] for k in ("name", "title", "statement", "time_limit_s",
                                             "repeats", "gpus")}
                         for p in self.service.db.problems(self.service.contest_id)])

    def scoreboard(self, query):
        self._send(200, self.service.db.scoreboard(self.service.contest_id))

    def submit(self, query):
        team = self._team()
        name = query.get("problem", "")
        prob = next((p for p in self.service.db.problems(self.service.contest_id)
                     if p["name"] == name), None)
        if prob is None:
            raise HttpError(400, f"no problem named '{name}'")
        files = archive.read_upload(self._body())
        missing = [f for f in ("Makefile", run_script_name(name)) if f not in files]
        if missing:
            raise HttpError(400, f"the archive lacks {' and '.join(missing)} at its top level")
        filename = os.path.basename(query.get("filename", "")) or "upload"
        sid = self.service.db.add_submission(team["id"], prob["id"], filename[:200],
                                             archive.pack(files))
        self.service.judge.notify()
        self._send(201, {"id": sid})

    def _own(self, sid):
        team = self._team()
        sub = self.service.db.submission(int(sid))
        if sub is None or (sub["team_id"] != team["id"] and not team["is_admin"]):
            raise HttpError(404, f"no submission {sid}")
        return team, sub

    def submission_list(self, query):
        team = self._team()
        rows = self.service.db.submissions(self.service.contest_id,
                                           None if team["is_admin"] else team["id"])
        self._send(200, rows)

    def submission(self, query, sid):
        team, sub = self._own(sid)
        rows = [r for r in self.service.db.submissions(self.service.contest_id, sub["team_id"])
                if r["id"] == sub["id"]]
        keys = ("id", "created", "started", "ended", "status", "verdict", "score", "time_us",
                "ref_us", "log")
        out = dict(rows[0])
        out["files"] = sorted(archive.unpack(sub["archive"]))
        out["judgings"] = [{k: j[k] for k in keys} for j in self.service.db.judgings_of(sub["id"])]
        self._send(200, out)

    def submission_archive(self, query, sid):
        team, sub = self._own(sid)
        self._send(200, sub["archive"], "application/gzip",
                   [("Content-Disposition", f'attachment; filename="submission-{sub["id"]}.tar.gz"')])

    # ------------------------------------------------------------ admin
    def add_problem(self, query):
        self._admin()
        files = archive.read_upload(self._body())
        p, tests, ref = problems.from_files(files, query.get("filename") or "upload")
        pid = self.service.db.put_problem(self.service.contest_id, p, tests, ref)
        prob = self.service.db.problem(pid)
        self._send(201, {"id": pid, "name": prob["name"], "version": prob["version"]})

    def rejudge(self, query):
        self._admin()
        b = self._json_body()
        db = self.service.db
        if "submission" in b:
            if not isinstance(b["submission"], int):
                raise HttpError(400, "'submission' must be a submission id (integer)")
            sids = [b["submission"]]
        elif "problem" in b:
            sids = [s["id"] for s in db.submissions(self.service.contest_id)
                    if s["problem"] == b["problem"]]
        else:
            raise HttpError(400, "name a 'submission' or a 'problem'")
        jids = [db.rejudge(s) for s in sids]
        self.service.judge.notify()
        self._send(202, {"judgings": jids})


ROUTES = [
    ("GET", r"/", Handler.static),
    ("GET", r"/static/([a-z.]+)", Handler.static),
    ("POST", r"/api/login", Handler.login),
    ("POST", r"/api/logout", Handler.logout),
    ("GET", r"/api/me", Handler.me),
    ("GET", r"/api/problems", Handler.problem_list),
    ("GET", r"/api/scoreboard", Handler.scoreboard),
    ("POST", r"/api/submit", Handler.submit),
    ("GET", r"/api/submissions", Handler.submission_list),
    ("GET", r"/api/submissions/([0-9]+)", Handler.submission),
    ("GET", r"/api/submissions/([0-9]+)/archive", Handler.submission_archive),
    ("POST", r"/api/admin/problems", Handler.add_problem),
    ("POST", r"/api/admin/rejudge", Handler.rejudge),
]


def make_server(service, host, port):
    handler = type("ContestHandler", (Handler,), {"service": service})
    srv = ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    return srv

