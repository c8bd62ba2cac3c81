#!/usr/bin/env bash
# test_quality_train.sh: recd-train recovers the structure recd-gen plants
# (users prefer a few categories): on a held-out temporal split of the
# generated interactions, MF's HR@10 is well above popularity's, and the
# full engine (snapshot + default policies, replayed by recd-eval) beats
# popularity too. Also: the ALS loss never rises, and the output bytes
# depend on the seed but not on the thread count.
# usage: test_quality_train.sh RECD_GEN RECD_TRAIN RECD_SNAPSHOT RECD_EVAL
set -euo pipefail

gen=$1 train=$2 snap=$3 eval=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

d=$tmp/gen
"$gen" --out "$d" --items 2000 --users 600 --categories 50 --dim 16 --seed 5 \
	--interactions-per-user 40 >/dev/null
# Split at the 80th percentile of ts: the last fifth of the events is the test.
n=$(($(wc -l <"$d/interactions.csv") - 1))
cut=$(tail -n +2 "$d/interactions.csv" | cut -d, -f4 | sort -n | sed -n "$((n * 8 / 10))p")
awk -F, -v c="$cut" 'NR == 1 || $4 < c' "$d/interactions.csv" >"$tmp/train.csv"
awk -F, -v c="$cut" 'NR == 1 || $4 >= c' "$d/interactions.csv" >"$tmp/test.csv"

args=(--items "$d/items.jsonl" --interactions "$tmp/train.csv" --dim 16 --iters 8 --alpha 10 --lambda 0.1)
"$train" "${args[@]}" --threads 1 --out "$tmp/m1" >"$tmp/train1.txt" || fail "train: $(cat "$tmp/train1.txt")"
"$train" "${args[@]}" --threads 3 --out "$tmp/m3" >/dev/null
"$train" "${args[@]}" --threads 2 --seed 9 --out "$tmp/m9" >/dev/null
for f in item_embeddings.npy user_embeddings.npy users.txt; do
	cmp -s "$tmp/m1/$f" "$tmp/m3/$f" || fail "recd-train output depends on --threads: $f"
done
! cmp -s "$tmp/m1/item_embeddings.npy" "$tmp/m9/item_embeddings.npy" || fail "--seed ignored"
[[ $(stat -c %s "$tmp/m1/item_embeddings.npy") == $((128 + 2000 * 16 * 4)) ]] || fail "item_embeddings.npy size"
# Each half-step minimises the objective exactly: the loss never rises.
awk '/^iter/ { l = $4 + 0; if (n++ && l > prev * (1 + 1e-9)) bad = 1; prev = l } END { exit bad || n != 8 }' \
	"$tmp/train1.txt" || fail "loss rose or missing iterations: $(cat "$tmp/train1.txt")"

"$snap" build --items "$d/items.jsonl" --item-embeddings "$tmp/m1/item_embeddings.npy" \
	--users "$tmp/m1/users.txt" --user-embeddings "$tmp/m1/user_embeddings.npy" \
	--interactions "$tmp/train.csv" --build-time 1 -o "$tmp/snap.recd" >/dev/null
"$eval" --snapshot "$tmp/snap.recd" --train "$tmp/train.csv" --test "$tmp/test.csv" --test-type any \
	--methods popular,mf,engine --json "$tmp/r.json" >"$tmp/eval.txt" || fail "eval: $(cat "$tmp/eval.txt")"

# "name": {"hr": X ...
hr() { sed -n "s/.*\"$1\": {\"hr\": \([0-9.]*\).*/\1/p" "$tmp/r.json"; }
pop=$(hr popular) mf=$(hr mf) eng=$(hr engine)
[[ -n $pop && -n $mf && -n $eng ]] || fail "no figures: $(cat "$tmp/r.json")"
echo "HR@10: popular $pop, mf $mf, engine $eng"
awk -v p="$pop" -v m="$mf" 'BEGIN { exit !(m >= 1.5 * p && m >= p + 0.15) }' ||
	fail "MF HR@10 $mf is not well above popularity's $pop"
awk -v p="$pop" -v e="$eng" 'BEGIN { exit !(e >= p + 0.05) }' ||
	fail "engine HR@10 $eng is not above popularity's $pop"
grep -q '"lua_fallbacks": 0' "$tmp/r.json" || fail "Lua hooks fell back"
echo "test_quality_train: ok"
