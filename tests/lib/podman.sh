# shellcheck shell=bash
# tests/lib/podman.sh: a private Podman service for a test (bash; source it).
#
#   . "$SRCDIR/tests/lib/podman.sh"
#   podman_start               # service up, test image built, fake CDI in place
#   curl --unix-socket "$PODMAN_SOCK" http://d/v4.0.0/libpod/_ping
#   podman_cli ps -a           # the podman CLI on the same private storage
#
# podman_start exports:
#   PODMAN_DIR        temp dir holding everything (removed by podman_stop)
#   PODMAN_SOCK       the REST API's unix socket
#   PODMAN_IMAGE      localhost/hermes-test:busybox (static busybox with all
#                     applets, /etc/passwd with root and hermes 1000:1000)
#   PODMAN_CDI_DIR    a CDI spec dir naming nvidia.com/gpu=0 whose only edits
#                     are a device node /dev/null and env HERMES_FAKE_GPU=0;
#                     give it to job_check_gpus as HERMES_CDI_DIR. With
#                     PODMAN_HOST_CDI=1 set before podman_start (a real GPU
#                     host): empty, and the service reads the host's CDI specs
#   CONTAINERS_CONF, CONTAINERS_STORAGE_CONF  the private configuration:
#                     runtime runc, cgroupfs, low default ulimits (Podman's
#                     defaults fail without CAP_SYS_RESOURCE), overlay storage
#                     in PODMAN_DIR
#
# Podman 4.3 reads CDI specs only from /etc/cdi and /var/run/cdi (no
# cdi_spec_dirs), so the service runs in its own mount namespace where both
# are PODMAN_CDI_DIR: the host's dirs are neither read nor changed (they are
# made, empty, when missing, to serve as mount points). Needs
# root, podman, runc, busybox-static and unshare.
#
# podman_stop             stops the service, removes every container and PODMAN_DIR
# cleanup_add CMD...      runs CMD on exit (shared with tree.sh / sshd.sh)

if [[ -n "${_HERMES_PODMAN_SH:-}" ]]; then
	return 0
fi
_HERMES_PODMAN_SH=1

