#!/usr/bin/env bash
# test_recdctl_exp.sh: recdctl experiments and quality against the real
# daemon on loopback.
# usage: test_recdctl_exp.sh BUILD_DIR     (exit 0 pass, 1 fail)
# A copy of plugins/ whose experiments.lua declares one experiment on every
# request (exposure 1): control and b, a shadow variant, a holdout of 0.1.
# Lists for u1..u50 and one click carrying a response's request_id; then
#   experiments  a row per variant whose impressions and clicks are the
#                JSON's (and what the responses said), the CTR of the
#                clicked one, the holdout row, the shadow's status, the
#                ledger; --json parses
#   quality      a row per variant with the JSON's list counts; --json parses
#   errors       usage (exit 2), no token (exit 1, HTTP 401), the admin
#                listener down (exit 3, "cannot connect")
set -euo pipefail
build=${1:?usage: test_recdctl_exp.sh BUILD_DIR}
source "$(dirname "$0")/lib.sh"
ctl=$build/tools/recdctl

expect_rc 2 "$ctl" experiments extra
expect_rc 2 "$ctl" quality now
expect_rc 2 "$ctl" --placement home experiments
expect_rc 0 "$ctl" --help
grep -qE '^  experiments ' "$tmp/out" || fail "--help lacks experiments"
grep -qE '^  quality ' "$tmp/out" || fail "--help lacks quality"

d=$tmp/data
"$build/tools/recd-gen" --out "$d" --items 300 --users 30 --dim 8 --seed 5 >/dev/null
"$build/tools/recd-snapshot" build --items "$d/items.jsonl" --item-embeddings "$d/item_embeddings.npy" \
	--users "$d/users.txt" --user-embeddings "$d/user_embeddings.npy" \
	--interactions "$d/interactions.csv" --model-version ops-exp -o "$tmp/snap.recd" >/dev/null
cp -r plugins "$tmp/plugins"
cat >"$tmp/plugins/experiments.lua" <<'EOF'
return {
	{ name = "exp_ops", exposure = 1, holdout = 0.1,
	  variants = {
		{ name = "control", weight = 50 },
		{ name = "b", weight = 50, params = { rerank = { max_per_category = 1 } } },
		{ name = "shadow_pop", shadow = true, sources = { personalized = 0, session = 0, popular = 1 } },
	  } },
}
EOF
start_recd "$tmp/recd.log" "$build/engine/recd" --snapshot "$tmp/snap.recd" --listen 127.0.0.1:0 \
	--admin-listen 127.0.0.1:0 --workers 2 --admin-token sesame --state-dir "$tmp" \
	--plugins-dir "$tmp/plugins"
export RECD_ADMIN=$ADMIN_ADDR RECD_ADMIN_TOKEN=sesame

# The traffic: u1..u50 on placement home, then a click on the first item of
# the first list served by a variant (not the holdout), with its request_id.
# Prints {"control": n, "b": n, "holdout": n, "clicked": variant}.
python3 - "$MAIN_ADDR" >"$tmp/served.json" <<'PY' || fail "traffic: $(cat "$tmp/served.json")"
import collections, json, sys, urllib.request
base = "http://" + sys.argv[1]
served, click = collections.Counter(), None
for i in range(1, 51):
    r = json.load(urllib.request.urlopen("%s/v1/recommendations?user_id=u%d&placement=home&n=5" % (base, i), timeout=5))
    assert r.get("experiment") == "exp_ops" and r["items"], r
    served[r["variant"]] += 1
    if click is None and r["variant"] != "holdout":
        click = {"type": "click", "user_id": "u%d" % i, "item_id": r["items"][0]["id"], "request_id": r["request_id"]}
        clicked = r["variant"]
assert set(served) == {"control", "b", "holdout"}, served
req = urllib.request.Request(base + "/v1/events", json.dumps(click).encode(), {"Content-Type": "application/json"})
ans = json.load(urllib.request.urlopen(req, timeout=5))
assert ans == {"accepted": 1, "rejected": []}, ans
print(json.dumps(dict(served, clicked=clicked)))
PY

