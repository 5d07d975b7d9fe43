#!/usr/bin/env bash
# End-to-end: the sync scenario over the local transport (hermes spawns
# hermes-agent itself, no SSH). Needs HERMES, HERMES_AGENT, SRCDIR (set by
# meson test; defaults: ./build).
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
tree_require_tools

# DEST as a plain absolute path
run_sync_scenario ""

# DEST as local:/path
step "local:/path destination"
work=$(tree_tmpdir)
mkdir -p "$work/dst"
gen_tree "$work/src"
hs localprefix --stats "$work/src" "local:$work/dst"
expect_ok "local:/path"
compare_trees "$work/src" "$work/dst" || fail "local:/path: trees differ"
assert_no_tmp "$work/dst" || fail "local:/path: temp files left"

echo "PASS: sync_local"
