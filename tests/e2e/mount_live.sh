#!/usr/bin/env bash
# End-to-end: hermes mount with the embedded local agent. Edits made through
# the mount reach DEST, checked with the flush barrier (never sleeps):
# create, edit, rename, delete, chmod, symlink, a git commit and a make
# build inside the mount; then the agent is killed mid-session (the mount
# keeps serving, the mirror reconnects and converges), the mount daemon is
# killed with -9 and remounted (no edit lost), and hermes umount flushes.
set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/tree.sh
. "$SRCDIR/tests/lib/tree.sh"
tree_require_tools make cc
[[ -e /dev/fuse ]] || { echo "SKIP: no /dev/fuse"; exit 77; }
command -v fusermount3 >/dev/null || fail "fusermount3 missing (package fuse3)"

work=$(tree_tmpdir)
LOCAL=$work/local MNT=$work/mnt DST=$work/dst
mkdir -p "$LOCAL/src" "$MNT" "$DST"
printf 'int one(void) { return 1; }\n' >"$LOCAL/src/one.c"
printf 'build/\n*.o\n' >"$LOCAL/.gitignore"
cleanup_add "fusermount3 -u '$MNT' 2>/dev/null || true"

mounted() { awk -v m="$MNT" '$5 == m && / - fuse/ { f = 1 } END { exit !f }' /proc/self/mountinfo; }
flush() { timeout 60 cat "$MNT/.hermes/flush" >/dev/null || fail "flush barrier failed: $*"; }
converged() { # the host holds what the mount shows (ignored files aside)
	compare_trees "$LOCAL" "$DST" "${@}" || fail "DEST differs from LOCALDIR"
}

step "mount"
"$HERMES" mount --agent-path "$HERMES_AGENT" "$LOCAL" "$MNT" "$DST" || fail "mount failed"
mounted || fail "not mounted"
flush "initial"
converged
grep -q '^state: idle' "$MNT/.hermes/sync" || fail ".hermes/sync: $(cat "$MNT/.hermes/sync")"
[[ ! -e $LOCAL/.hermes/sync ]] || fail ".hermes/sync exists on disk"

step "edits through the mount"
printf 'int two(void) { return 2; }\n' >"$MNT/src/two.c"
printf '// edited\n' >>"$MNT/src/one.c"
mv "$MNT/src/two.c" "$MNT/src/deux.c"
chmod +x "$MNT/src/deux.c"
ln -s src/one.c "$MNT/link"
mkdir -p "$MNT/a/b/c" && printf x >"$MNT/a/b/c/f"
# atomic save by rename-over, as editors do
printf 'int one(void) { return 11; }\n' >"$MNT/src/.one.c.swp" && mv "$MNT/src/.one.c.swp" "$MNT/src/one.c"
flush "edits"
converged
rm -rf "$MNT/a"
flush "delete"
converged

step "a file held open for writing: the barrier covers what was written"
exec 4>"$MNT/held.log"
printf 'line one\n' >&4
flush "held open"
[[ $(cat "$DST/held.log") == 'line one' ]] || fail "held-open file not on the host after a flush"
printf 'line two\n' >&4
flush "held open, appended"
[[ $(cat "$DST/held.log") == $'line one\nline two' ]] || fail "append to a held-open file not on the host"
exec 4>&-
flush "closed"
converged

# Dirty tracking by byte range: writes through a handle are reported as the
# range they covered, and the mirror sends those blocks with no signature
# round trip (counters in .hermes/sync).
counter() { awk -F': ' -v k="$1" '$1 == k { print $2 }' "$MNT/.hermes/sync"; }
poke() { printf '%s' "$2" | dd of="$MNT/$1" bs=1 seek="$3" conv=notrunc status=none; }
same_file() { cmp "$LOCAL/$1" "$DST/$1" || fail "$1 differs on the host: $2"; }
step "one byte edited in the middle of a 20 MB file: the range travels, not the file"
head -c $((20 << 20)) /dev/urandom >"$MNT/big.bin"
flush "20 MB file"
same_file big.bin "after creation"
w0=$(counter 'wire bytes out') i0=$(counter 'wire bytes in')
s0=$(counter 'signature requests') r0=$(counter 'range pushes')
poke big.bin Z $((10 << 20 | 123))
flush "one byte"
same_file big.bin "after a one-byte edit"
w1=$(counter 'wire bytes out') i1=$(counter 'wire bytes in')
s1=$(counter 'signature requests') r1=$(counter 'range pushes')
echo "one-byte edit of a 20 MB file: wire bytes $((w1 - w0)) out, $((i1 - i0)) in; $((s1 - s0)) signature requests"
((w1 - w0 < 16384)) || fail "a one-byte edit cost $((w1 - w0)) wire bytes (limit 16384)"
((i1 - i0 < 4096)) || fail "a one-byte edit received $((i1 - i0)) wire bytes (a signature?)"
((s1 == s0)) || fail "a one-byte edit asked for $((s1 - s0)) signatures"
((r1 > r0)) || fail "the one-byte edit was not pushed as a range (range pushes: $r0, then $r1)"

step "byte ranges: concurrent writers, write then truncate, truncate then write, renames"
for k in 1 2 3 4; do
	(for j in $(seq 20); do poke big.bin "w$k.$j" $(((k << 20) + j * 8192)); done) &
