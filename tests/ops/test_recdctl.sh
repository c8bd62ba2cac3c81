#!/usr/bin/env bash
# test_recdctl.sh: recdctl against the real daemon on loopback.
# usage: test_recdctl.sh BUILD_DIR basic|reload|admin     (exit 0 pass, 1 fail)
#   basic   status (human, --json, $RECD_ADMIN), metrics, token, snapshot
#           inspect, exit 2 on usage errors, exit 3 on a closed port
#   reload  reload snapshot: unchanged, reloaded after the file is
#           replaced, refused (exit 1) for a corrupt file, still serving
#   admin   explain (the same list as /v1/recommendations, not in the
#           request metrics, follows a policy reload), events send (a bad
#           line: exit 1 and its line), user, item (404 when unknown), the
#           sampled access log
set -euo pipefail
build=${1:?usage: test_recdctl.sh BUILD_DIR basic|reload|admin}
mode=${2:?usage: test_recdctl.sh BUILD_DIR basic|reload|admin}
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
expect_rc 2 "$ctl" explain
expect_rc 2 "$ctl" --n 0 explain u1
expect_rc 2 "$ctl" --placement home status
expect_rc 2 "$ctl" user
expect_rc 2 "$ctl" item a b
expect_rc 2 "$ctl" events send
expect_rc 2 "$ctl" events push "$tmp/x"

# A port nobody listens on: bind one, note it, close it.
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_rc 3 "$ctl" --admin "127.0.0.1:$closed" status
grep -q 'cannot connect' "$tmp/err" || fail "closed port message: $(cat "$tmp/err")"
expect_rc 3 "$ctl" --admin "127.0.0.1:$closed" metrics
expect_rc 3 "$ctl" --admin "unix:$tmp/no-such.sock" status
for cmd in "explain u1" "user u1" "item i1"; do
	# shellcheck disable=SC2086
	expect_rc 3 "$ctl" --admin "127.0.0.1:$closed" $cmd
done
echo '{"type":"view","user_id":"u1","item_id":"i1"}' >"$tmp/one.ndjson"
expect_rc 3 "$ctl" --admin "127.0.0.1:$closed" events send "$tmp/one.ndjson"

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


