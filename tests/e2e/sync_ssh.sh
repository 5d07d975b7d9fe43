#!/usr/bin/env bash
# End-to-end: the sync scenario over SSH to a private sshd on 127.0.0.1
# (tests/lib/sshd.sh). The agent is this build's hermes-agent, named with
# --agent-path (same machine).
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# sshd.sh first: its cleanup_add/EXIT trap is the one tree.sh then uses.
# shellcheck source=tests/lib/sshd.sh
. "$SRCDIR/tests/lib/sshd.sh"
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
tree_require_tools

sshd_start

# Only the harness's key, port and known_hosts; no user ssh config.
ssh_config=$(tree_tmpdir)/ssh_config
: >"$ssh_config"
export HERMES_SSH_CONFIG=$ssh_config
export HERMES_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS
HERMES_ARGS=(-p "$SSHD_PORT" -i "$SSHD_KEY")

run_sync_scenario "127.0.0.1:"

# Port, user, key and known_hosts from an ssh client config (host alias).
step "host alias from HERMES_SSH_CONFIG"
work=$(tree_tmpdir)
mkdir -p "$work/dst"
gen_tree "$work/src"
HERMES_ARGS=()
HERMES_SSH_CONFIG=$SSHD_SSH_CONFIG hs alias --stats "$work/src" "hermes-test:$work/dst"
expect_ok "sync to a host alias from HERMES_SSH_CONFIG"
compare_trees "$work/src" "$work/dst" || fail "host alias: trees differ"
assert_no_tmp "$work/dst" || fail "host alias: temp files left"

echo "PASS: sync_ssh"