done
wait
flush "concurrent writers"
same_file big.bin "after concurrent writers"
poke big.bin A $((15 << 20)) && truncate -s $((12 << 20)) "$MNT/big.bin"
flush "write, truncate"
same_file big.bin "after a write then a truncate"
truncate -s $((11 << 20)) "$MNT/big.bin" && poke big.bin B $((1 << 20))
poke big.bin C $((13 << 20)) # past the end: the file grows
flush "truncate, write"
same_file big.bin "after a truncate then writes"
exec 5<>"$MNT/big.bin"
printf 'head' >&5
mv "$MNT/big.bin" "$MNT/big2.bin"
printf 'more' >&5
exec 5>&-
flush "written, renamed, closed"
same_file big2.bin "written while renamed"
exec 5<>"$MNT/big2.bin"
printf 'one' >&5
flush "held open"
mv "$MNT/big2.bin" "$MNT/big3.bin"
flush "renamed"
printf 'two' >&5
exec 5>&-
flush "renamed, then closed"
same_file big3.bin "written across a rename"
for old in big.bin big2.bin; do
	[[ ! -e $DST/$old ]] || fail "$old, renamed away, is still on the host"
done
rm "$MNT/big3.bin"
flush "big file removed"
converged

step "git and make inside the mount"
(
	cd "$MNT"
	git init -q . && git add -A && git -c user.email=t@t -c user.name=t commit -qm init
	git checkout -q -b topic && printf '// topic\n' >>src/one.c && git -c user.email=t@t -c user.name=t commit -qam topic
	git checkout -q -
	printf 'build/app: src/one.c src/deux.c\n\tmkdir -p build && cc -c src/one.c -o build/one.o && cc -c src/deux.c -o build/deux.o && cc -shared -o $@ build/one.o build/deux.o\n' >Makefile
	make -s
) || fail "git or make failed inside the mount"
flush "git and make"
converged
[[ ! -e $DST/build ]] || fail "ignored build output was mirrored"

step "git clone, commit, branch switch and gc inside the mount"
upstream=$work/upstream
mkdir -p "$upstream/lib"
for i in 1 2 3 4 5; do
	printf '#include "util.h"\nint f%d(void) { return util() + %d; }\n' "$i" "$i" >"$upstream/lib/f$i.c"
done
printf 'int util(void);\n' >"$upstream/lib/util.h"
printf 'int util(void) { return 40; }\n' >"$upstream/lib/util.c"
printf '#include <stdio.h>\nint f1(void);\nint main(void) { printf("%%d\\n", f1()); return 0; }\n' >"$upstream/main.c"
printf 'OBJ = main.o lib/util.o lib/f1.o lib/f2.o lib/f3.o lib/f4.o lib/f5.o\napp: $(OBJ)\n\t$(CC) -o $@ $(OBJ)\n%%.o: %%.c lib/util.h\n\t$(CC) -c -o $@ $<\nclean:\n\trm -f app $(OBJ)\n' >"$upstream/Makefile"
printf '*.o\n/app\n' >"$upstream/.gitignore"
G=(git -c user.email=t@t -c user.name=t)
(cd "$upstream" && git init -q . && git add -A && "${G[@]}" commit -qm one &&
	printf '// two\n' >>lib/util.c && "${G[@]}" commit -qam two) || fail "making the upstream repo failed"
git clone -q "$upstream" "$MNT/clone" || fail "git clone into the mount failed"
flush "clone"
converged
(
	cd "$MNT/clone"
	printf 'int util(void) { return 41; }\n' >lib/util.c
	"${G[@]}" commit -qam three
	git checkout -q -b old HEAD~2
	[[ $(cat lib/util.c) == 'int util(void) { return 40; }' ]]
) || fail "commit or checkout inside the clone failed"
flush "commit and checkout"
converged
(
	cd "$MNT/clone"
	git checkout -q -
	git gc -q --prune=now
	git fsck --strict --no-progress
	[[ -z $(git status --porcelain) ]]
) || fail "git gc/fsck/status inside the mount failed"
flush "gc"
converged

step "make inside the mount: build, incremental rebuild, run"
(
	cd "$MNT/clone"
	make -s -j2 app
	[[ $(./app) == 42 ]] || exit 1
	# make decides by (nanosecond) mtimes: the changed source rebuilds
	printf 'int util(void) { return 0; }\n' >lib/util.c
	make -s app
	[[ $(./app) == 1 ]] || exit 1
	[[ -z $(make -q app || echo stale) ]]
) || fail "make inside the mount failed"
flush "make"
converged
[[ ! -e $DST/clone/app && ! -e $DST/clone/main.o ]] || fail "ignored build outputs were mirrored"
[[ -e $DST/clone/Makefile && ! -e $DST/clone/.git ]] || fail "the clone is not mirrored as expected"

step "the agent dies; editing goes on; the mirror reconnects"
pkill -9 -f "[h]ermes-agent --stdio --root $DST" || true
printf 'after the drop\n' >"$MNT/after.txt"
printf 'more\n' >>"$MNT/src/deux.c"
flush "after reconnect"
converged

step "the mount daemon is killed with -9, then mounted again"
printf 'written just before the kill\n' >"$MNT/last.txt"
pkill -9 -f "[h]ermes mount --agent-path $HERMES_AGENT $LOCAL" || true
for _ in $(seq 100); do mounted || break; fusermount3 -u "$MNT" 2>/dev/null || true; sleep 0.05; done
[[ $(cat "$LOCAL/last.txt") == 'written just before the kill' ]] || fail "edit lost on the local disk"
"$HERMES" mount --agent-path "$HERMES_AGENT" "$LOCAL" "$MNT" "$DST" || fail "remount failed"
flush "remount"
converged

step "hermes umount flushes"
printf 'at unmount\n' >"$MNT/final.txt"
"$HERMES" umount "$MNT" || fail "umount failed"
! mounted || fail "still mounted"

converged

echo "PASS: mount_live"
