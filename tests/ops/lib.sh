# lib.sh: shared helpers of the ops tests (sourced, not run).
# Starts the real daemon on ephemeral loopback ports and talks HTTP to it
# through bash's /dev/tcp, so the tests need nothing beyond bash.

tmp=$(mktemp -d /tmp/recd-ops-XXXXXX)
RECD_PID=
cleanup() {
	[[ -n $RECD_PID ]] && kill -KILL "$RECD_PID" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

# start_recd LOG CMD...: run CMD in the background with stderr to LOG and
# wait for its "msg=listening addr=A admin=B" line. Sets RECD_PID,
# MAIN_ADDR and ADMIN_ADDR. The demo snapshot goes to $tmp, not /tmp.
start_recd() {
	local log=$1 line=
	shift
	RUNTIME_DIRECTORY=$tmp "$@" >"$log.stdout" 2>"$log" &
	RECD_PID=$!
	for _ in $(seq 300); do
		line=$(grep -m1 'msg=listening' "$log") && break
		kill -0 "$RECD_PID" 2>/dev/null || fail "recd exited before listening: $(cat "$log")"
		sleep 0.1
	done
	[[ -n $line ]] || fail "recd did not log msg=listening within 30 s: $(cat "$log")"
	MAIN_ADDR=$(sed -n 's/.* addr=\([^ ]*\) .*/\1/p' <<<"$line")
	ADMIN_ADDR=$(sed -n 's/.* admin=\([^ ]*\) .*/\1/p' <<<"$line")
	[[ $MAIN_ADDR == 127.0.0.1:[0-9]* && $ADMIN_ADDR == 127.0.0.1:[0-9]* ]] ||
		fail "cannot read the addresses from: $line"
}

# stop_recd: SIGTERM, then the exit status must be 0 within 20 s.
stop_recd() {
	local rc=0
	kill -TERM "$RECD_PID"
	for _ in $(seq 200); do
		kill -0 "$RECD_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$RECD_PID" 2>/dev/null && fail "recd still running 20 s after SIGTERM"
	wait "$RECD_PID" || rc=$?
	RECD_PID=
	[[ $rc == 0 ]] || fail "recd exited $rc after SIGTERM (want 0)"
}

# http_status ADDR PATH: the status code of GET PATH on host:port.
http_status() {
	local host=${1%:*} port=${1##*:} fd line
	exec {fd}<>"/dev/tcp/$host/$port" || return 1
	printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" "$1" >&"$fd"
	IFS= read -r -t 5 line <&"$fd" || line=
	exec {fd}<&-
	line=${line#HTTP/1.? }
	echo "${line%% *}"
}

# expect_rc CODE CMD...: CMD exits with CODE; its output is in $tmp/out, $tmp/err.
expect_rc() {
	local code=$1 rc=0
	shift
	"$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	[[ $rc == "$code" ]] || fail "exit $rc (want $code): $*
stdout: $(head -c 2000 "$tmp/out")
stderr: $(head -c 2000 "$tmp/err")"
}

# destdir_install BUILD DEST: meson install into DEST, nothing rebuilt.
destdir_install() {
	"${MESON:-meson}" install -C "$1" --destdir "$2" --no-rebuild --quiet >"$tmp/install.log" 2>&1 ||
		fail "meson install failed: $(tail -20 "$tmp/install.log")"
}

# unit_exec_paths UNIT: prints the ExecStart binary and its --config file.
unit_exec_paths() {
	sed -n 's/^ExecStart=\([^ ]*\) --config \([^ ]*\).*/\1 \2/p' "$1"
}
