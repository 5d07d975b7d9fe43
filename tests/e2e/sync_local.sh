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

# Files that keep their size: an in-place edit travels as a small delta, a
# touch (new mtime, same bytes) sends no content at all.
step "same-size edit and touch of a 4 MB file"
work=$(tree_tmpdir)
mkdir -p "$work/src" "$work/dst"
head -c 4194304 /dev/urandom >"$work/src/blob.bin"
hs same0 --stats "$work/src" "$work/dst"
expect_ok "same-size: first sync"
printf 'Q' | dd of="$work/src/blob.bin" bs=1 seek=2000000 conv=notrunc status=none
hs same1 --stats "$work/src" "$work/dst"
expect_ok "same-size: edit"
cmp "$work/src/blob.bin" "$work/dst/blob.bin" || fail "same-size edit: copies differ"
(($(stat_get "literal bytes") < 65536)) || fail "same-size edit: too many literal bytes"
(($(stat_get "matched bytes") > 4000000)) || fail "same-size edit: blocks were not reused"
touch -d '2001-02-03 04:05:06' "$work/src/blob.bin"
hs same2 --stats "$work/src" "$work/dst"
expect_ok "same-size: touch"
(($(stat_get "literal bytes") == 0)) || fail "touch: content was sent"
(($(stat_get "files sent") == 0)) || fail "touch: counted as sent"
[[ $(stat -c %Y "$work/dst/blob.bin") == $(stat -c %Y "$work/src/blob.bin") ]] ||
	fail "touch: mtime not mirrored"

# Edits made on the host to files the client owns: the next (incremental)
# sync notices them and puts the client's version back. A second client
# syncing the same destination makes the first one's view stale: its next
# run must notice and still converge.
step "host-side edits and a second client"
work=$(tree_tmpdir)
mkdir -p "$work/src/d" "$work/dst"
printf 'local\n' >"$work/src/d/owned.txt"
printf 'keep\n' >"$work/src/keep.txt"
hs drift0 "$work/src" "$work/dst"
expect_ok "drift: first sync"
printf 'edited on the host\n' >"$work/dst/d/owned.txt"
rm "$work/dst/keep.txt"
hs drift1 --stats "$work/src" "$work/dst"
expect_ok "drift: resync"
[[ $(cat "$work/dst/d/owned.txt") == local ]] || fail "drift: host edit not overwritten"
[[ $(cat "$work/dst/keep.txt") == keep ]] || fail "drift: host delete not restored"
(($(stat_get "files sent") == 2)) || fail "drift: expected exactly the 2 drifted files to be sent"
cp -a "$work/src" "$work/src2"
rm -rf "$work/src2/.hermes"
printf 'from the second client\n' >"$work/src2/other.txt"
hs drift2 "$work/src2" "$work/dst"
expect_ok "drift: second client"
printf 'local, edited again\n' >"$work/src/d/owned.txt"
hs drift3 "$work/src" "$work/dst"
expect_ok "drift: first client again"
compare_trees "$work/src" "$work/dst" "other.txt" || fail "drift: trees differ after two clients"

echo "PASS: sync_local"
