#!/usr/bin/env bash
# test_tools.sh: recd-gen and recd-snapshot end to end, through their files.
# usage: test_tools.sh BUILD_DIR     (exit 0 pass, 1 fail)
set -euo pipefail

build=${1:?usage: test_tools.sh BUILD_DIR}
gen=$build/tools/recd-gen
snap=$build/tools/recd-snapshot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect CODE PATTERN CMD...: CMD exits with CODE and stderr matches PATTERN.
expect() {
	local code=$1 pat=$2 rc=0
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	[[ $rc == "$code" ]] || fail "exit $rc (want $code): $*: $(cat "$tmp/err")"
	grep -qE -- "$pat" "$tmp/err" || fail "stderr lacks /$pat/: $*: $(cat "$tmp/err")"
}

# section NAME FILE: the checksum column of section NAME in an inspect dump.
section() { awk -v n="$1" '$1 == n { print $4 }' "$2"; }

d=$tmp/data
"$gen" --out "$d" --items 500 --users 50 --dim 8 --seed 3 --text-embeddings >"$tmp/gen.out"
grep -q "500 items" "$tmp/gen.out" || fail "recd-gen summary: $(cat "$tmp/gen.out")"
for f in items.jsonl item_embeddings.npy users.txt user_embeddings.npy interactions.csv \
	item_embeddings.txt user_embeddings.txt; do
	[[ -s $d/$f ]] || fail "recd-gen did not write $f"
done
[[ $(wc -l <"$d/items.jsonl") == 500 ]] || fail "items.jsonl line count"
[[ $(wc -l <"$d/users.txt") == 50 ]] || fail "users.txt line count"
[[ $(head -1 "$d/interactions.csv") == "user_id,item_id,type,ts" ]] || fail "interactions header"
[[ $(stat -c %s "$d/item_embeddings.npy") == $((128 + 500 * 8 * 4)) ]] || fail ".npy size"
n_events=$(($(wc -l <"$d/interactions.csv") - 1))
(( n_events > 0 )) || fail "no interactions"

# Same seed, same bytes; another seed, other bytes.
"$gen" --out "$tmp/again" --items 500 --users 50 --dim 8 --seed 3 >/dev/null
for f in items.jsonl item_embeddings.npy users.txt user_embeddings.npy interactions.csv; do
	cmp -s "$d/$f" "$tmp/again/$f" || fail "recd-gen is not deterministic: $f"
done
"$gen" --out "$tmp/other" --items 500 --users 50 --dim 8 --seed 4 >/dev/null
! cmp -s "$d/item_embeddings.npy" "$tmp/other/item_embeddings.npy" || fail "seed ignored"

# Build from .npy, inspect.
"$snap" build --items "$d/items.jsonl" --item-embeddings "$d/item_embeddings.npy" \
	--users "$d/users.txt" --user-embeddings "$d/user_embeddings.npy" \
	--interactions "$d/interactions.csv" --model-version t-npy --popular-k 20 \
	-o "$tmp/npy.snap" >"$tmp/build.out"
grep -q "500 items, 50 users, dim 8, $n_events interactions" "$tmp/build.out" ||
	fail "build summary: $(cat "$tmp/build.out")"
"$snap" inspect "$tmp/npy.snap" --rows 3 >"$tmp/npy.txt"
grep -qE '^items: +500$' "$tmp/npy.txt" || fail "inspect: items count"
grep -qE '^users: +50$' "$tmp/npy.txt" || fail "inspect: users count"
grep -qE '^dim: +8 ' "$tmp/npy.txt" || fail "inspect: dim"
grep -qE '^popular: +20$' "$tmp/npy.txt" || fail "inspect: popular count"
grep -qE '^model version: +t-npy$' "$tmp/npy.txt" || fail "inspect: model version"
grep -qE '^format: +RECDSNAP v1$' "$tmp/npy.txt" || fail "inspect: format"
grep -qE "^size: +$(stat -c %s "$tmp/npy.snap") bytes$" "$tmp/npy.txt" || fail "inspect: size"
grep -qE '^  0 +i0 ' "$tmp/npy.txt" || fail "inspect: first item row"
grep -qE '^  1 +i[0-9]+ ' "$tmp/npy.txt" || fail "inspect: popular rows"
grep -qE '^  0 +u0 +\[' "$tmp/npy.txt" || fail "inspect: first user row"
[[ -n $(section ITEM_EMB "$tmp/npy.txt") ]] || fail "inspect: section table"

# Text embeddings in reverse order, users taken from the text file: the
# same vectors, so the same section checksums.
tac "$d/item_embeddings.txt" >"$tmp/items_rev.txt"
"$snap" build --items "$d/items.jsonl" --item-embeddings "$tmp/items_rev.txt" \
	--user-embeddings "$d/user_embeddings.txt" --interactions "$d/interactions.csv" \
	--model-version t-txt --popular-k 20 -o "$tmp/txt.snap" >/dev/null
"$snap" inspect "$tmp/txt.snap" >"$tmp/txt.txt"
for s in ITEM_EMB USER_EMB USER_IDS ITEM_IDS ITEM_POPULARITY POPULAR; do
	[[ $(section $s "$tmp/npy.txt") == $(section $s "$tmp/txt.txt") ]] ||
		fail "text and .npy builds differ in $s"
done

