#!/usr/bin/env bash
# test_recdctl.sh: recdctl against the real daemon on loopback.
# usage: test_recdctl.sh BUILD_DIR basic|reload     (exit 0 pass, 1 fail)
#   basic   status (human, --json, $RECD_ADMIN), metrics, token, snapshot
#           inspect, exit 2 on usage errors, exit 3 on a closed port
#   reload  reload snapshot: unchanged, reloaded after the file is
#           replaced, refused (exit 1) for a corrupt file, still serving
set -euo pipefail
build=${1:?usage: test_recdctl.sh BUILD_DIR basic|reload}
mode=${2:?usage: test_recdctl.sh BUILD_DIR basic|reload}
source "$(dirname "$0")/lib.sh"
ctl=$build/tools/recdctl

# snapshot MODEL OUT: a small snapshot built by the real tools.
snapshot() {
	local d=$tmp/data
	[[ -d $d ]] || "$build/tools/recd-gen" --out "$d" --items 300 --users 30 --dim 8 --seed 5 >/dev/null
	"$build/tools/recd-snapshot" build --items "$d/items.jsonl" --item-embeddings "$d/item_embeddings.npy" \
		--users "$d/users.txt" --user-embeddings "$d/user_embeddings.npy" \
		--interactions "$d/interactions.csv" --model-version "$1" -o "$2" >/dev/null
}

# Usage errors need no daemon.
expect_rc 0 "$ctl" --help
grep -q 'Exit status' "$tmp/out" || fail "--help lacks the exit codes"
expect_rc 2 "$ctl"
expect_rc 2 "$ctl" frobnicate
expect_rc 2 "$ctl" status extra
expect_rc 2 "$ctl" reload everything
expect_rc 2 "$ctl" --timeout-ms soon status
expect_rc 2 "$ctl" --no-such-option status
expect_rc 2 "$ctl" --admin no-port-here status

# A port nobody listens on: bind one, note it, close it.
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_rc 3 "$ctl" --admin "127.0.0.1:$closed" status
grep -q 'cannot connect' "$tmp/err" || fail "closed port message: $(cat "$tmp/err")"
expect_rc 3 "$ctl" --admin "127.0.0.1:$closed" metrics
expect_rc 3 "$ctl" --admin "unix:$tmp/no-such.sock" status

if [[ $mode == basic ]]; then
	snapshot ops-basic "$tmp/snap.recd"
	start_recd "$tmp/recd.log" "$build/engine/recd" --snapshot "$tmp/snap.recd" --listen 127.0.0.1:0 \
		--admin-listen 127.0.0.1:0 --workers 1 --admin-token sesame --state-dir "$tmp"
	export RECD_ADMIN_TOKEN=sesame

	expect_rc 0 "$ctl" --admin "$ADMIN_ADDR" status
	for want in '^recd [0-9.]+, up ' "listen +$MAIN_ADDR \\(admin $ADMIN_ADDR\\)" '^  workers +1$' \
		'^  connections +[0-9]+$' "snapshot +ops-basic@1 +$tmp/snap.recd" 'items 300 +users 30 +dim 8' 'loaded 20'; do
		grep -qE -- "$want" "$tmp/out" || fail "status lacks /$want/: $(cat "$tmp/out")"
	done
	RECD_ADMIN=$ADMIN_ADDR expect_rc 0 "$ctl" --json status
	python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["workers"] == 1 and d["snapshot"]["model_version"] == "ops-basic", d' \
		<"$tmp/out" || fail "status --json: $(cat "$tmp/out")"

	# The token: missing or wrong is the daemon's 401 (exit 1).
	RECD_ADMIN_TOKEN= expect_rc 1 "$ctl" --admin "$ADMIN_ADDR" status
	grep -q 'HTTP 401' "$tmp/err" || fail "no token: $(cat "$tmp/err")"
	RECD_ADMIN_TOKEN= expect_rc 1 "$ctl" --admin "$ADMIN_ADDR" --token wrong status
	RECD_ADMIN_TOKEN= expect_rc 0 "$ctl" --admin "$ADMIN_ADDR" --token sesame status

	expect_rc 0 "$ctl" --admin "$ADMIN_ADDR" metrics
	grep -q '^recd_snapshot_generation 1$' "$tmp/out" || fail "metrics: $(head -20 "$tmp/out")"
	grep -q '^# TYPE recd_http_requests_total counter' "$tmp/out" || fail "metrics lacks request counts"

	expect_rc 0 "$ctl" snapshot inspect "$tmp/snap.recd"
	grep -q 'model version: *ops-basic' "$tmp/out" || fail "snapshot inspect: $(head "$tmp/out")"
	expect_rc 1 "$ctl" snapshot inspect "$tmp/no-such.recd"
	expect_rc 2 "$ctl" snapshot inspect
	stop_recd
	echo "ok: recdctl basic"
	exit 0
fi

[[ $mode == reload ]] || fail "mode '$mode': basic or reload"
snap=$tmp/snap.recd
snapshot ops-1 "$snap"
start_recd "$tmp/recd.log" "$build/engine/recd" --snapshot "$snap" --listen 127.0.0.1:0 \
	--admin-listen 127.0.0.1:0 --workers 1 --state-dir "$tmp"
export RECD_ADMIN=$ADMIN_ADDR

expect_rc 0 "$ctl" reload snapshot
grep -qE '^snapshot: unchanged \(generation 1, model ops-1\)$' "$tmp/out" ||
	fail "reload of the same file: $(cat "$tmp/out")"

# Replace the file the way operators should (write, then rename). A file
# watcher may reload it first; then the explicit reload finds it unchanged.
snapshot ops-2 "$tmp/next.recd"
mv "$tmp/next.recd" "$snap"
expect_rc 0 "$ctl" reload snapshot
grep -qE '^snapshot: (reloaded|unchanged) \(generation 2, model ops-2\)$' "$tmp/out" ||
	fail "reload of a new file: $(cat "$tmp/out")"
expect_rc 0 "$ctl" --json status
grep -q '"model_version":"ops-2","generation":2' "$tmp/out" || fail "status after reload: $(cat "$tmp/out")"

# A corrupt file is refused: exit 1, the reason, and the old one serves on.
head -c 4096 /dev/urandom >"$tmp/bad.recd"
mv "$tmp/bad.recd" "$snap"
expect_rc 1 "$ctl" reload snapshot
grep -qE 'reload refused: snapshot_refused: .+ \(still serving generation 2\)' "$tmp/err" ||
	fail "refusal message: $(cat "$tmp/err")"
expect_rc 1 "$ctl" --json reload snapshot
python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["error"] == "snapshot_refused" and d["generation"] == 2, d' \
	<"$tmp/out" || fail "refusal JSON: $(cat "$tmp/out")"
[[ $(http_status "$MAIN_ADDR" /ready) == 200 ]] || fail "not ready after a refused reload"
expect_rc 0 "$ctl" status
grep -qE 'snapshot +ops-2@2' "$tmp/out" || fail "status after refusal: $(cat "$tmp/out")"
stop_recd
echo "ok: recdctl reload"