# The ledger counts off the request path: wait until it has all of it.
settled=
for _ in $(seq 100); do
	"$ctl" --json experiments >"$tmp/exp.json" || fail "experiments --json: exit $?"
	python3 - "$tmp/served.json" "$tmp/exp.json" <<'PY' && settled=1 && break
import json, sys
served, body = (json.load(open(f)) for f in sys.argv[1:])
v = {x["name"]: x for x in body["experiments"][0]["variants"]}
ok = all(v[k]["impressions"] == served[k] for k in ("control", "b", "holdout"))
ok = ok and v[served["clicked"]]["clicks"] == 1 and v["shadow_pop"]["shadow_lists"] == served["control"] + served["b"]
sys.exit(0 if ok else 1)
PY
	sleep 0.1
done
[[ -n $settled ]] || fail "the ledger never had the $(cat "$tmp/served.json") lists and the click: $(head -c 3000 "$tmp/exp.json")"
python3 -m json.tool "$tmp/exp.json" >/dev/null || fail "experiments --json does not parse: $(head -c 2000 "$tmp/exp.json")"

expect_rc 0 "$ctl" experiments
cp "$tmp/out" "$tmp/exp.txt"
python3 - "$tmp/served.json" "$tmp/exp.json" "$tmp/exp.txt" <<'PY' || fail "experiments: $(cat "$tmp/exp.txt")"
import json, re, sys
served, body = (json.load(open(f)) for f in sys.argv[1:3])
text = open(sys.argv[3]).read()
lines = text.splitlines()
e = body["experiments"][0]
v = {x["name"]: x for x in e["variants"]}
assert lines[0] == "experiment exp_ops: exposure 100%, holdout 10%, allocation fixed, control control, placements all", lines[0]
assert re.match(r"  baseline CTR \d+\.\d\d%, sample size (\d+ per variant|- )", lines[1]), lines[1]
assert re.match(r"  variant +weight +impr +clicks +CTR \[95%\] +CTR vs control +conversion \[95%\] +revenue +needed +status$", lines[2]), lines[2]
assert all(len(l) <= 120 for l in lines), [l for l in lines if len(l) > 120]
rows = {}
for l in lines[3:]:
    m = re.match(r"  (\S+) +(\S+) +(\d+) +(\d+) +(\d+\.\d\d)% \[(\d+\.\d\d)-(\d+\.\d\d)\] +(\S+(?: p[<=]\S+)?) +"
                 r"(\d+\.\d\d)% \[\S+\] +(\d+\.\d\d) +(\S+)(?: +(\S.*))?$", l)
    if m:
        rows[m.group(1)] = m.groups()
assert set(rows) == {"control", "b", "holdout"}, rows
for name, g in rows.items():
    x = v[name]
    assert int(g[2]) == x["impressions"] == served[name], (name, g, x["impressions"], served[name])
    assert int(g[3]) == x["clicks"], (name, g, x)
    assert g[4] == "%.2f" % (100 * x["ctr"]["value"]) and g[5] == "%.2f" % (100 * x["ctr"]["lo"]), (name, g, x["ctr"])
    assert g[1] == ("-" if name == "holdout" else "50"), g
    want_needed = str(x["samples_still_needed"]) if "samples_still_needed" in x else "-"
    assert g[10] == want_needed, (name, g, want_needed)
clicked = rows[served["clicked"]]
assert clicked[3] == "1" and float(clicked[4]) > 0, clicked
assert rows["control"][7] == "-" and re.match(r"[+-]\d+\.\d\dpp p[<=]", rows["b"][7]), (rows["control"], rows["b"])
assert rows["holdout"][11] == "holdout", rows["holdout"]
assert rows["control"][11] is None and rows["b"][11] is None, rows
sh = v["shadow_pop"]
want = "  shadow_pop      -  shadow: %d lists, mean overlap %.1f%%, " % (sh["shadow_lists"], 100 * sh["mean_overlap"])
assert any(l.startswith(want) and l.endswith(" us per list") for l in lines), (want, lines)
assert sh["shadow_lists"] > 0, sh
lg = body["ledger"]
assert "ledger: %d impressions (0 dropped), %d outcomes (0 dropped), " % (lg["impressions"], lg["outcomes"]) in text, lg
PY

