#!/usr/bin/env bash
# End-to-end: fault injection over the local transport. The agent, then the
# client, is killed with SIGKILL in the middle of a 300 MiB transfer; DEST must
# never hold a partially written file under its real name, and a rerun must
# converge with no `.hermes-tmp.*` left.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
tree_require_tools pgrep pkill

run_fault_scenario local ""

echo "PASS: sync_fault_local"