if ! declare -F cleanup_add >/dev/null; then
	_PODMAN_CLEANUP=()
	cleanup_add() { _PODMAN_CLEANUP+=("$*"); }
	_podman_cleanup_run() {
		local rc=$? i
		for ((i = ${#_PODMAN_CLEANUP[@]} - 1; i >= 0; i--)); do
			eval "${_PODMAN_CLEANUP[i]}" || true
		done
		_PODMAN_CLEANUP=()
		return "$rc"
	}
	trap _podman_cleanup_run EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
fi

PODMAN_IMAGE=localhost/hermes-test:busybox

podman_cli() {
	podman "$@"
}

_podman_fail() {
	echo "podman.sh: $*" >&2
	if [[ -n "${PODMAN_DIR:-}" && -s $PODMAN_DIR/service.log ]]; then
		echo "podman.sh: --- $PODMAN_DIR/service.log (tail) ---" >&2
		tail -n 20 "$PODMAN_DIR/service.log" >&2
	fi
	return 1
}

_podman_write_conf() {
	local d=$1
	cat >"$d/containers.conf" <<-EOF
		[containers]
		default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
		[engine]
		runtime = "runc"
		cgroup_manager = "cgroupfs"
		events_logger = "file"
		events_logfile_path = "$d/events.log"
		tmp_dir = "$d/tmp"
	EOF
	cat >"$d/storage.conf" <<-EOF
		[storage]
		driver = "overlay"
		graphroot = "$d/graph"
		runroot = "$d/run"
	EOF
	mkdir -p "$d/tmp"
}

_podman_write_cdi() {
	mkdir -p "$1"
	cat >"$1/hermes-fake-gpu.json" <<-'EOF'
		{
		  "cdiVersion": "0.3.0",
		  "kind": "nvidia.com/gpu",
		  "devices": [
		    {
		      "name": "0",
		      "containerEdits": {
		        "deviceNodes": [{"path": "/dev/null"}],
		        "env": ["HERMES_FAKE_GPU=0"]
		      }
		    }
		  ],
		  "containerEdits": {}
		}
	EOF
}

_podman_build_image() {
	local root=$PODMAN_DIR/image-root bb
	bb=$(command -v busybox) || { _podman_fail "busybox missing (package busybox-static)"; return 1; }
	mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/workspace"
	cp "$bb" "$root/bin/busybox"
	"$root/bin/busybox" --install -s "$root/bin" 2>/dev/null || true
	# --install links to the running binary's path; point every applet at /bin/busybox
	find "$root/bin" -type l -exec ln -sf busybox {} \;
	[[ -e $root/bin/sh ]] || ln -s busybox "$root/bin/sh"
	printf 'root:x:0:0:root:/root:/bin/sh\nhermes:x:1000:1000:hermes:/tmp:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\nhermes:x:1000:\n' >"$root/etc/group"
	chmod 1777 "$root/tmp"
	tar -C "$root" -cf - . | podman import -q - "$PODMAN_IMAGE" >/dev/null ||
		{ _podman_fail "podman import of $PODMAN_IMAGE failed"; return 1; }
	rm -rf "$root"
}

podman_start() {
	[[ $(id -u) == 0 ]] || { _podman_fail "needs root (a private mount namespace for CDI)"; return 1; }
	local t
	for t in podman runc unshare curl; do
		command -v "$t" >/dev/null || { _podman_fail "$t missing"; return 1; }
	done
	PODMAN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hermes-podman.XXXXXX")
	PODMAN_SOCK=$PODMAN_DIR/podman.sock
	PODMAN_CDI_DIR=$PODMAN_DIR/cdi
	export PODMAN_DIR PODMAN_SOCK PODMAN_CDI_DIR PODMAN_IMAGE
	export CONTAINERS_CONF=$PODMAN_DIR/containers.conf
	export CONTAINERS_STORAGE_CONF=$PODMAN_DIR/storage.conf
	cleanup_add podman_stop
	_podman_write_conf "$PODMAN_DIR"
	_podman_build_image || return 1
	# cwd PODMAN_DIR: conmon (Podman 4.3) writes its "oom" marker file into
	# the service's working directory
	if [[ ${PODMAN_HOST_CDI:-} == 1 ]]; then
		PODMAN_CDI_DIR=
		(cd "$PODMAN_DIR" && exec podman system service --time=0 "unix://$PODMAN_SOCK") \
			>"$PODMAN_DIR/service.log" 2>&1 &
	else
		_podman_write_cdi "$PODMAN_CDI_DIR"
		# mount points; left in place (empty) as other tests may use them now
		mkdir -p /etc/cdi /var/run/cdi
		# shellcheck disable=SC2016
		(cd "$PODMAN_DIR" && exec unshare --mount --propagation private sh -c '
			mount --bind "$1" /etc/cdi && mount --bind "$1" /var/run/cdi &&
			exec podman system service --time=0 "unix://$2"' \
			sh "$PODMAN_CDI_DIR" "$PODMAN_SOCK") >"$PODMAN_DIR/service.log" 2>&1 &
	fi
	PODMAN_PID=$!
	local i
	for ((i = 0; i < 300; i++)); do
		if [[ -S $PODMAN_SOCK ]] &&
			curl -sf --unix-socket "$PODMAN_SOCK" http://d/v4.0.0/libpod/_ping >/dev/null; then
			return 0
		fi
		kill -0 "$PODMAN_PID" 2>/dev/null || { _podman_fail "podman system service exited"; return 1; }
		sleep 0.1
	done
	_podman_fail "podman system service did not answer on $PODMAN_SOCK within 30 s"
}

podman_stop() {
	[[ -n "${PODMAN_DIR:-}" ]] || return 0
	if [[ -n "${PODMAN_PID:-}" ]]; then
		# every container of this service, killed and removed through its API
		local api=http://d/v4.0.0/libpod id
		for id in $(curl -s --unix-socket "$PODMAN_SOCK" "$api/containers/json?all=true" |
			grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4); do
			curl -s --unix-socket "$PODMAN_SOCK" -X DELETE \
				"$api/containers/$id?force=true&t=0" >/dev/null || true
		done
		kill "$PODMAN_PID" 2>/dev/null || true
		wait "$PODMAN_PID" 2>/dev/null || true
		PODMAN_PID=
	fi
	# storage mounts left in this namespace (PODMAN_HOST_CDI mode), deepest first
	awk -v d="$PODMAN_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts |
		sort -r | while read -r m; do umount -l "$m" || true; done
	rm -rf -- "$PODMAN_DIR"
	PODMAN_DIR=
}
