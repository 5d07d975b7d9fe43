#!/usr/bin/env bash
# Mount suite: the POSIX behaviour suite (posix_check) run through a hermes
# mount and in a plain directory of the same disk; the two outputs must be
# equal line for line, and after a flush barrier the host's tree must equal
# the local one byte for byte. Then unmount, remount, and check that the
# reconciliation at mount start changes nothing.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRCDIR/tests/lib/tree.sh"
. "$SRCDIR/tests/mount/lib.sh"
tree_require_tools
mount_require
: "${POSIX_CHECK:=$BUILDDIR/tests/mount/posix_check}"
[[ -x $POSIX_CHECK ]] || fail "posix_check not built at $POSIX_CHECK"

work=$(tree_tmpdir)
LOCAL=$work/local MNT=$work/mnt DST=$work/dst PLAIN=$work/plain
mkdir -p "$LOCAL" "$MNT" "$DST" "$PLAIN/posix"
# The suite's > 4 GiB sparse file lives under ignored/: not mirrored.
printf 'ignored/\n' >"$LOCAL/.gitignore"

# The one known difference: O_TMPFILE needs FUSE's tmpfile operation
# (libfuse >= 3.17); through this mount it fails with EOPNOTSUPP, and
# programs fall back to a named temporary file.
filter() { grep -v '^o-tmpfile: '; }

step "mount"
mount_at "$LOCAL" "$MNT" "$DST"
flush "$MNT" initial
mkdir "$MNT/posix"

step "posix_check in a plain directory"
"$POSIX_CHECK" "$PLAIN/posix" >"$work/plain.out" || {
	cat "$work/plain.out"
	fail "posix_check failed in a plain directory"
}

step "posix_check through the mount"
rc=0
"$POSIX_CHECK" "$MNT/posix" >"$work/mnt.out" || rc=$?
grep '^FAIL' "$work/mnt.out" || true
((rc == 0)) || fail "posix_check failed through the mount (exit $rc)"

step "same results"
diff -u <(filter <"$work/plain.out") <(filter <"$work/mnt.out") ||
	fail "the mount behaves differently from the disk (see the diff above)"
echo "$(wc -l <"$work/mnt.out") observations equal"
[[ -e $LOCAL/posix/deep/d/d/d ]] || fail "the suite's tree is not on the backing disk"

step "the host converges"
flush "$MNT" "after the suite"
converged "$LOCAL" "$DST"
[[ ! -e $DST/posix/ignored ]] || fail "ignored/ was mirrored"

step "a second run on top (every operation again, over existing state)"
mkdir "$MNT/posix2"
"$POSIX_CHECK" "$MNT/posix2" >"$work/mnt2.out" || fail "second run failed"
rm -rf "$MNT/posix"
flush "$MNT" "after the second run and a recursive delete"
converged "$LOCAL" "$DST"

step "unmount and remount: nothing to catch up"
"$HERMES" umount "$MNT" || fail "hermes umount failed"
wait_unmounted "$MNT"
before=$(tree_view "$DST")
mount_at "$LOCAL" "$MNT" "$DST"
flush "$MNT" remount
[[ $(tree_view "$DST") == "$before" ]] || fail "the host's tree changed at remount"
grep -q '^state: idle' "$MNT/.hermes/sync" || fail ".hermes/sync: $(cat "$MNT/.hermes/sync")"
"$HERMES" umount "$MNT" || fail "hermes umount failed"

daemon_log_clean "$LOCAL"
echo "PASS: posix"