if [[ $mode == admin ]]; then
	snapshot ops-admin "$tmp/snap.recd"
	cp -r plugins "$tmp/plugins"
	start_recd "$tmp/recd.log" "$build/engine/recd" --snapshot "$tmp/snap.recd" --listen 127.0.0.1:0 \
		--admin-listen 127.0.0.1:0 --workers 2 --admin-token sesame --state-dir "$tmp" \
		--plugins-dir "$tmp/plugins" --access-log-sample 1
	export RECD_ADMIN=$ADMIN_ADDR RECD_ADMIN_TOKEN=sesame
	# GET PATH on the main listener, or the sum of a metric family there.
	main_get() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen("http://" + sys.argv[1] + sys.argv[2], timeout=5).read().decode())' "$MAIN_ADDR" "$1"; }
	metric_sum() { main_get /metrics | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'; }

	# Events first (one bad line), so u3 has live state: exit 1, the line.
	printf '%s\n' '{"type":"view","user_id":"u3","item_id":"i7"}' '' \
		'{"type":"like","user_id":"u3","item_id":"i7"}' \
		'{"type":"add_to_cart","user_id":"u3","item_id":"i9"}' >"$tmp/ev.ndjson"
	expect_rc 1 "$ctl" events send "$tmp/ev.ndjson"
	grep -qE '^accepted +2$' "$tmp/out" || fail "events send: $(cat "$tmp/out")"
	grep -qF "line 3 (event 1): unknown type 'like'" "$tmp/out" || fail "events send error line: $(cat "$tmp/out")"
	expect_rc 0 "$ctl" events send "$tmp/one.ndjson"
	printf '[{"type": "view", "user_id": "u3",\n  "item_id": "i11"},\n {"type": "view"}]' | expect_rc 1 "$ctl" --json events send -
	python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["accepted"] == 1 and d["rejected"][0]["index"] == 1 and d["rejected"][0]["line"] == 3, d' \
		<"$tmp/out" || fail "events send --json: $(cat "$tmp/out")"
	RECD_ADMIN_TOKEN= expect_rc 1 "$ctl" events send "$tmp/one.ndjson"
	grep -q 'HTTP 401' "$tmp/err" || fail "events send without the token: $(cat "$tmp/err")"

	# user: what the events left.
	expect_rc 0 "$ctl" user u3
	for want in '^  interactions 3$' '^  cart +i9$' 'add_to_cart +i9' 'view +i11'; do
		grep -qE -- "$want" "$tmp/out" || fail "user lacks /$want/: $(cat "$tmp/out")"
	done
	expect_rc 0 "$ctl" --json user u3
	python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["interactions"] == 3 and d["cart"] == ["i9"], d' \
		<"$tmp/out" || fail "user --json: $(cat "$tmp/out")"
	expect_rc 1 "$ctl" user nobody-here

	# item: the snapshot's columns, a live update, 404 when unknown.
	expect_rc 0 "$ctl" item i7
	for want in '^  servable +yes$' '^  snapshot +index 7, category ' '^  neighbors +i[0-9]'; do
		grep -qE -- "$want" "$tmp/out" || fail "item lacks /$want/: $(cat "$tmp/out")"
	done
	echo '{"type":"item_update","item_id":"i8","stock":0,"boost":2}' | expect_rc 0 "$ctl" events send -
	expect_rc 0 "$ctl" --json item i8
	python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["snapshot"]["index"] == 8 and d["live"]["stock"] == 0 and d["live"]["blocked"] and not d["servable"], d' \
		<"$tmp/out" || fail "item --json: $(cat "$tmp/out")"
	expect_rc 1 "$ctl" item no-such-item
	grep -q 'HTTP 404: not_found' "$tmp/err" || fail "unknown item: $(cat "$tmp/err")"
	expect_rc 1 "$ctl" --json item no-such-item
	python3 -c 'import json, sys; assert json.load(sys.stdin)["error"] == "not_found"' <"$tmp/out" ||
		fail "unknown item --json: $(cat "$tmp/out")"

	# explain: the real path. Its list must equal /v1/recommendations for
	# the same request (the precomputed lists settle first: a request may
	# ask for one, and the next then reads it).
	calls_before=$(metric_sum recd_plugin_calls_total)
	recs_before=$(metric_sum recd_recommendations_total)
	same=
	for user in u1 u3; do
		for _ in $(seq 20); do
			main_get "/v1/recommendations?user_id=$user&placement=home&n=5" >"$tmp/rec1"
			"$ctl" --json explain "$user" --placement home --n 5 >"$tmp/explain" || fail "explain $user: exit $?"
			main_get "/v1/recommendations?user_id=$user&placement=home&n=5" >"$tmp/rec2"
			if python3 - "$tmp/rec1" "$tmp/explain" "$tmp/rec2" <<'PY'; then same=$user; break; fi
import json, sys
r1, ex, r2 = (json.load(open(f)) for f in sys.argv[1:])
ids = lambda d: [i["id"] for i in d["items"]]
assert ex["route"]["sources"] and all(s["source"] and s["n"] > 0 for s in ex["route"]["sources"]), ex["route"]
assert ex["route"]["chosen_by"] == "lua" and ex["rules"]["status"] == "ok" and ex["rerank"]["status"] == "ok", ex
assert ex["gathered"]["count"] >= len(ex["items"]) > 0, ex
for k in ("tier", "strategy"):
    assert ex[k] == r2[k], (k, ex[k], r2[k])
assert ex["route"]["name"] == r2["route"], (ex["route"], r2["route"])
sys.exit(0 if ids(r1) == ids(ex) == ids(r2) and ex.get("candidates") == r2.get("candidates") else 1)
PY
			sleep 0.2
		done
		[[ $same == "$user" ]] || fail "explain $user never matched /v1/recommendations: $(cat "$tmp/rec2") vs $(head -c 3000 "$tmp/explain")"
	done
	expect_rc 0 "$ctl" explain u1 --placement home --n 5
	for want in '^explain u1, placement home, n 5$' '^  route +collaborative, tier returning, chosen by route.lua' \
		'^ +personalized +20 ' '^  rules +ok: ' '^  ranked by +rerank.lua' '^ +pos +item +source +gathered +rules +final +reason$' \
		'^ +1 +i[0-9]+ '; do
		grep -qE -- "$want" "$tmp/out" || fail "explain lacks /$want/: $(cat "$tmp/out")"
	done
	expect_rc 0 "$ctl" explain - --item i7 --n 3
	grep -qE '^  route +similar_items' "$tmp/out" || fail "explain --item: $(cat "$tmp/out")"
	expect_rc 1 "$ctl" explain u1 --item no-such-item
	grep -q 'HTTP 400: bad_request' "$tmp/err" || fail "explain unknown item: $(cat "$tmp/err")"
	# Explains run on the admin worker: not in the request metrics.
	for _ in 1 2 3; do "$ctl" explain u1 >/dev/null; done
	calls_after=$(metric_sum recd_plugin_calls_total)
	recs_after=$(metric_sum recd_recommendations_total)
	calls_main=$(( calls_after - calls_before ))
	recs_main=$(( recs_after - recs_before ))
	# Only the /v1/recommendations calls above count (3 hooks each).
	(( calls_main == 3 * recs_main )) || fail "explain counted in the request metrics: calls +$calls_main for +$recs_main requests"

	# The admin worker follows a policy reload (its own state, new files).
	sed -i 's/policy = "cold_start_popular"/policy = "cold_start_edited"/' "$tmp/plugins/route.lua"
	expect_rc 0 "$ctl" reload policies
	expect_rc 0 "$ctl" --json explain -
	python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["route"]["name"] == "cold_start_edited" and not d["policy"].endswith("@1"), (d["route"], d["policy"])' \
		<"$tmp/out" || fail "explain after a policy reload: $(head -c 2000 "$tmp/out")"

	# The access log: every main-listener request (sample 1), no raw id,
	# no query string; none for the admin listener.
	grep -qE 'msg=access method=GET path=/v1/recommendations status=200 took_us=[0-9]+ endpoint=recommendations worker=[01] user=[0-9a-f]{8} request_id=' \
		"$tmp/recd.log" || fail "no access line: $(grep msg=access "$tmp/recd.log" | head -3)"
	grep -qE 'msg=access method=GET path=/metrics status=200 .* user=-' "$tmp/recd.log" || fail "no access line for /metrics"
	! grep 'msg=access' "$tmp/recd.log" | grep -qE 'u1|u3|\?|/admin' || fail "the access log shows ids, a query or admin requests"
	stop_recd
	echo "ok: recdctl admin"
	exit 0
fi
[[ $mode == reload ]] || fail "mode '$mode': basic, reload or admin"
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
