# shellcheck shell=bash
# tests/contest/lib.sh: a contest service on a private hermesd and Podman
# (bash; source it after tests/lib/tree.sh, tests/lib/podman.sh and
# tests/api/hermesd.sh).
#
#   contest_start W           judge image, hermesd (fake CDI GPU 0), contest
#                             "test" in W/contest.db with teams admin, alpha,
#                             beta, gamma, mallory (password PW_<team>), the
#                             sample problem sum; the service on a free port
#                             (CS_URL, CS_PID, log W/contest.log)
#   contest_serve             (re)start the service on the same database
#   cs TEAM METHOD PATH [curl args...]
#                             one request with TEAM's cookie jar; sets
#                             CS_STATUS and CS_BODY (POSTs carry X-Contest: 1)
#   cs_expect CODE WHAT       the last cs answered CODE
#   login TEAM                POST /api/login with TEAM's password
#   submit TEAM PROBLEM DIR   DIR packed as tar.gz and submitted; SUB_ID
#   wait_judged TEAM ID       poll until the latest judging of ID is done; SUB
#                             is its JSON (GET /api/submissions/ID)
#   contest_log_clean         the service printed nothing but its start line

CONTEST_PY=$SRCDIR/contrib/contest
CONTEST_IMAGE=localhost/hermes-contest:cc
HD_TOKEN=contest-judge-token-1

contest() {
	"$CONTEST_PY/hermes-contest" --db "$W/contest.db" --contest test "$@"
}

contest_start() {
	W=$1
	podman_start || fail "no Podman service"
	bash "$CONTEST_PY/build-image.sh" "$CONTEST_IMAGE" >"$W/image.log" 2>&1 ||
		fail "judge image: $(cat "$W/image.log")"
	hermesd_config "$W" "backend = podman" "podman_socket = $PODMAN_SOCK" "image = $CONTEST_IMAGE" \
		"gpus = auto" "cpu_slots = 2" "max_upload = 50000000" "token = judge $HD_TOKEN"
	export HERMES_CDI_DIR=$PODMAN_CDI_DIR
	# gpus = auto asks nvidia-smi: a stand-in prints what a one-GPU host would
	mkdir -p "$W/bin"
	printf '#!/bin/sh\necho "0, NVIDIA H200, 0, 0, 143771"\n' >"$W/bin/nvidia-smi"
	chmod +x "$W/bin/nvidia-smi"
	PATH=$W/bin:$PATH hermesd_start "$W"
	contest init || fail "contest init"
	local t
	CONTEST_PASSWORD=PW_admin contest add-team admin --admin || fail "add-team admin"
	for t in alpha beta gamma mallory; do
		CONTEST_PASSWORD=PW_$t contest add-team "$t" || fail "add-team $t"
	done
	contest add-problem "$CONTEST_PY/sample/sum" >"$W/add.out" || fail "add-problem sum"
	grep -qx 'sum: problem 1, version 1, 2 tests' "$W/add.out" || fail "add-problem said: $(cat "$W/add.out")"
	contest_serve
}

contest_serve() {
	rm -f "$W/cs.port"
	# hermes-contest execs python3: CS_PID is the service itself
	HERMES_TOKEN=$HD_TOKEN "$CONTEST_PY/hermes-contest" --db "$W/contest.db" \
		--contest test serve --hermes "$HD_URL" --listen 127.0.0.1:0 --port-file "$W/cs.port" \
		2>>"$W/contest.log" &
	CS_PID=$!
	cleanup_add "kill $CS_PID 2>/dev/null || true"
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -s $W/cs.port ]] && break
		kill -0 "$CS_PID" 2>/dev/null || fail "contest service exited: $(cat "$W/contest.log")"
		sleep 0.05
	done
	[[ -s $W/cs.port ]] || fail "contest service did not listen within 15 s"
	CS_URL=http://127.0.0.1:$(cat "$W/cs.port")
}

cs() {
	local team=$1 method=$2 path=$3 out
	shift 3
	out=$(mktemp "$TREE_TMP/cs.XXXXXX")
	local extra=()
	[[ $method == POST ]] && extra=(-H 'X-Contest: 1')
	CS_STATUS=$(curl -s -o "$out" -w '%{http_code}' -X "$method" -b "$W/jar.$team" -c "$W/jar.$team" \
		"${extra[@]}" "$@" "$CS_URL$path") || fail "curl $method $path failed"
	CS_BODY=$(cat "$out")
	rm -f "$out"
}

cs_expect() {
	[[ $CS_STATUS == "$1" ]] || fail "$2: HTTP $CS_STATUS instead of $1: $CS_BODY"
}

login() {
	cs "$1" POST /api/login --data "{\"team\":\"$1\",\"password\":\"PW_$1\"}"
	cs_expect 200 "login $1"
}

submit() {
	local team=$1 problem=$2 dir=$3
	tar -C "$dir" -czf "$W/upload.tgz" .
	cs "$team" POST "/api/submit?problem=$problem&filename=$(basename "$dir").tgz" \
		--data-binary @"$W/upload.tgz"
	cs_expect 201 "submit $dir as $team"
	# shellcheck disable=SC2034 # read by the tests
	SUB_ID=$(jq -r .id <<<"$CS_BODY")
}

wait_judged() {
	local team=$1 id=$2 i
	for ((i = 0; i < 1500; i++)); do
		cs "$team" GET "/api/submissions/$id"
		cs_expect 200 "GET submission $id"
		if [[ $(jq -r '.judgings[-1].status' <<<"$CS_BODY") == "done" ]]; then
			SUB=$CS_BODY
			return 0
		fi
		sleep 0.2
	done
	fail "submission $id not judged within 300 s: $CS_BODY"
}

# expect_verdict VERDICT WHAT: SUB's latest judging has VERDICT
expect_verdict() {
	local v
	v=$(jq -r '.judgings[-1].verdict' <<<"$SUB")
	[[ $v == "$1" ]] || fail "$2: verdict '$v' instead of '$1': $(jq -r '.judgings[-1].log' <<<"$SUB")"
}

# expect_log PATTERN WHAT: SUB's latest log matches PATTERN (grep -E)
expect_log() {
	jq -r '.judgings[-1].log' <<<"$SUB" | grep -Eq -- "$1" ||
		fail "$2: log does not match '$1': $(jq -r '.judgings[-1].log' <<<"$SUB")"
}

contest_log_clean() {
	local bad
	bad=$(grep -v '^hermes-contest: listening on' "$W/contest.log" || true)
	[[ -z $bad ]] || fail "the contest service printed: $bad"
}
