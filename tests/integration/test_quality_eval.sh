#!/usr/bin/env bash
# test_quality_eval.sh: recd-eval end to end on a hand-made case whose
# figures are worked out below (popularity lists are fixed by the counts),
# and its live rows (session blend, fold-in, cold start) there.
# usage: test_quality_eval.sh RECD_SNAPSHOT RECD_EVAL
set -euo pipefail

snap=$1 eval=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$tmp/items.csv" <<'CSV'
id,title,category,price,stock
i0,a,c1,1,5
i1,b,c1,1,5
i2,c,c2,1,5
i3,d,c3,1,5
i4,e,c2,1,5
CSV
printf 'i0 1 0\ni1 0 1\ni2 1 1\ni3 0.5 0\ni4 0 0.5\n' >"$tmp/iemb.txt"
printf 'u0 1 0\nu1 0 1\nu2 1 1\nu3 1 0\n' >"$tmp/uemb.txt"
# Train purchases: i0 x3, i1 x2 (u1's view of i2 weighs 1, a purchase 5),
# so popularity ranks i0, i1, i2, then i3, i4 (no counts, index order).
cat >"$tmp/train.csv" <<'CSV'
user_id,item_id,type,ts
u0,i0,purchase,1
u1,i0,purchase,2
u1,i1,purchase,3
u2,i0,purchase,4
u2,i2,purchase,5
u3,i1,purchase,6
u1,i2,view,7
CSV
# Test: u0 buys i2 and i4; u1 buys i3 (its view of i4 does not count);
# u2 buys i0 again (bought in train: nothing new, not evaluated); u3 buys
# i1 again and i4; u9 has no train history.
cat >"$tmp/test.csv" <<'CSV'
user_id,item_id,type,ts
u0,i2,purchase,10
u0,i4,purchase,11
u1,i3,purchase,12
u1,i4,view,13
u2,i0,purchase,14
u3,i1,purchase,15
u3,i4,purchase,16
u9,i4,purchase,17
CSV
"$snap" build --items "$tmp/items.csv" --item-embeddings "$tmp/iemb.txt" --user-embeddings "$tmp/uemb.txt" \
	--interactions "$tmp/train.csv" --neighbors 0 --build-time 1 -o "$tmp/s.recd" >/dev/null
"$eval" --snapshot "$tmp/s.recd" --train "$tmp/train.csv" --test "$tmp/test.csv" --k 2 \
	--methods popular,mf --json "$tmp/r.json" >"$tmp/out.txt" || fail "eval: $(cat "$tmp/out.txt")"
grep -q "5 test users, 4 with train history, 3 of them evaluated (1 bought nothing new)" "$tmp/out.txt" ||
	fail "user counts: $(cat "$tmp/out.txt")"
# Popularity, k = 2, without each user's train purchases:
#   u0 [i1, i2]: hit at 2 of 2 relevant: NDCG (1/log2 3) / (1 + 1/log2 3) = 0.386853, AP 0.5/2
#   u1 [i2, i3]: hit at 2 of 1 relevant: NDCG 1/log2 3 = 0.630930, AP 0.5
#   u3 [i0, i2]: miss (relevant: i4)
# HR 2/3, NDCG 0.339261, MAP 0.25, recall (1/2 + 1 + 0) / 3; items i0..i3
# shown: coverage 4/5; two categories in every list.
want='"popular": {"hr": 0.666667, "ndcg": 0.339261, "map": 0.250000, "recall": 0.500000, "coverage": 0.800000, "distinct_items": 4, "categories_per_list": 2.0000'
grep -qF "$want" "$tmp/r.json" || fail "popular: $(grep popular "$tmp/r.json")"
# MF (u . i): u0 (1,0): i2 1, i3 0.5, (i0 bought) -> [i2, i3]: hit at 1: NDCG 1/(1+1/log2 3), AP 1/2
#   u1 (0,1): i2 1, i4 0.5 (i1 bought) -> [i2, i4]: miss (relevant i3)
#   u3 (1,0): i0 1, i2 1 (tie: lower index first; i1 bought) -> [i0, i2]: miss
# HR 1/3, NDCG 0.613147 / 3, MAP and recall 0.5 / 3; i0 i2 i3 i4 shown;
# categories 2, 1 (c2 c2), 2.
want='"mf": {"hr": 0.333333, "ndcg": 0.204382, "map": 0.166667, "recall": 0.166667, "coverage": 0.800000, "distinct_items": 4, "categories_per_list": 1.6667'
grep -qF "$want" "$tmp/r.json" || fail "mf: $(grep '"mf"' "$tmp/r.json")"
# The live rows (session blend, fold-in, cold start): present in the table
# and the JSON, every HR and NDCG a number in [0, 1], nobody left without
# a query (every replayed item is in the snapshot). No model version, so
# fold-in takes recd-train's defaults.
"$eval" --snapshot "$tmp/s.recd" --train "$tmp/train.csv" --test "$tmp/test.csv" --k 2 \
	--methods popular,mf,session-blend,foldin,cold-session,cold-foldin --json "$tmp/live.json" \
	>"$tmp/live.txt" || fail "eval (live rows): $(cat "$tmp/live.txt")"
for title in "live: snapshot + session vector blend (as refresh.c)" "live: fold-in, snapshot embedding as prior" \
	"cold start: session vector alone" "cold start: fold-in"; do
	row=$(grep -F "| $title |" "$tmp/live.txt") || fail "no row '$title': $(cat "$tmp/live.txt")"
	hr=$(cut -d'|' -f3 <<<"$row") ndcg=$(cut -d'|' -f4 <<<"$row")
	awk -v h="$hr" -v n="$ndcg" 'BEGIN { exit !(h ~ /^ *[0-9]+\.[0-9]+ *$/ && n ~ /^ *[0-9]+\.[0-9]+ *$/ &&
		h + 0 >= 0 && h + 0 <= 1 && n + 0 >= 0 && n + 0 <= 1) }' || fail "'$title': HR '$hr', NDCG '$ndcg'"
done
for m in session-blend foldin cold-session cold-foldin; do
	grep -qE "\"$m\": \{\"hr\": (0\.[0-9]+|1\.0+), \"ndcg\": (0\.[0-9]+|1\.0+),.*\"fallbacks\": 0" "$tmp/live.json" ||
		fail "$m: $(grep "\"$m\"" "$tmp/live.json")"
done
grep -qF '"foldin": {"replayed_events": 10, "lambda": 0.1, "alpha": 10, "log_confidence": 0, "prior": 10,' \
	"$tmp/live.json" || fail "fold-in settings: $(grep '"foldin": {"replayed' "$tmp/live.json")"
grep -q 'vs session-blend: HR' "$tmp/live.txt" || fail "no paired difference to the blend"
# A prior that outweighs everything returns the snapshot embedding: the
# fold-in lists score as MF's (worked out above).
"$eval" --snapshot "$tmp/s.recd" --train "$tmp/train.csv" --test "$tmp/test.csv" --k 2 \
	--methods foldin --foldin-prior 1e9 --json "$tmp/prior.json" >/dev/null || fail "eval (prior)"
grep -qF '"foldin": {"hr": 0.333333, "ndcg": 0.204382, "map": 0.166667' "$tmp/prior.json" ||
	fail "fold-in with a huge prior is not MF: $(grep '"foldin": {"hr' "$tmp/prior.json")"
echo "test_quality_eval: ok"
