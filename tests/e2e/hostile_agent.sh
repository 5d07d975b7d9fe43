#!/usr/bin/env bash
# End-to-end: hermes sync against a hostile agent (tests/unit/fake_agent.c).
# Each lie must end the sync with a non-zero status and one clear line, never
# a crash, and leave the local tree exactly as it was.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
tree_require_tools
FAKE=${FAKE_AGENT:-$BUILDDIR/tests/fake_agent}
[[ -x $FAKE ]] || fail "no fake agent at $FAKE"

work=$(tree_tmpdir)
mkdir -p "$work/src" "$work/dst"
head -c 5000 /dev/urandom >"$work/src/big.bin"
printf 'hello\n' >"$work/src/a.txt"
before=$(cd "$work/src" && find . -path ./.hermes -prune -o -type f -print0 | sort -z | xargs -0 sha256sum)

for mode in traversal nul badsig garbage oversize; do
	step "hostile agent: $mode"
	HOSTILE_MODE=$mode HS_AGENT=$FAKE hs "$mode" "$work/src" "$work/dst"
	expect_fail "$mode"
	((HS_RC < 128)) || fail "$mode: hermes died of a signal (status $HS_RC)"
	expect_err "$mode" -E 'protocol error|malformed|bad signature|bad entry'
	[[ $(grep -c '^hermes:' "$HS_ERR") == 1 ]] || fail "$mode: expected exactly one error line"
	after=$(cd "$work/src" && find . -path ./.hermes -prune -o -type f -print0 | sort -z | xargs -0 sha256sum)
	[[ $before == "$after" ]] || fail "$mode: the local tree changed"
	[[ ! -e $work/escape && ! -e $work/../escape ]] || fail "$mode: something was created outside"
done

echo "PASS: hostile_agent"