# The quality gauges fold in the lists a moment later too.
settled=
for _ in $(seq 100); do
	"$ctl" --json quality >"$tmp/q.json" || fail "quality --json: exit $?"
	python3 - "$tmp/served.json" "$tmp/q.json" <<'PY' && settled=1 && break
import json, sys
served, body = (json.load(open(f)) for f in sys.argv[1:])
lists = {c["variant"]: c["lists"] for c in body["cells"] if c["placement"] == "home"}
want = dict((k, served[k]) for k in ("control", "b", "holdout"))
want["shadow_pop"] = served["control"] + served["b"]
sys.exit(0 if lists == want else 1)
PY
	sleep 0.1
done
[[ -n $settled ]] || fail "the quality cells never counted the $(cat "$tmp/served.json") lists: $(head -c 3000 "$tmp/q.json")"
python3 -m json.tool "$tmp/q.json" >/dev/null || fail "quality --json does not parse: $(head -c 2000 "$tmp/q.json")"
expect_rc 0 "$ctl" quality
cp "$tmp/out" "$tmp/q.txt"
python3 - "$tmp/q.json" "$tmp/q.txt" <<'PY' || fail "quality: $(cat "$tmp/q.txt")"
import json, re, sys
body = json.load(open(sys.argv[1]))
lines = open(sys.argv[2]).read().splitlines()
assert lines[0] == "quality of the lists served in the last %d s, per placement and experiment variant" % body["window_s"], lines[0]
assert re.match(r"  placement +experiment/variant +lists +coverage +cat/list +distance +pop pct +head +strategies$", lines[1]), lines[1]
assert all(len(l) <= 120 for l in lines), lines
rows = {}
for l in lines[2:]:
    m = re.match(r"  (\S+) +(\S+) +(\d+) +(\d+\.\d\d)% +(\d+\.\d\d) +(\d\.\d{3}) +(\d\.\d\d) +(\d+\.\d)% +(.+)$", l)
    if m:
        rows[(m.group(1), m.group(2))] = m.groups()
cells = {(c["placement"], c["experiment"] + "/" + c["variant"] if "experiment" in c else c["variant"]): c
         for c in body["cells"]}
assert set(rows) == set(cells), (sorted(rows), sorted(cells))
for k in ("control", "b", "holdout", "shadow_pop"):
    assert ("home", "exp_ops/" + k) in rows, (k, rows)
for k, g in rows.items():
    c = cells[k]
    assert int(g[2]) == c["lists"] and g[3] == "%.2f" % (100 * c["coverage"]), (k, g, c)
    mix = re.findall(r"(\w+) (<1|\d+)%", g[8])
    names = {m[0] for m in mix}
    assert mix and (names == set(c["strategies"]) or "other" in names and names - {"other"} < set(c["strategies"])), \
        (k, g[8], c["strategies"])
PY

# Errors: the daemon's 401 (exit 1), then the admin listener down (exit 3).
RECD_ADMIN_TOKEN= expect_rc 1 "$ctl" experiments
grep -q 'HTTP 401' "$tmp/err" || fail "experiments without the token: $(cat "$tmp/err")"
RECD_ADMIN_TOKEN= expect_rc 1 "$ctl" quality
grep -q 'HTTP 401' "$tmp/err" || fail "quality without the token: $(cat "$tmp/err")"
stop_recd
for cmd in experiments quality "--json experiments" "--json quality"; do
	# shellcheck disable=SC2086
	expect_rc 3 "$ctl" $cmd
	grep -qF "recdctl: cannot connect to $ADMIN_ADDR: Connection refused" "$tmp/err" ||
		fail "$cmd with the admin listener down: $(cat "$tmp/err")"
	[[ ! -s $tmp/out ]] || fail "$cmd with the admin listener down printed: $(cat "$tmp/out")"
done
echo "ok: recdctl experiments, quality"
