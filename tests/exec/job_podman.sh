#!/usr/bin/env bash
# Runs a test program against a private Podman service (tests/lib/podman.sh):
#   job_podman.sh PROGRAM [ARGS...]
# PROGRAM gets PODMAN_SOCK, PODMAN_IMAGE and PODMAN_CDI_DIR in its environment.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/podman.sh
. "$SRCDIR/tests/lib/podman.sh"
podman_start
"$@"
