#!/usr/bin/env bash
# build-offline.sh [IMAGE]: build the CUDA build image without a container
# registry (default name localhost/hermes-cuda:latest, the default image of
# hermes.conf(5)).
#
# debootstrap makes a minimal Debian 12 root with gcc, g++ and make from the
# Debian archive (MIRROR, default http://deb.debian.org/debian), then
# `podman import` turns it into an image. The CUDA toolkit is not copied in:
# jobs mount the host's /usr/local/cuda read-only (as
# contrib/cuda-example/hermes.conf does), so the image never has to match the
# host's toolkit or driver. Runs as root; uses the Podman storage that
# CONTAINERS_CONF / CONTAINERS_STORAGE_CONF select (the system's by default).
# About 1.5 min and 500 MB.
set -euo pipefail

IMAGE=${1:-localhost/hermes-cuda:latest}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}

die() { echo "build-offline.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (debootstrap needs it)"
for tool in debootstrap podman tar; do
	command -v "$tool" >/dev/null || die "$tool missing (apt-get install $tool)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hermes-cuda-image.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
root=$work/root

echo "build-offline.sh: debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include=gcc,g++,make,libc6-dev,passwd \
	"$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
	{ tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# A non-root user for jobs (user = 1000:1000 or auto in hermes.conf), the
# workspace mount point, and no package caches in the image.
chroot "$root" useradd --uid 1000 --user-group --create-home --shell /bin/sh hermes
mkdir -p "$root/workspace" "$root/usr/local/cuda"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

echo "build-offline.sh: podman import $IMAGE"
tar -C "$root" -c . | podman import -q \
	--change 'ENV PATH=/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'WORKDIR /workspace' \
	--change 'CMD ["/bin/sh"]' \
	- "$IMAGE" >/dev/null
podman image exists "$IMAGE" || die "podman import did not make $IMAGE"
echo "build-offline.sh: $IMAGE ready"
