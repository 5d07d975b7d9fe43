# shellcheck shell=bash
# tests/lib/tree.sh: helpers for the end-to-end sync tests.
#
# Source it from a bash script that runs with `set -euo pipefail`:
#
#   gen_tree DIR              deterministic test tree (~300 entries, see below)
#   mutate_tree DIR           a fixed set of edits of every kind on a gen_tree tree
#   expected_view DIR         canonical listing of what a mirror of DIR must hold
#   tree_view DIR             the same listing of everything in DIR (no ignore rules)
#   compare_trees SRC DST [ALLOWED...]
#                             the mirror DST holds exactly expected_view SRC, plus
#                             only paths under ALLOWED (remote-only files made on
#                             purpose); prints a unified diff and returns 1 otherwise
#   assert_no_tmp DST         no `.hermes-tmp.*` anywhere under DST
#   assert_no_partial SRC DST [SHA256...]
#                             every file of DST is identical to the same file in SRC
#                             (or has one of the given older contents)
#   hs NAME ARGS...           run `hermes sync` (see below), output kept in files;
#                             then expect_ok / expect_fail / expect_err / stat_get
#   run_sync_scenario PREFIX  the shared sync scenario (local and ssh tests)
#   run_fault_scenario MODE PREFIX
#                             kill the agent, then the client, mid-transfer
#                             (sync_fault_local / sync_fault_ssh)
#   tree_tmpdir               a temp dir, removed on exit
#
# Listing format (one line per entry, sorted by path, `.hermes` at the root and
# every `.git` left out, the root itself left out):
#   PATH<TAB>f MODE SIZE MTIME SHA256     regular file (MTIME in whole seconds)
#   PATH<TAB>d MODE                       directory
#   PATH<TAB>l -> TARGET                  symbolic link (never followed)
# Set TREE_VIEW_MTIME=0 to leave the mtime out.
#
# Ignore rules are computed by git itself (check-ignore against a throwaway
# repository whose work tree is DIR): nested .gitignore files with negations
# as git has them, plus DIR/.hermesignore read as a root-level ignore file.
# (Only a root .hermesignore is modelled; gen_tree makes no nested one.)

if [[ -n ${_TREE_SH_LOADED:-} ]]; then
	return 0
fi
_TREE_SH_LOADED=1

export LC_ALL=C

: "${SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${BUILDDIR:=$SRCDIR/build}"
: "${HERMES:=$BUILDDIR/hermes}"
: "${HERMES_AGENT:=$BUILDDIR/hermes-agent}"
: "${HERMES_TIMEOUT:=180}" # seconds for one hermes run
: "${TREE_VIEW_MTIME:=1}"
export SRCDIR BUILDDIR HERMES HERMES_AGENT

# A key or socket from the caller's environment must not make an auth test pass.
unset SSH_AUTH_SOCK

