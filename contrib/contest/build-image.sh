#!/usr/bin/env bash
# build-image.sh [--cuda] [IMAGE]: the judge image of the contest service,
# made offline from this host's own Debian packages (no registry, no
# download): gcc, make, OpenMP (libgomp), coreutils (timeout, date), sh.
# Default name localhost/hermes-contest:cc.
#
# --cuda adds g++ and the parts of the host's CUDA toolkit that nvcc needs to
# compile and link a program (CUDA_HOME, default /usr/local/cuda: bin, nvvm,
# include, the static runtime), default name localhost/hermes-contest:cuda.
# The driver is not in the image: a GPU job gets it through CDI.
#
# Every file of the packages and of their dependencies (dpkg -L, docs left
# out) is copied as-is into the image, so what compiles on the host compiles
# in a job. Runs as root; uses the Podman storage that CONTAINERS_CONF /
# CONTAINERS_STORAGE_CONF select.
set -euo pipefail

PACKAGES="gcc gcc-12 cpp make coreutils dash grep sed diffutils libgomp1 libc6-dev"
IMAGE=localhost/hermes-contest:cc
extra_paths=()
if [[ ${1:-} == --cuda ]]; then
	shift
	IMAGE=localhost/hermes-contest:cuda
	PACKAGES="$PACKAGES g++ g++-12 libstdc++-12-dev"
	cuda=${CUDA_HOME:-/usr/local/cuda}
	extra_paths=("$cuda/bin" "$cuda/nvvm" "$cuda/include" "$cuda/lib64" "$cuda/targets")
	# lib64 is a link to lib in NVIDIA's layout: name the files by the real
	# directory, under the same top path as the rest
	libdir=$cuda/lib64
	[[ -L $libdir ]] && libdir=$cuda/$(readlink "$libdir")
	for a in libcudart_static.a libcudadevrt.a libculibos.a; do
		extra_paths+=("$libdir/$a")
	done
fi
IMAGE=${1:-$IMAGE}
# Sanitizer and profiler runtimes: large and never needed to judge.
SKIP='^(dpkg|libasan[0-9]*|liblsan[0-9]*|libtsan[0-9]*|libubsan[0-9]*|libhwasan[0-9]*|libgprofng[0-9]*)$'

die() { echo "build-image.sh: $*" >&2; exit 1; }
for tool in apt-cache dpkg podman tar; do
	command -v "$tool" >/dev/null || die "$tool missing"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hermes-contest-image.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

# shellcheck disable=SC2086
apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances $PACKAGES 2>/dev/null |
	grep -v '^ ' | grep -v '<' | sed 's/:.*//' | sort -u | grep -Ev "$SKIP" >"$work/packages" ||
	die "apt-cache depends failed for: $PACKAGES"
while read -r p; do
	dpkg -L "$p" 2>/dev/null || dpkg -L "$p:amd64" 2>/dev/null ||
		die "package $p is not installed (apt-get install $p)"
done <"$work/packages" |
	grep -Ev '^/usr/share/(doc|man|info|locale|lintian|bug)(/|$)' |
	# merged /usr: /bin, /lib... are links; name every file by its /usr path
	sed -E 's#^/(bin|sbin|lib|lib64)(/|$)#/usr/\1\2#' | sed 's#^/##' | grep -v '^$' |
	sort -u >"$work/files"
for d in "${extra_paths[@]}"; do
	[[ -e $d ]] || die "$d missing (CUDA_HOME names the toolkit)"
done

mkdir -p "$work/root/tmp" "$work/root/workspace" "$work/root/etc"
chmod 1777 "$work/root/tmp"
for l in bin sbin lib lib64; do ln -s "usr/$l" "$work/root/$l"; done
printf 'root:x:0:0:root:/root:/bin/sh\njudge:x:1000:1000:judge:/tmp:/bin/sh\n' >"$work/root/etc/passwd"
printf 'root:x:0:\njudge:x:1000:\n' >"$work/root/etc/group"
# dpkg may list paths a diversion moved away: keep what exists
while read -r f; do
	[[ -e /$f || -L /$f ]] && printf '%s\n' "$f"
done <"$work/files" | grep -Evx 'etc|tmp|workspace|bin|sbin|lib|lib64' >"$work/present"
extra=()
((${#extra_paths[@]} == 0)) || extra=(--recursion "${extra_paths[@]#/}")

# One archive: the skeleton, the packages' entries as they are (a listed
# directory without its contents), then the CUDA paths whole.
tar -cf - -C "$work/root" bin sbin lib lib64 tmp workspace etc \
	--no-recursion -C / -T "$work/present" "${extra[@]}" |
	podman import -q --change 'ENV PATH=/usr/local/cuda/bin:/usr/local/bin:/usr/bin:/bin' \
		--change 'WORKDIR /workspace' - "$IMAGE" >/dev/null ||
	die "tar | podman import $IMAGE failed"
echo "build-image.sh: $IMAGE ready ($(wc -l <"$work/present") files from $(wc -l <"$work/packages") packages${extra_paths[*]:+, and ${extra_paths[*]}})"
