#!/usr/bin/env bash
# The contest page in headless Chromium (Debian's chromium and
# chromium-driver, driven over WebDriver by web_check.py): log in, submit a
# file through the form, see the verdict appear, open its logs, see the
# scoreboard; as admin, add a problem and rejudge through the page. A real
# hermesd and private Podman service judge it.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/lib/podman.sh"
. "$SRCDIR/tests/api/hermesd.sh"
. "$SRCDIR/tests/contest/lib.sh"
for t in curl jq python3 tar chromium chromedriver; do
	command -v $t >/dev/null || fail "$t missing (apt-get install chromium chromium-driver)"
done

W=$(tree_tmpdir)
contest_start "$W"

step "log in, submit, see the verdict and the scoreboard in Chromium"
tar -C "$SRCDIR/contrib/contest/sample/solutions/sum" -czf "$W/sum-omp.tgz" .
tar -C "$SRCDIR/contrib/contest/sample/vecadd" -czf "$W/vecadd.tgz" .
python3 "$SRCDIR/tests/contest/web_check.py" "$CS_URL/" "$W/sum-omp.tgz" "$W/vecadd.tgz" "$W" ||
	fail "web_check failed (chromedriver log: $(tail -5 "$W/chromedriver.log"))"

step "what the page showed is what the API holds"
login alpha
cs alpha GET /api/submissions
jq -e 'length == 1 and .[0].verdict == "accepted" and .[0].filename == "sum-omp.tgz"' <<<"$CS_BODY" \
	>/dev/null || fail "alpha's submissions: $CS_BODY"
cs alpha GET "/api/submissions/$(jq -r '.[0].id' <<<"$CS_BODY")"
jq -e '[.judgings[].verdict] == ["accepted", "accepted"]' <<<"$CS_BODY" >/dev/null ||
	fail "alpha's submission was not rejudged: $CS_BODY"
cs alpha GET /api/problems
jq -e 'map(.name) == ["sum", "vecadd"]' <<<"$CS_BODY" >/dev/null || fail "problems: $CS_BODY"
kill -TERM "$CS_PID"
wait "$CS_PID" || fail "the contest service exited $? on SIGTERM"
contest_log_clean
echo "contest_web: all passed"