# ---------------------------------------------------------------- cleanup ---
# tests/lib/sshd.sh provides cleanup_add too; when it was sourced first, its
# version (and its EXIT trap) is used and this one is not defined.
if ! declare -F cleanup_add >/dev/null; then
	_TREE_CLEANUP=()
	cleanup_add() { _TREE_CLEANUP+=("$*"); }
	_tree_cleanup_run() {
		local i
		for ((i = ${#_TREE_CLEANUP[@]} - 1; i >= 0; i--)); do
			eval "${_TREE_CLEANUP[i]}" || true
		done
		_TREE_CLEANUP=()
	}
	trap _tree_cleanup_run EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
fi

# All temp dirs live in TREE_TMP, removed on exit. (Registered here, in the
# sourcing shell: tree_tmpdir runs in $(...) subshells, where cleanup_add
# would not reach the parent.)
TREE_TMP=$(mktemp -d "${TMPDIR:-/tmp}/hermes-test.XXXXXXXX")
cleanup_add "rm -rf -- $(printf '%q' "$TREE_TMP")"

# tree_tmpdir: print a new temp dir (under TREE_TMP).
tree_tmpdir() {
	mktemp -d "$TREE_TMP/tmp.XXXXXX"
}

TREE_LOG=$(tree_tmpdir)

fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

step() {
	printf '\n=== %s\n' "$*"
}

tree_require_tools() {
	local t missing=()
	for t in git openssl sha256sum find timeout cmp diff awk truncate "$@"; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	((${#missing[@]} == 0)) || fail "missing tools: ${missing[*]}"
	[[ -x $HERMES ]] || fail "hermes binary not found at $HERMES (set HERMES)"
	[[ -x $HERMES_AGENT ]] || fail "hermes-agent binary not found at $HERMES_AGENT (set HERMES_AGENT)"
}

# ----------------------------------------------------------- random bytes ---
# _tree_bytes SEED SIZE: SIZE pseudo-random bytes, the same for the same SEED
# (AES-128-CTR keystream).
_tree_bytes() {
	local seed=$1 size=$2
	((size > 0)) || return 0
	head -c "$size" /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$seed")" \
			-iv 00000000000000000000000000000000
}

# _tree_text SEED SIZE: SIZE bytes of base64 text in 76-column lines.
_tree_text() {
	local seed=$1 size=$2
	((size > 0)) || return 0
	(
		set +o pipefail
		_tree_bytes "$seed" $((size * 3 / 4 + 64)) 2>/dev/null | base64 -w 76 | head -c "$size"
	)
}

# 31-bit LCG, so the tree does not depend on bash's $RANDOM.
_TREE_RNG=1
_tree_srand() { _TREE_RNG=$(($1 & 0x7fffffff)); }
# _tree_rand N: REPLY = pseudo-random integer in [0, N)
_tree_rand() {
	_TREE_RNG=$(((_TREE_RNG * 1103515245 + 12345) & 0x7fffffff))
	REPLY=$(((_TREE_RNG >> 7) % $1))
}

# Fixed mtimes: everything gen_tree makes gets TREE_T0, everything mutate_tree
# changes gets TREE_T1 (so a same-size edit is never hidden by a same-second
# mtime).
TREE_T0=1700000000
TREE_T1=1700086400

# Inside gen_tree, file contents are slices of two pools (8 MiB of random
# bytes, 8 MiB of base64 text) made once, so that a file costs one process.
_TREE_POOL_BIN=""
_TREE_POOL_TXT=""
_TREE_POOL_SIZE=$((8 * 1024 * 1024))
declare -gA _TREE_MKD=()

# _tree_file PATH KIND SIZE SEED [MODE]: KIND is bin or text; MODE is given to
# chmod (default: none, i.e. 0666 & ~umask).
_tree_file() {
	local p=$1 kind=$2 size=$3 seed=$4 mode=${5:-} dir pool off
	dir=.
	[[ $p == */* ]] && dir=${p%/*}
	if [[ -z ${_TREE_MKD[$dir]:-} ]]; then
		mkdir -p -- "$dir"
		_TREE_MKD[$dir]=1
	fi
	pool=$_TREE_POOL_BIN
	[[ $kind == text ]] && pool=$_TREE_POOL_TXT
	if [[ -n $pool ]] && ((size <= _TREE_POOL_SIZE)); then
		off=$(((seed * 2654435761) % (_TREE_POOL_SIZE - size + 1)))
		dd if="$pool" of="$p" bs=65536 skip="$off" count="$size" \
			iflag=skip_bytes,count_bytes status=none
	elif [[ $kind == text ]]; then
		_tree_text "$seed" "$size" >"$p"
	else
		_tree_bytes "$seed" "$size" >"$p"
	fi
	if [[ -n $mode ]]; then
		chmod "$mode" -- "$p"
	fi
}

# Paths gen_tree makes that a sync must not send (before mutate_tree).
TREE_IGNORED=(
	.git
	build
	notes.swp
	docs/.readme.txt.swp
	scratch
	data/run.tmpout
	src/gen/x.log
	src/gen/sub/y.log
	src/gen/cache
	src/gen/obj.o
)
# Paths mutate_tree makes ignored although they were sent before: whether the
# remote keeps or removes them is not specified, so tests allow both.
TREE_NEWLY_IGNORED=(src/gen/old.dat)

# gen_tree DIR: make the test tree in DIR (created; must not exist or be empty).
gen_tree() {
	local d=$1 i n depth p kind size ext
	mkdir -p -- "$d"
	d=$(cd -- "$d" && pwd)
	(
		set -e
		cd -- "$d"
		umask 022
		_TREE_MKD=()
		_TREE_POOL_BIN=$(mktemp "$TREE_TMP/pool.XXXXXX") _TREE_POOL_TXT=$(mktemp "$TREE_TMP/pool.XXXXXX")
		trap 'rm -f -- "$_TREE_POOL_BIN" "$_TREE_POOL_TXT"' EXIT
		_tree_bytes 1 "$_TREE_POOL_SIZE" >"$_TREE_POOL_BIN"
		_tree_text 2 "$_TREE_POOL_SIZE" >"$_TREE_POOL_TXT"
		local execs=()
		_tree_srand 20240611

		# --- pseudo-random part: 260 files, up to 4 directory levels -------
		local tops=(src lib docs data) l2=(a b c) l3=(x y) l4=(p q)
		local exts=(c h txt bin sh json)
		for ((i = 0; i < 260; i++)); do
			_tree_rand 4; p=${tops[REPLY]}
			_tree_rand 4; depth=$((REPLY + 1))
			if ((depth >= 2)); then _tree_rand 3; p+=/${l2[REPLY]}; fi
			if ((depth >= 3)); then _tree_rand 2; p+=/${l3[REPLY]}; fi
			if ((depth >= 4)); then _tree_rand 2; p+=/${l4[REPLY]}; fi
			_tree_rand 6; ext=${exts[REPLY]}
			p+=/f$i.$ext
			_tree_rand 100; n=$REPLY
			if ((n < 4)); then size=0
			elif ((n < 10)); then _tree_rand 100; size=$((REPLY + 1))
			elif ((n < 60)); then _tree_rand 4000; size=$((REPLY + 100))
			elif ((n < 86)); then _tree_rand 61440; size=$((REPLY + 4096))
			elif ((n < 98)); then _tree_rand 196608; size=$((REPLY + 65536))
			else _tree_rand 1572864; size=$((REPLY + 524288))
			fi
			kind=bin
			[[ $ext == bin ]] || kind=text
			_tree_rand 10
			if [[ $ext == sh ]] || ((REPLY == 0)); then execs+=("$p"); fi
			_tree_file "$p" "$kind" "$size" $((1000 + i))
		done

		# --- fixed part: sizes on block boundaries --------------------------
		_tree_file data/exact/zero.bin bin 0 2000
		_tree_file data/exact/one.bin bin 1 2001
		_tree_file data/exact/512.bin bin 512 2002
		_tree_file data/exact/1536.bin bin 1536 2003
		_tree_file data/exact/4096.bin bin 4096 2004
		_tree_file data/exact/8192.bin bin 8192 2005
		_tree_file data/exact/65536.bin bin 65536 2006
		_tree_file data/exact/4095.bin bin 4095 2007
		_tree_file data/exact/4097.bin bin 4097 2008
		_tree_file data/big-2m.bin bin 2097152 2009 # 2 MiB: edited in the middle
		_tree_file data/one-meg.txt text 1048576 2010 # 1 MiB of lines: one-line edit
		_tree_file data/trunc-me.bin bin 300000 2011

		# --- files mutate_tree works on -------------------------------------
		_tree_file README.md text 900 2100
		_tree_file Makefile text 300 2101
		_tree_file docs/readme.txt text 5000 2102
		_tree_file docs/delete-me.txt text 700 2103
		_tree_file docs/touch-me.txt text 1200 2104
		_tree_file src/a/rename-me.c text 3000 2105
		_tree_file src/a/make-exec.sh text 200 2106
		_tree_file bin/was-exec bin 5000 2107 755
		_tree_file bin/run.sh text 400 2108 755
		_tree_file lib/olddir/one.c text 1500 2109
		_tree_file lib/olddir/sub/two.h text 800 2110
		_tree_file data/doomed/a.bin bin 9000 2111
		_tree_file data/doomed/b/c.bin bin 70000 2112
		_tree_file data/doomed/b/d/e.txt text 100 2113
		mkdir -p data/doomed/empty-inside
		_tree_file data/file-becomes-dir bin 3000 2114
		_tree_file data/dir-becomes-file/x.txt text 100 2115
		_tree_file data/dir-becomes-file/y/z.txt text 200 2116

		# --- names that need quoting ----------------------------------------
		_tree_file "docs/file with spaces.txt" text 333 2200
		_tree_file "docs/dir with space/inner file.txt" text 444 2201
		_tree_file "docs/ünïcødé-файл-文件.txt" text 555 2202

		# --- empty directories ----------------------------------------------
		mkdir -p empty deep/a/b/c src/a/empty-leaf

		# --- symbolic links (relative; kept as links, never followed) ------
		_tree_file src/gen/main.c text 2500 2300
		ln -s src/gen/main.c link-to-file
		ln -s ../README.md docs/link-up
		ln -s docs docs-link
		ln -s no/such/target data/dangling
		ln -s ../../../lib/olddir/one.c src/a/x/link-deep

		# --- ignore rules -----------------------------------------------------
		printf '%s\n' '/build/' '*.swp' >.gitignore
		printf '%s\n' '# generated files' '*.log' '!keep.log' 'cache/' '*.o' \
			>src/gen/.gitignore
		_tree_file src/gen/keep.log text 300 2400        # re-included by !keep.log
		_tree_file src/gen/sub/keep.log text 310 2401    # likewise, one level down
		_tree_file src/gen/sub/util.c text 1300 2402
		_tree_file src/gen/old.dat bin 640 2403          # mutate_tree ignores it
		_tree_file src/gen/x.log text 320 2404           # ignored; mutate_tree re-includes it
		_tree_file src/gen/sub/y.log text 330 2405       # ignored
		_tree_file src/gen/cache/blob.bin bin 20000 2406 # ignored (dir pattern)
		_tree_file src/gen/cache/deeper/z.txt text 50 2407
		_tree_file src/gen/obj.o bin 4000 2408           # ignored
		_tree_file build/out.bin bin 30000 2409          # ignored (/build/)
		_tree_file build/obj/main.o bin 3000 2410
		_tree_file notes.swp bin 100 2411                # ignored (*.swp)
		_tree_file docs/.readme.txt.swp bin 100 2412
		printf '%s\n' 'scratch/' '*.tmpout' >.hermesignore
		_tree_file scratch/tmp1.txt text 100 2413        # ignored (.hermesignore)
		_tree_file data/run.tmpout text 100 2414

		# --- a version-control directory (skipped unless --include-vcs) ------
		mkdir -p .git/refs/heads
		printf 'ref: refs/heads/main\n' >.git/HEAD
		_tree_file .git/refs/heads/main text 41 2500

		chmod 755 -- "${execs[@]}"
		find . -exec touch -h -d "@$TREE_T0" {} +
	)
}

# mutate_tree DIR: one change of every kind on a tree made by gen_tree.
mutate_tree() {
	local d=$1
	(
		set -e
		cd -- "$d"
		_TREE_MKD=()
		# edit in the middle of a big file (same size)
		_tree_bytes 3000 100 | dd of=data/big-2m.bin bs=1 seek=1000000 conv=notrunc status=none
		# append
		printf 'appended line\n' >>docs/readme.txt
		# truncate
		truncate -s 100000 data/trunc-me.bin
		# rename a file, rename a directory
		mv src/a/rename-me.c src/a/renamed.c
		mv lib/olddir lib/newdir
		# delete a file, delete a directory tree
		rm docs/delete-me.txt
		rm -r data/doomed
		# exec bit on and off
		chmod +x src/a/make-exec.sh
		chmod -x bin/was-exec
		# new symlink; retarget a symlink
		ln -s ../docs/readme.txt src/new-link
		ln -sfn docs/readme.txt link-to-file
		# a file becomes a directory, a directory becomes a file
		rm data/file-becomes-dir
		_tree_file data/file-becomes-dir/inner.txt text 150 3001
		rm -r data/dir-becomes-file
		_tree_file data/dir-becomes-file text 250 3002
		# new files
		_tree_file src/a/brand-new.c text 2000 3003
		mkdir -p data/new-empty-dir
		# .gitignore change: x.log now included, old.dat now ignored
		printf '%s\n' '!x.log' 'old.dat' >>src/gen/.gitignore

		touch -h -d "@$TREE_T1" data/big-2m.bin docs/readme.txt data/trunc-me.bin \
			src/new-link link-to-file data/file-becomes-dir/inner.txt \
			data/dir-becomes-file src/a/brand-new.c src/gen/.gitignore
		# touch without content change
		touch -d "@$TREE_T1" docs/touch-me.txt
	)
}

# ------------------------------------------------------------------ views ---
# tree_view DIR: listing of every entry of DIR (see the header).
tree_view() {
	local d=$1
	(
		set -e
		cd -- "$d"
		local y m s t l p line
		local -A sums=()
		# one sha256sum for all the files ("HASH  NAME\0" with -z)
		while IFS= read -r -d '' line; do
			sums[${line:66}]=${line:0:64}
		done < <(find . -mindepth 1 \( -path ./.hermes -o -name .git \) -prune -o \
			-type f -printf '%P\0' | xargs -0 -r sha256sum -z --)
		find . -mindepth 1 \( -path ./.hermes -o -name .git \) -prune -o \
			-printf '%y\037%m\037%s\037%T@\037%l\037%P\0' |
			while IFS=$'\037' read -r -d '' y m s t l p; do
				case $y in
				f)
					if [[ $TREE_VIEW_MTIME == 1 ]]; then
						printf '%s\tf %s %s %s %s\n' "$p" "$m" "$s" "${t%%.*}" "${sums[$p]-?}"
					else
						printf '%s\tf %s %s %s\n' "$p" "$m" "$s" "${sums[$p]-?}"
					fi
					;;
				d) printf '%s\td %s\n' "$p" "$m" ;;
				l) printf '%s\tl -> %s\n' "$p" "$l" ;;
				*) printf '%s\t%s (special file)\n' "$p" "$y" ;;
				esac
			done
	) | sort
}

# tree_ignored DIR: the paths (one a line, sorted) of DIR that a sync must not
# send, by git's rules. `.git` and the root `.hermes` are not listed.
tree_ignored() {
	local d=$1 g rc=0 excl=/dev/null
	g=$(mktemp -d "$TREE_TMP/gitdir.XXXXXX")
	git init -q "$g"
	[[ -f $d/.hermesignore ]] && excl=$(cd -- "$d" && pwd)/.hermesignore
	(
		cd -- "$d" || exit 2
		find . -mindepth 1 \( -path ./.hermes -o -name .git \) -prune -o -printf '%P\0' |
			GIT_CONFIG_NOSYSTEM=1 HOME=$g git --git-dir="$g/.git" --work-tree=. \
				-c core.excludesFile="$excl" check-ignore --no-index --stdin -z
	) >"$g/out" || rc=$?
	# check-ignore: 0 = some ignored, 1 = none ignored, else an error
	if ((rc > 1)); then
		rm -rf -- "$g"
		printf 'tree_ignored %s: git check-ignore failed (%d)\n' "$d" "$rc" >&2
		return 1
	fi
	tr '\0' '\n' <"$g/out" | sort
	rm -rf -- "$g"
}

# expected_view DIR: the listing a mirror of DIR must hold (ignored paths left out).
expected_view() {
	local d=$1 ign all
	ign=$(mktemp "$TREE_TMP/ign.XXXXXX") all=$(mktemp "$TREE_TMP/all.XXXXXX")
	if ! tree_ignored "$d" >"$ign" || ! tree_view "$d" >"$all"; then
		rm -f -- "$ign" "$all"
		return 1
	fi
	awk -F'\t' 'NR == FNR { ign[$0] = 1; next } !($1 in ign)' "$ign" "$all"
	rm -f -- "$ign" "$all"
}

# compare_trees SRC DST [ALLOWED...]: see the header. An ALLOWED path allows
# itself and everything below it to exist on DST only (content not checked).
compare_trees() {
	local src=$1 dst=$2
	shift 2
	local w rc=0 p a ok
	w=$(mktemp -d "$TREE_TMP/cmp.XXXXXX")
	if ! expected_view "$src" >"$w/expected"; then
		rm -rf -- "$w"
		echo "compare_trees: cannot list $src" >&2
		return 1
	fi
	if ! tree_view "$dst" >"$w/remote"; then
		rm -rf -- "$w"
		echo "compare_trees: cannot list $dst" >&2
		return 1
	fi
	awk -F'\t' -v same="$w/same" -v extra="$w/extra" '
		NR == FNR { want[$1] = 1; next }
		($1 in want) { print > same; next }
		{ print > extra }' "$w/expected" "$w/remote"
	touch "$w/same" "$w/extra"
	if ! diff -u --label "expected (from $src)" --label "remote ($dst)" \
		"$w/expected" "$w/same"; then
		rc=1
	fi
	while IFS= read -r p; do
		p=${p%%$'\t'*}
		ok=0
		for a in "$@"; do
			a=${a%/}
			if [[ $p == "$a" || $p == "$a"/* ]]; then
				ok=1
				break
			fi
		done
		if ((ok == 0)); then
			printf 'unexpected on remote (%s): %s\n' "$dst" "$p"
			rc=1
		fi
	done <"$w/extra"
	rm -rf -- "$w"
	return "$rc"
}

# assert_no_tmp DST: fails (returns 1) if a `.hermes-tmp.*` exists under DST.
assert_no_tmp() {
	local dst=$1 found
	found=$(find "$dst" -name '.hermes-tmp.*' -print 2>/dev/null | head -n 20)
	if [[ -n $found ]]; then
		printf 'temp files left in %s:\n%s\n' "$dst" "$found"
		return 1
	fi
	return 0
}

# assert_no_partial SRC DST [SHA256...]: every regular file under DST (outside
# .hermes) that is a regular file in SRC too must be identical to it or have
# one of the given sha256 sums (older versions that may legitimately remain).
assert_no_partial() {
	local src=$1 dst=$2
	shift 2
	local p sum ok a rc=0
	while IFS= read -r -d '' p; do
		[[ -f $src/$p && ! -L $src/$p ]] || continue
		cmp -s -- "$src/$p" "$dst/$p" && continue
		ok=0
		if (($# > 0)); then
			sum=$(sha256sum <"$dst/$p")
			sum=${sum%% *}
			for a in "$@"; do
				[[ $sum == "$a" ]] && ok=1
			done
		fi
		if ((ok == 0)); then
			printf 'partially written or wrong file under its real name: %s (%s bytes on %s, %s bytes in %s)\n' \
				"$p" "$(stat -c %s -- "$dst/$p")" "$dst" "$(stat -c %s -- "$src/$p")" "$src"
			rc=1
		fi
	done < <(cd -- "$dst" && find . -path ./.hermes -prune -o -type f -printf '%P\0')
	return "$rc"
}

# ----------------------------------------------------------- hermes runs ---
# HERMES_ARGS: options put before every `hs` command's own (e.g. -p/-i for ssh).
# HS_AGENT: the --agent-path given (default $HERMES_AGENT; empty: none given).
HERMES_ARGS=()

# hs NAME ARGS...: run `hermes sync HERMES_ARGS --agent-path HS_AGENT ARGS...`.
# Sets HS_RC (exit status), HS_OUT and HS_ERR (files with stdout and stderr)
# and echoes both. Never fails itself.
hs() {
	local name=$1
	shift
	local agent=() t0 t1
	local ap=${HS_AGENT-$HERMES_AGENT}
	[[ -n $ap ]] && agent=(--agent-path "$ap")
	HS_OUT=$TREE_LOG/$name.out
	HS_ERR=$TREE_LOG/$name.err
	printf '+ hermes sync %s\n' "${HERMES_ARGS[*]} ${agent[*]} $*"
	HS_RC=0
	t0=${EPOCHREALTIME/./}
	timeout -k 10 "$HERMES_TIMEOUT" "$HERMES" sync "${HERMES_ARGS[@]}" "${agent[@]}" "$@" \
		</dev/null >"$HS_OUT" 2>"$HS_ERR" || HS_RC=$?
	t1=${EPOCHREALTIME/./}
	sed 's/^/  out| /' "$HS_OUT"
	sed 's/^/  err| /' "$HS_ERR"
	printf '  -> exit %d in %d ms\n' "$HS_RC" $(((t1 - t0) / 1000))
	if ((HS_RC == 124 || HS_RC == 137)); then
		printf '  (hermes did not finish within %s s)\n' "$HERMES_TIMEOUT"
	fi
}

# expect_ok WHAT: the last hs run succeeded.
expect_ok() {
	((HS_RC == 0)) || fail "$1: hermes exited with status $HS_RC"
}

# expect_fail WHAT: the last hs run failed cleanly: status 1..123 (not a
# timeout, not a crash by signal) and a `hermes: <message>` line on stderr
# (the message on the same line).
expect_fail() {
	((HS_RC != 0)) || fail "$1: hermes succeeded but should have failed"
	((HS_RC < 124)) || fail "$1: hermes failed with status $HS_RC (timeout or killed by a signal) instead of a clean error"
	grep -q '^hermes: *[^ ]' "$HS_ERR" || fail "$1: no 'hermes: <message>' error line on stderr"
}

# expect_err WHAT [grep options] PATTERN: stderr of the last run matches.
expect_err() {
	local what=$1
	shift
	grep -q "$@" "$HS_ERR" || fail "$what: stderr does not match: grep $*"
}

# stat_get KEY [FILE]: the number after "KEY: " in the --stats output.
stat_get() {
	local key=$1 f=${2:-$HS_OUT} v
	v=$(sed -n "s/^$key: *\([0-9][0-9]*\) *\$/\1/p" "$f" | tail -n 1)
	[[ -n $v ]] || fail "no '$key: N' line in the --stats output ($f)"
	printf '%s\n' "$v"
}

# ------------------------------------------------------- shared scenario ---
# run_sync_scenario PREFIX: the sync scenario against DEST = PREFIX + a fresh
# local directory (PREFIX "" or "local:" for the local transport,
# "127.0.0.1:" for ssh with HERMES_ARGS set by the caller).
run_sync_scenario() {
	local prefix=$1
	local work src dst dest p v before after
	work=$(tree_tmpdir)
	src=$work/src dst=$work/dst
	dest=$prefix$dst
	mkdir -p -- "$dst"

	step "generate the tree"
	gen_tree "$src"
	printf 'tree: %s entries, %s bytes\n' "$(find "$src" | wc -l)" "$(du -sb "$src" | cut -f1)"

	step "initial sync"
	hs initial --stats "$src" "$dest"
	expect_ok "initial sync"
	v=$(stat_get "files scanned")
	((v > 250)) || fail "initial sync: files scanned is $v, expected > 250"
	v=$(stat_get "files sent")
	((v > 250)) || fail "initial sync: files sent is $v, expected > 250"
	compare_trees "$src" "$dst" || fail "initial sync: trees differ"
	assert_no_tmp "$dst" || fail "initial sync: temp files left"
	for p in "${TREE_IGNORED[@]}"; do
		if [[ -e $dst/$p || -L $dst/$p ]]; then
			fail "initial sync: ignored path was sent: $p"
		fi
	done
	[[ -e $src/.git/HEAD && -d $src/src/gen/cache ]] || fail "gen_tree did not make the ignored files"

	step "resync without changes"
	hs nochange --stats "$src" "$dest"
	expect_ok "resync without changes"
	v=$(stat_get "files sent")
	((v == 0)) || fail "resync without changes: files sent is $v, expected 0"
	v=$(stat_get "files deleted")
	((v == 0)) || fail "resync without changes: files deleted is $v, expected 0"
	v=$(stat_get "bytes sent")
	((v < 4096)) || fail "resync without changes: bytes sent is $v, expected < 4096"
	compare_trees "$src" "$dst" || fail "resync without changes: trees differ"

	step "remote-only build outputs, then mutate the tree and resync"
	mkdir -p "$dst/build" "$dst/out-remote" "$dst/src/gen"
	printf 'remote build output\n' >"$dst/build/remote-artifact.bin"
	printf 'remote only\n' >"$dst/out-remote/result.txt"
	printf 'generated on the remote\n' >"$dst/src/gen/generated.o"
	printf 'remote only, top level\n' >"$dst/remote-only.txt"
	local outputs=(build/remote-artifact.bin out-remote/result.txt src/gen/generated.o remote-only.txt)
	local allow=(build out-remote src/gen/generated.o remote-only.txt)
	local out_sums=()
	for p in "${outputs[@]}"; do out_sums+=("$(sha256sum <"$dst/$p")"); done
	mutate_tree "$src"
	hs mutated --stats "$src" "$dest"
	expect_ok "sync after mutate_tree"
	v=$(stat_get "files deleted")
	((v >= 1)) || fail "sync after mutate_tree: files deleted is $v, expected >= 1"
	compare_trees "$src" "$dst" "${allow[@]}" "${TREE_NEWLY_IGNORED[@]}" ||
		fail "sync after mutate_tree: trees differ"
	assert_no_tmp "$dst" || fail "sync after mutate_tree: temp files left"
	local i=0
	for p in "${outputs[@]}"; do
		[[ -f $dst/$p ]] || fail "remote-only file was removed: $p"
		[[ $(sha256sum <"$dst/$p") == "${out_sums[i]}" ]] || fail "remote-only file was changed: $p"
		i=$((i + 1))
	done
	[[ -f $dst/src/gen/x.log ]] || fail "x.log was re-included by .gitignore but not sent"

	step "--dry-run changes nothing on the remote"
	printf 'dry-run edit\n' >>"$src/docs/readme.txt"
	_tree_file "$src/docs/dry-new.txt" text 500 4000
	rm -- "$src/data/trunc-me.bin"
	before=$(tree_view "$dst")
	hs dryrun --dry-run --stats "$src" "$dest"
	expect_ok "--dry-run"
	after=$(tree_view "$dst")
	if [[ $before != "$after" ]]; then
		diff -u <(printf '%s\n' "$before") <(printf '%s\n' "$after") || true
		fail "--dry-run changed the remote"
	fi
	assert_no_tmp "$dst" || fail "--dry-run: temp files left"

	step "--include-vcs sends .git"
	hs vcs --include-vcs --stats "$src" "$dest"
	expect_ok "--include-vcs"
	[[ -f $dst/.git/HEAD ]] || fail "--include-vcs: .git/HEAD did not arrive"
	cmp -s "$src/.git/HEAD" "$dst/.git/HEAD" || fail "--include-vcs: .git/HEAD differs"
	cmp -s "$src/.git/refs/heads/main" "$dst/.git/refs/heads/main" ||
		fail "--include-vcs: .git/refs/heads/main differs"
	compare_trees "$src" "$dst" "${allow[@]}" "${TREE_NEWLY_IGNORED[@]}" ||
		fail "--include-vcs (and the changes the dry run did not apply): trees differ"

	step "one-line edit of a 1 MiB file is sent as a delta"
	sed -i '7000s/.*/this line was edited by the test/' "$src/data/one-meg.txt"
	hs delta --stats "$src" "$dest"
	expect_ok "sync after a one-line edit"
	v=$(stat_get "files sent")
	((v == 1)) || fail "one-line edit: files sent is $v, expected 1"
	v=$(stat_get "literal bytes")
	((v < 65536)) || fail "one-line edit: literal bytes is $v, expected < 65536"
	v=$(stat_get "matched bytes")
	((v > 0)) || fail "one-line edit: matched bytes is $v, expected > 0"
	compare_trees "$src" "$dst" "${allow[@]}" "${TREE_NEWLY_IGNORED[@]}" ||
		fail "one-line edit: trees differ"
	assert_no_tmp "$dst" || fail "one-line edit: temp files left"

	step "LOCALDIR that does not exist"
	hs nolocal "$work/no-such-dir" "$dest"
	expect_fail "missing LOCALDIR"
	expect_err "missing LOCALDIR" -F "$work/no-such-dir"
}

# ---------------------------------------------------------- fault scenario ---
# _agent_pids DST: pids of hermes-agent processes serving DST (their command
# line has `--root DST`); those whose name is hermes-agent first.
_agent_pids() {
	local pat="hermes-agent.*--root $1" p comm named=() other=()
	for p in $(pgrep -f -- "$pat" || true); do
		comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
		if [[ $comm == hermes-agent* ]]; then named+=("$p"); else other+=("$p"); fi
	done
	printf '%s\n' "${named[@]}" "${other[@]}" | sed '/^$/d'
}

# _now_ms: milliseconds since the epoch
_now_ms() {
	local t=${EPOCHREALTIME/./}
	printf '%s\n' $((t / 1000))
}

# _agent_wchar DST: bytes written so far (/proc/PID/io wchar) by all the
# agent processes for DST; empty if none could be read.
_agent_wchar() {
	local p w sum=""
	for p in $(_agent_pids "$1"); do
		w=$(awk '/^wchar:/ { print $2 }' "/proc/$p/io" 2>/dev/null) || continue
		[[ -n $w ]] && sum=$((${sum:-0} + w))
	done
	printf '%s\n' "$sum"
}

# _wait_agent_writing DST CLIENT_PID: wait (bounded) until an agent for DST
# runs and has written at least 1 MiB (/proc/PID/io wchar; where that cannot
# be read, 0.3 s after the agent appeared). Returns 1 if the client exited
# first or nothing happened in time.
_wait_agent_writing() {
	local dst=$1 cpid=$2 pid="" t0 seen w
	t0=$(_now_ms)
	while [[ -z $pid ]]; do
		kill -0 "$cpid" 2>/dev/null || { echo "  hermes exited before an agent for $dst appeared"; return 1; }
		(($(_now_ms) - t0 < 30000)) || { echo "  no hermes-agent with '--root $dst' appeared within 30 s"; return 1; }
		pid=$(_agent_pids "$dst" | head -n 1)
		[[ -n $pid ]] || sleep 0.02
	done
	seen=$(_now_ms)
	echo "  agent pid $pid appeared after $((seen - t0)) ms"
	while :; do
		kill -0 "$cpid" 2>/dev/null || { echo "  hermes exited before the fault could be injected"; return 1; }
		w=$(_agent_wchar "$dst")
		if [[ -n $w ]]; then
			if ((w >= 1048576)); then
				echo "  agent has written $w bytes after $(($(_now_ms) - seen)) ms"
				return 0
			fi
		elif (($(_now_ms) - seen >= 300)); then
			echo "  agent running for 0.3 s (its /proc io is not readable)"
			return 0
		fi
		if (($(_now_ms) - seen >= 30000)); then
			echo "  agent wrote less than 1 MiB in 30 s; injecting the fault anyway"
			return 0
		fi
		sleep 0.01
	done
}

# _wait_pid_exit PID SECONDS: wait for a child of this shell; sets WAIT_RC.
# Returns 1 (after killing it) if it is still running after SECONDS.
_wait_pid_exit() {
	local pid=$1 t0
	t0=$(_now_ms)
	while kill -0 "$pid" 2>/dev/null; do
		if (($(_now_ms) - t0 >= $2 * 1000)); then
			kill -9 "$pid" 2>/dev/null || true
			WAIT_RC=0
			wait "$pid" 2>/dev/null || WAIT_RC=$?
			return 1
		fi
		sleep 0.05
	done
	WAIT_RC=0
	wait "$pid" 2>/dev/null || WAIT_RC=$?
	return 0
}

# _wait_agents_gone DST SECONDS: true once no agent for DST is left.
_wait_agents_gone() {
	local t0
	t0=$(_now_ms)
	while [[ -n $(_agent_pids "$1") ]]; do
		(($(_now_ms) - t0 < $2 * 1000)) || return 1
		sleep 0.05
	done
}

# _kill_agent MODE DST: local: kill -9 the agent; ssh: drop the sshd sessions.
_kill_agent() {
	if [[ $1 == ssh ]]; then
		if declare -F sshd_kill_sessions >/dev/null; then
			sshd_kill_sessions
			return
		fi
		echo "  (sshd_kill_sessions not provided by sshd.sh; killing the agent instead)"
	fi
	pkill -9 -f -- "hermes-agent.*--root $2" || true
}

# run_fault_scenario MODE PREFIX: kill the agent (MODE local: kill -9 it;
# ssh: kill the sshd sessions) and then the client in the middle of a 300 MiB
# transfer; each time the interrupted sync must fail, DEST must hold no
# partially written file under its real name, and a rerun must complete.
run_fault_scenario() {
	local mode=$1 prefix=$2
	local work src dst dest pid old_sum big_mib=${TREE_FAULT_MIB:-300}
	work=$(tree_tmpdir)
	src=$work/src dst=$work/dst
	dest=$prefix$dst
	mkdir -p "$dst" "$src/a" "$src/z"

	step "make a tree with a $big_mib MiB random file"
	local i
	for ((i = 0; i < 20; i++)); do
		_tree_file "$src/a/small-$i.txt" text $((100 + i * 37)) $((5000 + i))
		_tree_file "$src/z/small-$i.txt" text $((200 + i * 41)) $((5100 + i))
	done
	_tree_bytes 5999 $((big_mib * 1024 * 1024)) >"$src/m-big.bin"
	ls -l "$src/m-big.bin"

	# ---- phase 1: the agent dies mid-transfer --------------------------------
	step "kill the agent mid-transfer ($mode)"
	echo "+ hermes sync ${HERMES_ARGS[*]} --agent-path $HERMES_AGENT $src $dest &"
	"$HERMES" sync "${HERMES_ARGS[@]}" --agent-path "$HERMES_AGENT" "$src" "$dest" \
		</dev/null >"$TREE_LOG/fault1.out" 2>"$TREE_LOG/fault1.err" &
	pid=$!
	if ! _wait_agent_writing "$dst" "$pid"; then
		_wait_pid_exit "$pid" 5 || true
		sed 's/^/  err| /' "$TREE_LOG/fault1.err"
		fail "agent kill: could not inject the fault (hermes exit status $WAIT_RC)"
	fi
	_kill_agent "$mode" "$dst"
	_wait_pid_exit "$pid" 60 || fail "agent kill: hermes still running 60 s after the agent was killed"
	sed 's/^/  err| /' "$TREE_LOG/fault1.err"
	echo "  -> exit $WAIT_RC"
	((WAIT_RC != 0)) || fail "agent kill: hermes exited 0 although its agent was killed"
	((WAIT_RC < 124)) || fail "agent kill: hermes died with status $WAIT_RC instead of reporting the error"
	grep -q '^hermes: *[^ ]' "$TREE_LOG/fault1.err" || fail "agent kill: no 'hermes: <message>' error line"
	_wait_agents_gone "$dst" 20 || fail "agent kill: an agent for $dst is still running 20 s later"
	assert_no_partial "$src" "$dst" || fail "agent kill: partially written file in DEST"

	step "rerun after the agent was killed"
	hs fault1-rerun --stats "$src" "$dest"
	expect_ok "rerun after the agent was killed"
	compare_trees "$src" "$dst" || fail "rerun after the agent was killed: trees differ"
	assert_no_tmp "$dst" || fail "rerun after the agent was killed: temp files left"

	# ---- phase 2: the client dies mid-transfer -------------------------------
	step "kill the client mid-transfer ($mode)"
	old_sum=$(sha256sum <"$src/m-big.bin")
	old_sum=${old_sum%% *}
	_tree_bytes 6999 $((big_mib * 1024 * 1024)) >"$src/m-big.bin"
	printf 'changed\n' >>"$src/a/small-3.txt"
	printf 'new\n' >"$src/z/new-file.txt"
	echo "+ hermes sync ${HERMES_ARGS[*]} --agent-path $HERMES_AGENT $src $dest &"
	"$HERMES" sync "${HERMES_ARGS[@]}" --agent-path "$HERMES_AGENT" "$src" "$dest" \
		</dev/null >"$TREE_LOG/fault2.out" 2>"$TREE_LOG/fault2.err" &
	pid=$!
	if ! _wait_agent_writing "$dst" "$pid"; then
		_wait_pid_exit "$pid" 5 || true
		sed 's/^/  err| /' "$TREE_LOG/fault2.err"
		fail "client kill: could not inject the fault (hermes exit status $WAIT_RC)"
	fi
	# (stderr off: no "Killed" job notice from bash)
	{
		kill -9 "$pid"
		_wait_pid_exit "$pid" 10 || true
	} 2>/dev/null
	echo "  -> hermes killed (status $WAIT_RC)"
	_wait_agents_gone "$dst" 20 || fail "client kill: an agent for $dst is still running 20 s after its client was killed"
	# m-big.bin may still hold the old version, never a mix.
	assert_no_partial "$src" "$dst" "$old_sum" || fail "client kill: partially written file in DEST"

	step "rerun after the client was killed"
	hs fault2-rerun --stats "$src" "$dest"
	expect_ok "rerun after the client was killed"
	compare_trees "$src" "$dst" || fail "rerun after the client was killed: trees differ"
	assert_no_tmp "$dst" || fail "rerun after the client was killed: temp files left"
}