# The same catalogue as CSV (titles quoted): the same item columns.
sed -E 's/^\{"id":"([^"]*)","title":"([^"]*)","category":"([^"]*)","price":([^,]*),"stock":([0-9]*)\}$/\1,"\2",\3,\4,\5/' \
	"$d/items.jsonl" | { echo "id,title,category,price,stock"; cat; } >"$tmp/items.csv"
"$snap" build --items "$tmp/items.csv" --item-embeddings "$d/item_embeddings.npy" \
	--interactions "$d/interactions.csv" --popular-k 20 -o "$tmp/csv.snap" >/dev/null
"$snap" inspect "$tmp/csv.snap" >"$tmp/csv.txt"
for s in ITEM_IDS ITEM_TITLES CATEGORY_NAMES ITEM_CATEGORY ITEM_PRICE ITEM_STOCK ITEM_FLAGS ITEM_POPULARITY; do
	[[ $(section $s "$tmp/npy.txt") == $(section $s "$tmp/csv.txt") ]] ||
		fail "csv and jsonl builds differ in $s"
done

# Decay changes popularity; a fixed build time makes builds reproducible.
"$snap" build --items "$d/items.jsonl" --item-embeddings "$d/item_embeddings.npy" \
	--interactions "$d/interactions.csv" --half-life-days 1 --build-time 1700000000 \
	-o "$tmp/decay1.snap" >/dev/null
"$snap" build --items "$d/items.jsonl" --item-embeddings "$d/item_embeddings.npy" \
	--interactions "$d/interactions.csv" --half-life-days 1 --build-time 1700000000 \
	-o "$tmp/decay2.snap" >/dev/null
cmp -s "$tmp/decay1.snap" "$tmp/decay2.snap" || fail "builds with --build-time differ"
"$snap" inspect "$tmp/decay1.snap" >"$tmp/decay.txt"
[[ $(section ITEM_POPULARITY "$tmp/decay.txt") != $(section ITEM_POPULARITY "$tmp/csv.txt") ]] ||
	fail "--half-life-days had no effect"
grep -q '2023-11-14T22:13:20Z' "$tmp/decay.txt" || fail "inspect: ISO build time"

# Input errors name the file and line, exit 1.
sed '7s/"id":"i6",//' "$d/items.jsonl" >"$tmp/bad.jsonl"
expect 1 "bad\.jsonl:7: missing field 'id'" \
	"$snap" build --items "$tmp/bad.jsonl" --item-embeddings "$d/item_embeddings.npy" -o "$tmp/x.snap"
{ cat "$d/items.jsonl"; echo '{"id":"extra","price":1,"stock":1}'; } >"$tmp/more.jsonl"
expect 1 'item_embeddings\.npy: shape \(500, 8\) but 501 items' \
	"$snap" build --items "$tmp/more.jsonl" --item-embeddings "$d/item_embeddings.npy" -o "$tmp/x.snap"
expect 1 "item_embeddings\.txt: 500 embeddings but 501 items: no embedding for item 'extra'" \
	"$snap" build --items "$tmp/more.jsonl" --item-embeddings "$d/item_embeddings.txt" -o "$tmp/x.snap"
sed '4s/^i[0-9]* /nosuch /' "$d/item_embeddings.txt" >"$tmp/unk.txt"
expect 1 "unk\.txt:4: unknown item 'nosuch'" \
	"$snap" build --items "$d/items.jsonl" --item-embeddings "$tmp/unk.txt" -o "$tmp/x.snap"
sed '3s/"id":"i2"/"id":"i0"/' "$d/items.jsonl" >"$tmp/dup.jsonl"
expect 1 "dup\.jsonl:3: duplicate id 'i0' \(first on line 1\)" \
	"$snap" build --items "$tmp/dup.jsonl" --item-embeddings "$d/item_embeddings.npy" -o "$tmp/x.snap"
{ cat "$d/interactions.csv"; echo "u1,i3,like,1700000000000"; } >"$tmp/badtype.csv"
expect 1 "badtype\.csv:$((n_events + 2)): unknown type 'like'" \
	"$snap" build --items "$d/items.jsonl" --item-embeddings "$d/item_embeddings.npy" \
	--interactions "$tmp/badtype.csv" -o "$tmp/x.snap"
[[ ! -e $tmp/x.snap ]] || fail "a failed build left an output file"

# Unknown items in the log: a warning naming the first, not a failure.
{ cat "$d/interactions.csv"; echo "u1,i999999,view,1700000000000"; } >"$tmp/retired.csv"
expect 0 "retired\.csv:$((n_events + 2)): warning: unknown item 'i999999' \(1 of" \
	"$snap" build --items "$d/items.jsonl" --item-embeddings "$d/item_embeddings.npy" \
	--interactions "$tmp/retired.csv" -o "$tmp/x.snap"

# Usage errors exit 2; a damaged snapshot is refused by inspect.
expect 2 'needs --items' "$snap" build --items "$d/items.jsonl" -o "$tmp/y.snap"
expect 2 'unknown command' "$snap" frobnicate
expect 2 'required' "$gen" --items 10
expect 2 'expected an integer' "$gen" --out "$tmp/z" --items ten
cp "$tmp/npy.snap" "$tmp/broken.snap"
printf 'XXXX' | dd of="$tmp/broken.snap" bs=1 seek=$(($(stat -c %s "$tmp/broken.snap") - 100)) conv=notrunc status=none
expect 1 'broken\.snap: .*checksum' "$snap" inspect "$tmp/broken.snap"

echo "test_tools: ok"
