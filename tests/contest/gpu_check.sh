#!/usr/bin/env bash
# gpu_check.sh: the sample contest's CUDA problem for real, on a host with an
# NVIDIA GPU (not part of `meson test`: the CI machines have none). Builds
# the vecadd reference (gcc) and the CUDA solution (nvcc) in a temp dir, runs
# both on each test input, checks their outputs against the expected ones and
# prints each time and the speedup. Exits non-zero at the first failure.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
P=$SRCDIR/contrib/contest/sample/vecadd
die() { echo "gpu_check: $*" >&2; exit 1; }

nvidia-smi -L || die "nvidia-smi failed: no usable NVIDIA GPU"
[[ -x $NVCC ]] || die "no nvcc at $NVCC (set NVCC)"
w=$(mktemp -d "${TMPDIR:-/tmp}/contest-gpu.XXXXXX")
trap 'rm -rf -- "$w"' EXIT
cp -r "$P/reference" "$w/ref"
cp -r "$SRCDIR/contrib/contest/sample/solutions/vecadd" "$w/cuda"
make -s -C "$w/ref" || die "the reference does not build"
PATH=$(dirname "$NVCC"):$PATH make -s -C "$w/cuda" || die "the CUDA solution does not build"

now() { date +%s%N; }
for in in "$P"/tests/*.in; do
	t=$(basename "$in" .in)
	for kind in ref cuda; do
		s=$(now)
		(cd "$w/$kind" && sh run-vecadd.sh) <"$in" >"$w/$kind.$t.out" || die "$kind failed on $t"
		e=$(now)
		cmp -s "$w/$kind.$t.out" "$P/tests/$t.out" ||
			die "$kind on $t printed $(cat "$w/$kind.$t.out"), expected $(cat "$P/tests/$t.out")"
		printf '%s\t%s\t%d us\n' "$t" "$kind" $(((e - s) / 1000)) | tee -a "$w/times"
	done
done
awk -F'\t' '{ split($3, a, " "); sum[$2] += a[1] } END {
	printf "speedup (sum of times): %.2f\n", sum["ref"] / sum["cuda"] }' "$w/times"
echo "gpu_check: the CUDA solution matches the reference on every test"
