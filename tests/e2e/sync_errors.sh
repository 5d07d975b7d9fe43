#!/usr/bin/env bash
# End-to-end: error cases of `hermes sync` over the local transport. Each must
# fail with a non-zero status and one clear `hermes: ...` line that names the
# path or program involved.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
tree_require_tools

work=$(tree_tmpdir)
src=$work/src
mkdir -p "$src/sub"
printf 'hello\n' >"$src/a.txt"
printf 'world\n' >"$src/sub/b.txt"

# ------------------------------------------------------------------------
step "missing agent binary"
mkdir -p "$work/dst-noagent"
HS_AGENT=/nonexistent/hermes-agent hs noagent "$src" "$work/dst-noagent"
expect_fail "missing agent"
expect_err "missing agent" -F hermes-agent
expect_err "missing agent (how to install it)" -i install
[[ -z $(ls -A "$work/dst-noagent") ]] || fail "missing agent: something was written to DEST"

# ------------------------------------------------------------------------
step "missing LOCALDIR"
mkdir -p "$work/dst-nolocal"
hs nolocal "$work/no-such-dir" "$work/dst-nolocal"
expect_fail "missing LOCALDIR"
expect_err "missing LOCALDIR" -F "$work/no-such-dir"

# ------------------------------------------------------------------------
step "DEST is an existing regular file"
printf 'not a directory\n' >"$work/dest-file"
hs destfile "$src" "$work/dest-file"
expect_fail "DEST is a file"
expect_err "DEST is a file" -F "$work/dest-file"
[[ $(cat "$work/dest-file") == 'not a directory' ]] || fail "DEST is a file: the file was changed"

# ------------------------------------------------------------------------
step "permission denied on the remote root"
if (($(id -u) != 0)); then
	echo "SKIP (this case only): needs root to run the agent as nobody"
elif ! command -v setpriv >/dev/null; then
	echo "SKIP (this case only): setpriv (util-linux) not installed"
else
	# A root-owned 0755 parent holding a root-owned 0755 DEST; the agent runs
	# as nobody, so it can read its way there but write nothing.
	pd=$work/perm
	mkdir -p "$pd/root-owned/dest" "$pd/bin"
	chmod 0755 "$TREE_TMP" "$work" "$pd" "$pd/root-owned" "$pd/root-owned/dest" "$pd/bin"
	# nobody must be able to run the agent even if the build dir is private
	cp "$HERMES_AGENT" "$pd/bin/hermes-agent"
	chmod 0755 "$pd/bin/hermes-agent"
	cat >"$pd/bin/agent-as-nobody" <<WRAP
#!/bin/sh
exec setpriv --reuid=65534 --regid=65534 --clear-groups "$pd/bin/hermes-agent" "\$@"
WRAP
	chmod 0755 "$pd/bin/agent-as-nobody"
	setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$pd/bin/hermes-agent" ||
		fail "test setup: nobody cannot run $pd/bin/hermes-agent"
	dest=$pd/root-owned/dest
	HS_AGENT=$pd/bin/agent-as-nobody hs perm "$src" "$dest"
	expect_fail "permission denied"
	expect_err "permission denied" -F 'Permission denied'
	expect_err "permission denied (names the path)" -F "$dest"
	[[ -z $(ls -A "$dest") ]] || fail "permission denied: something was written to DEST"
fi

# ------------------------------------------------------------------------
step "disk full on the remote"
full=$work/full
mkdir -p "$full"
if ! mount -t tmpfs -o size=2m tmpfs "$full" 2>"$work/mount.err"; then
	echo "SKIP (this case only): cannot mount a tmpfs: $(cat "$work/mount.err")"
else
	cleanup_add "umount $(printf '%q' "$full") 2>/dev/null || umount -l $(printf '%q' "$full") 2>/dev/null"
	fsrc=$work/fullsrc
	mkdir -p "$fsrc/d"
	printf 'small one\n' >"$fsrc/a-small.txt"
	printf 'small two\n' >"$fsrc/d/small.txt"
	_tree_bytes 77 $((5 * 1024 * 1024)) >"$fsrc/big.bin"
	printf 'small three\n' >"$fsrc/z-small.txt"
	mkdir -p "$full/dest"
	hs full "$fsrc" "$full/dest"
	expect_fail "disk full"
	expect_err "disk full" -F 'No space left'
	assert_no_tmp "$full/dest" || fail "disk full: temp files left behind"
	assert_no_partial "$fsrc" "$full/dest" || fail "disk full: partially written file"
	if [[ -e $full/dest/big.bin ]]; then
		cmp -s "$fsrc/big.bin" "$full/dest/big.bin" || fail "disk full: big.bin is incomplete"
	fi
	# A later sync after space is freed up still works on the same mount.
	rm "$fsrc/big.bin"
	hs full-after "$fsrc" "$full/dest"
	expect_ok "sync after disk full, without the big file"
	compare_trees "$fsrc" "$full/dest" || fail "sync after disk full: trees differ"
	assert_no_tmp "$full/dest" || fail "sync after disk full: temp files left"
fi

echo "PASS: sync_errors"
