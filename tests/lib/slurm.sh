# shellcheck shell=bash
# tests/lib/slurm.sh: a private single-node Slurm for a test (bash; source it).
#
#   . "$SRCDIR/tests/lib/slurm.sh"
#   slurm_start            munged, slurmctld and slurmd, all private to a temp
#                          dir, this host as the only node (2 CPUs, one "gpu"
#                          GRES without device file); waits until it is idle
#   sbatch --wrap true     Slurm clients then reach it through SLURM_CONF
#
# slurm_start exports SLURM_DIR (temp dir of everything) and SLURM_CONF.
# Munge runs with its own key and socket (AuthInfo=socket=...), so the host's
# munge, if any, is neither used nor disturbed. Ports are picked free on
# 127.0.0.1. Needs root, munge and slurm-wlm (slurmctld, slurmd, sbatch).
# slurm_stop (registered with cleanup_add) stops all three and removes SLURM_DIR.

if [[ -n "${_HERMES_SLURM_SH:-}" ]]; then
	return 0
fi
_HERMES_SLURM_SH=1

if ! declare -F cleanup_add >/dev/null; then
	_SLURM_CLEANUP=()
	cleanup_add() { _SLURM_CLEANUP+=("$*"); }
	_slurm_cleanup_run() {
		local i
		for ((i = ${#_SLURM_CLEANUP[@]} - 1; i >= 0; i--)); do
			eval "${_SLURM_CLEANUP[i]}" || true
		done
		_SLURM_CLEANUP=()
	}
	trap _slurm_cleanup_run EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
fi

_slurm_fail() {
	echo "slurm.sh: $*" >&2
	local f
	for f in munged.log slurmctld.log slurmd.log; do
		[[ -s ${SLURM_DIR:-/nonexistent}/$f ]] || continue
		echo "slurm.sh: --- $f (tail) ---" >&2
		tail -n 15 "$SLURM_DIR/$f" >&2
	done
	return 1
}

# A TCP port nobody listens on (bound then released by the kernel's choice).
_slurm_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

_slurm_write_conf() {
	local d=$1 host
	host=$(hostname -s)
	cat >"$d/slurm.conf" <<-EOF
		ClusterName=hermestest
		SlurmctldHost=$host(127.0.0.1)
		SlurmctldPort=$(_slurm_free_port)
		SlurmdPort=$(_slurm_free_port)
		AuthType=auth/munge
		AuthInfo=socket=$d/munge/munge.socket
		CredType=cred/munge
		SlurmUser=root
		SlurmdUser=root
		StateSaveLocation=$d/ctld
		SlurmdSpoolDir=$d/spool
		SlurmctldPidFile=$d/slurmctld.pid
		SlurmdPidFile=$d/slurmd.pid
		SlurmctldLogFile=$d/slurmctld.log
		SlurmdLogFile=$d/slurmd.log
		ProctrackType=proctrack/linuxproc
		TaskPlugin=task/none
		SelectType=select/cons_tres
		SelectTypeParameters=CR_Core
		ReturnToService=2
		MpiDefault=none
		SwitchType=switch/none
		JobAcctGatherType=jobacct_gather/none
		AccountingStorageType=accounting_storage/none
		JobCompType=jobcomp/none
		SchedulerParameters=sched_interval=1
		MinJobAge=300
		KillWait=5
		GresTypes=gpu
		NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 Gres=gpu:1 State=UNKNOWN
		PartitionName=hermes Nodes=ALL Default=YES MaxTime=INFINITE State=UP
	EOF
	printf "NodeName=%s Name=gpu File=/dev/null\n" "$host" >"$d/gres.conf"
}

_slurm_start_munge() {
	local d=$1/munge
	mkdir -p "$d" && chmod 700 "$d"
	mungekey -c -k "$d/munge.key" 2>/dev/null || dd if=/dev/urandom of="$d/munge.key" bs=1024 count=1 2>/dev/null
	chmod 600 "$d/munge.key"
	munged --force --socket="$d/munge.socket" --key-file="$d/munge.key" \
		--pid-file="$d/munged.pid" --log-file="$1/munged.log" --seed-file="$d/munged.seed" ||
		{ _slurm_fail "munged did not start"; return 1; }
}

slurm_start() {
	[[ $(id -u) == 0 ]] || { _slurm_fail "needs root"; return 1; }
	local t
	for t in munged slurmctld slurmd sbatch squeue scontrol python3; do
		command -v "$t" >/dev/null || { _slurm_fail "$t missing (packages munge, slurm-wlm)"; return 1; }
	done
	SLURM_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hermes-slurm.XXXXXX")
	chmod 755 "$SLURM_DIR"
	export SLURM_DIR SLURM_CONF=$SLURM_DIR/slurm.conf
	cleanup_add slurm_stop
	mkdir -p "$SLURM_DIR/ctld" "$SLURM_DIR/spool"
	_slurm_write_conf "$SLURM_DIR"
	_slurm_start_munge "$SLURM_DIR" || return 1
	slurmctld -i || { _slurm_fail "slurmctld did not start"; return 1; }
	slurmd || { _slurm_fail "slurmd did not start"; return 1; }
	local i state
	for ((i = 0; i < 300; i++)); do
		state=$(sinfo -h -o %t 2>/dev/null || true)
		[[ $state == idle ]] && return 0
		if [[ $state == down* || $state == drain* ]]; then
			scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
		fi
		sleep 0.1
	done
	_slurm_fail "the node did not become idle within 30 s (state '$state')"
}

_slurm_kill_pidfile() {
	local f=$1 pid i
	[[ -s $f ]] || return 0
	pid=$(cat "$f")
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
}

slurm_stop() {
	[[ -n "${SLURM_DIR:-}" ]] || return 0
	scancel --user=root 2>/dev/null || true
	_slurm_kill_pidfile "$SLURM_DIR/slurmd.pid"
	_slurm_kill_pidfile "$SLURM_DIR/slurmctld.pid"
	_slurm_kill_pidfile "$SLURM_DIR/munge/munged.pid"
	rm -rf -- "$SLURM_DIR"
	SLURM_DIR=
}
