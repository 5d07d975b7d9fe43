# shellcheck shell=bash
# tests/api/hermesd.sh: run a hermesd for a test (bash; source it after
# tests/lib/tree.sh, which gives fail/step/cleanup_add/tree_tmpdir).
#
#   hermesd_config DIR LINES...   write DIR/hermesd.conf: listen on a free port
#                                 of 127.0.0.1, state in DIR/state, the lines
#   hermesd_start DIR             start it (port from --port-file), sets
#                                 HD_URL and HD_PID; fails if it does not listen
#   hermesd_kill [SIGNAL]         signal it (default KILL) and wait for the exit
#   hermesd_log_clean DIR         hermesd printed nothing but its start line and
#                                 restart notes (no error, no sanitizer report)
#   api TOKEN METHOD PATH [curl args...]
#                                 one request; sets API_STATUS and API_BODY
#   get_job TOKEN ID              JOB = GET /v1/jobs/ID (call it outside $(...))
#   field FIELD                   a field of JOB
#   wait_state TOKEN ID STATE...  poll (bounded) until the job is in one of STATEs

: "${HERMESD:=$BUILDDIR/src/api/hermesd}"
: "${HERMES_REMOTE:=$BUILDDIR/hermes}"

hermesd_config() {
	local dir=$1
	shift
	mkdir -p "$dir/state"
	{
		printf 'listen = 127.0.0.1:0\nstate_dir = %s/state\n' "$dir"
		printf '%s\n' "$@"
	} >"$dir/hermesd.conf"
	chmod 600 "$dir/hermesd.conf" # else hermesd warns: the file holds tokens
}

hermesd_start() {
	local dir=$1 i
	rm -f "$dir/port"
	"$HERMESD" -c "$dir/hermesd.conf" --port-file "$dir/port" 2>>"$dir/hermesd.log" &
	HD_PID=$!
	cleanup_add "kill -9 $HD_PID 2>/dev/null || true"
	for ((i = 0; i < 300; i++)); do
		[[ -s $dir/port ]] && break
		kill -0 "$HD_PID" 2>/dev/null || fail "hermesd exited at start: $(cat "$dir/hermesd.log")"
		sleep 0.05
	done
	[[ -s $dir/port ]] || fail "hermesd did not listen within 15 s"
	HD_URL=http://127.0.0.1:$(cat "$dir/port")
	export HD_URL
}

hermesd_kill() {
	kill -"${1:-KILL}" "$HD_PID"
	local rc=0
	wait "$HD_PID" || rc=$?
	HD_RC=$rc
}

hermesd_log_clean() {
	local bad
	bad=$(grep -v 'warning: listening on\|are marked failed$\|container(s) left by an earlier hermesd$' \
		"$1/hermesd.log" || true)
	[[ -z $bad ]] || fail "hermesd printed: $bad"
}

api() {
	local token=$1 method=$2 path=$3 out
	shift 3
	out=$(mktemp "$TREE_TMP/api.XXXXXX")
	local auth=()
	[[ -n $token ]] && auth=(-H "Authorization: Bearer $token")
	API_STATUS=$(curl -s -o "$out" -w '%{http_code}' -X "$method" "${auth[@]}" "$@" "$HD_URL$path") ||
		fail "curl $method $path failed"
	API_BODY=$(cat "$out")
	rm -f "$out"
}

# expect_status CODE WHAT: the last api call answered CODE with a JSON body.
expect_status() {
	[[ $API_STATUS == "$1" ]] || fail "$2: HTTP $API_STATUS instead of $1: $API_BODY"
}

expect_error() { # CODE WHAT PATTERN
	expect_status "$1" "$2"
	jq -e '.error | type == "string"' <<<"$API_BODY" >/dev/null || fail "$2: no JSON error: $API_BODY"
	grep -q -- "$3" <<<"$API_BODY" || fail "$2: error does not match '$3': $API_BODY"
}

get_job() {
	api "$1" GET "/v1/jobs/$2"
	expect_status 200 "GET job $2"
	JOB=$API_BODY
}

field() {
	jq -r ".$1" <<<"$JOB"
}

wait_state() {
	local token=$1 id=$2 i s
	shift 2
	for ((i = 0; i < 1200; i++)); do
		api "$token" GET "/v1/jobs/$id"
		s=$(jq -r .state <<<"$API_BODY")
		local want
		for want in "$@"; do
			[[ $s == "$want" ]] && return 0
		done
		sleep 0.1
	done
	fail "job $id stayed $s, expected $*: $API_BODY"
}
