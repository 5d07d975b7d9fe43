"""problems: read a problem folder (or the same folder as an archive).

    problem.json   {"name": "sum", "title": "...", "time_limit_s": 2,
                    "repeats": 3, "gpus": 0, "image": null, "checker": null}
    statement.md   the statement shown to teams
    tests/NAME.in, tests/NAME.out   inputs and expected outputs (sorted by NAME)
    reference/     the sequential reference, laid out as a submission:
                   Makefile, run-NAME.sh, sources

name: [a-z0-9_-]+; time_limit_s: seconds per run; repeats: runs per test
(median taken); gpus: GPUs given to the job exclusively; image: hermesd
image of its jobs (the service's default otherwise); checker: a command run
on the service host as `CHECKER INPUT OUTPUT EXPECTED` (exit 0 = accepted)
instead of the exact comparison. Errors raise ProblemError naming the file.
"""
import json
import os
import re

from . import archive


class ProblemError(Exception):
    pass


KEYS = {"name", "title", "time_limit_s", "repeats", "gpus", "image", "checker"}


def _meta(raw, where):
    try:
        p = json.loads(raw)
    except ValueError as e:
        raise ProblemError(f"{where}: not valid JSON: {e}") from None
    if not isinstance(p, dict):
        raise ProblemError(f"{where}: expected a JSON object")
    unknown = set(p) - KEYS
    if unknown:
        raise ProblemError(f"{where}: unknown keys {sorted(unknown)}")
    if not isinstance(p.get("name"), str) or not re.fullmatch(r"[a-z0-9_-]+", p["name"]):
        raise ProblemError(f"{where}: 'name' must match [a-z0-9_-]+")
    p.setdefault("title", p["name"])
    p.setdefault("repeats", 3)
    p.setdefault("gpus", 0)
    tl = p.get("time_limit_s")
    if not isinstance(tl, (int, float)) or not 0 < tl <= 3600:
        raise ProblemError(f"{where}: 'time_limit_s' must be a number of seconds in (0, 3600]")
    for k, hi in (("repeats", 99), ("gpus", 8)):
        if not isinstance(p[k], int) or not (k == "gpus" or p[k] >= 1) or p[k] > hi or p[k] < 0:
            raise ProblemError(f"{where}: '{k}' must be an integer up to {hi}")
    for k in ("image", "checker"):
        if p.get(k) is not None and not (isinstance(p[k], str) and p[k]):
            raise ProblemError(f"{where}: '{k}' must be a non-empty string or null")
    return p


def from_files(files, where):
    """(problem dict, tests [(name, input, expected)], reference tar.gz) from
    the files of a problem folder ({relative path: bytes})."""
    if "problem.json" not in files:
        raise ProblemError(f"{where}: no problem.json")
    p = _meta(files["problem.json"], f"{where}/problem.json")
    p["statement"] = files.get("statement.md", b"").decode(errors="replace")
    tests = []
    for n in sorted(files):
        m = re.fullmatch(r"tests/([^/]+)\.in", n)
        if m:
            exp = files.get(f"tests/{m.group(1)}.out")
            if exp is None:
                raise ProblemError(f"{where}: {n} has no tests/{m.group(1)}.out")
            tests.append((m.group(1), files[n], exp))
    if not tests:
        raise ProblemError(f"{where}: no tests/*.in")
    ref = {n[len("reference/"):]: d for n, d in files.items() if n.startswith("reference/")}
    run = f"run-{p['name']}.sh"
    if "Makefile" not in ref or run not in ref:
        raise ProblemError(f"{where}: reference/ needs a Makefile and {run}")
    return p, tests, archive.pack(ref)


def from_dir(path):
    files = {}
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for n in names:
            full = os.path.join(root, n)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                raise ProblemError(f"{full}: links are not accepted in a problem folder")
            with open(full, "rb") as f:
                files[rel] = f.read()
    return from_files(files, path)
