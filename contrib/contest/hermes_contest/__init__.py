"""hermes_contest: a submission platform for a parallel-programming contest.

Teams submit an archive (source, Makefile, run-PROBLEM.sh) for a problem; the
judge runs it through hermesd's HTTP API (compile, run each input N times
under the time limit, GPU given exclusively when the problem needs one),
compares the outputs here, outside the job, and scores an accepted run as
reference time / run time. Modules: db (SQLite), archive (safe archive
reading and job archives), hermes (hermesd client), judge (verdicts and the
worker threads), web (HTTP server and JSON API), problems (problem folders).
"""
