#!/usr/bin/env bash
# End-to-end: fault injection over SSH (tests/lib/sshd.sh). The sshd sessions
# (and with them the agent), then the client, are killed in the middle of a
# 300 MiB transfer; DEST must never hold a partially written file under its
# real name, and a rerun must converge with no `.hermes-tmp.*` left.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/sshd.sh
. "$SRCDIR/tests/lib/sshd.sh"
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
tree_require_tools pgrep pkill

sshd_start

ssh_config=$(tree_tmpdir)/ssh_config
: >"$ssh_config"
export HERMES_SSH_CONFIG=$ssh_config
export HERMES_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS
HERMES_ARGS=(-p "$SSHD_PORT" -i "$SSHD_KEY")

run_fault_scenario ssh "127.0.0.1:"

echo "PASS: sync_fault_ssh"
