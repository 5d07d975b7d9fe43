#!/usr/bin/env bash
# gpu_check.sh RUN_JOB: the CUDA example for real, on a host with an NVIDIA
# GPU (not part of `meson test`: the CI machines have none).
#   1. vector_add built with the host's nvcc and run on the host;
#   2. the same as a job through job.h: rootfs / (the host's toolkit), the
#      GPU given as CDI device nvidia.com/gpu=all from the host's CDI spec
#      (made with nvidia-ctk when missing and the tool is there).
# Prints each step's output; exits non-zero at the first step that fails.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/podman.sh
. "$SRCDIR/tests/lib/podman.sh"
RUN_JOB=$1
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}

step() { printf '\n=== %s\n' "$*"; }
step "host"
nvidia-smi -L || { echo "gpu_check: nvidia-smi failed: no usable NVIDIA GPU"; exit 1; }
[[ -x $NVCC ]] || { echo "gpu_check: no nvcc at $NVCC (set NVCC)"; exit 1; }

ws=$(mktemp -d "${TMPDIR:-/tmp}/hermes-gpu.XXXXXX")
cleanup_add "rm -rf -- '$ws'"
cp "$SRCDIR"/contrib/cuda-example/{Makefile,vector_add.cu} "$ws/"

step "vector_add on the host"
make -C "$ws" NVCC="$NVCC"
"$ws/vector_add"

step "vector_add as a job (Podman, CDI)"
if ! ls /etc/cdi/*.yaml /etc/cdi/*.json /var/run/cdi/* >/dev/null 2>&1; then
	command -v nvidia-ctk >/dev/null ||
		{ echo "gpu_check: no CDI spec and no nvidia-ctk to make one"; exit 1; }
	mkdir -p /var/run/cdi
	nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml
fi
PODMAN_HOST_CDI=1 podman_start
make -C "$ws" clean
printf 'rootfs = /\ngpus = all\nuser = image\nmemory = 16G\n' >"$ws/hermes.conf"
"$RUN_JOB" "$PODMAN_SOCK" "$ws" "make NVCC=$NVCC && ./vector_add"
