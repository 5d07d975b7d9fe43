"""python3 -m hermes_contest: the contest service's command line.

    init       --db DB --contest NAME
    add-team   --db DB --contest NAME TEAM   (password from $CONTEST_PASSWORD) [--admin]
    add-problem --db DB --contest NAME DIR...
    serve      --db DB --contest NAME --hermes URL [--listen HOST:PORT]
               [--port-file F] [--image IMAGE] [--workers N]
               (hermesd's token from $HERMES_TOKEN)
"""
import argparse
import os
import signal
import sys
import threading

from . import problems
from .db import Database, DbError
from .hermes import Hermes
from .judge import Judge
from .web import Service, make_server


def die(msg):
    print(f"hermes-contest: {msg}", file=sys.stderr)
    sys.exit(1)


def need_env(name):
    v = os.environ.get(name)
    if not v:
        die(f"set {name}")
    return v


def contest_id(db, name):
    c = db.contest(name)
    if c is None:
        die(f"{db.path}: no contest '{name}' (run init first)")
    return c["id"]


def serve(db, cid, a):
    host, _, port = a.listen.rpartition(":")
    hermes = Hermes(a.hermes, need_env("HERMES_TOKEN"))
    judge = Judge(db, hermes, image=a.image)
    try:
        srv = make_server(Service(db, cid, judge), host or "127.0.0.1", int(port))
    except (OSError, ValueError) as e:
        die(f"cannot listen on {a.listen}: {e}")
    judge.start(a.workers)
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(f"{srv.server_address[1]}\n")
        os.rename(a.port_file + ".tmp", a.port_file)
    print(f"hermes-contest: listening on http://{srv.server_address[0]}:{srv.server_address[1]}",
          file=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    stop.wait()
    srv.shutdown()
    judge.shutdown()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="hermes-contest")
    ap.add_argument("command", choices=["init", "add-team", "add-problem", "serve"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--db", required=True)
    ap.add_argument("--contest", required=True)
    ap.add_argument("--admin", action="store_true")
    ap.add_argument("--hermes", default="http://127.0.0.1:8420")
    ap.add_argument("--listen", default="127.0.0.1:8430")
    ap.add_argument("--port-file")
    ap.add_argument("--image")
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args(argv)
    try:
        db = Database(a.db)
    except Exception as e:  # sqlite3 raises several kinds
        die(f"{a.db}: {e}")
    try:
        if a.command == "init":
            db.add_contest(a.contest)
        elif a.command == "add-team":
            if len(a.args) != 1:
                die("add-team TEAM")
            db.add_team(contest_id(db, a.contest), a.args[0], need_env("CONTEST_PASSWORD"),
                        a.admin)
        elif a.command == "add-problem":
            cid = contest_id(db, a.contest)
            for d in a.args:
                p, tests, ref = problems.from_dir(d)
                pid = db.put_problem(cid, p, tests, ref)
                print(f"{p['name']}: problem {pid}, version {db.problem(pid)['version']}, "
                      f"{len(tests)} tests")
        else:
            serve(db, contest_id(db, a.contest), a)
    except (DbError, problems.ProblemError, OSError) as e:
        die(str(e))


if __name__ == "__main__":
    main()
