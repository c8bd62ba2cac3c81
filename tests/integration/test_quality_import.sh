#!/usr/bin/env bash
# test_quality_import.sh: recd-import-retail on a small inline Online Retail
# fixture: skipped rows (and why), categories, titles, median prices, ts in
# ms as UTC, sort orders, regions, the temporal split, gzip and plain input.
# usage: test_quality_import.sh RECD_IMPORT_RETAIL      (exit 0 pass, 1 fail)
set -euo pipefail

imp=${1:?usage: test_quality_import.sh RECD_IMPORT_RETAIL}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Rows: 3 lines of 85123A (two titles, one with a trailing space; prices
# 2.55 2.95 2.45), a cancellation, a zero quantity, a guest (no
# CustomerID), postage, quoted titles with a comma and with "", a row out
# of time order, an item with two prices (lower median), and 2011 rows for
# the split.
cat >"$tmp/in.csv" <<'CSV'
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom
536366,85123A,WHITE HANGING HEART T-LIGHT HOLDER ,2,2010-12-02 09:00:00,2.95,13047,France
536367,85123A,CREAM HANGING HEART T-LIGHT HOLDER,1,2010-12-03 10:00:00,2.45,13047,France
C536368,71053,WHITE METAL LANTERN,-1,2010-12-03 11:00:00,3.39,17850,United Kingdom
536369,22633,"HAND WARMER, UNION JACK",0,2010-12-03 11:30:00,1.85,17850,United Kingdom
536370,22632,SET OF 3 CAKE TINS PANTRY DESIGN,3,2010-12-04 12:00:00,4.95,,United Kingdom
536371,POST,POSTAGE,1,2010-12-04 12:05:00,18.00,12583,France
536372,21731,"RED TOADSTOOL LED NIGHT LIGHT, SMALL",4,2011-01-11 13:00:00,1.65,12583,Germany
536373,84029G,"KNITTED UNION FLAG ""HOT"" WATER BOTTLES",2,2011-02-01 00:00:00,3.39,12583,France
536374,22222,CHILDREN'S PARTY DOILIES,12,2010-12-31 23:59:00,0.85,12583,France
536375,22222,CHILDREN'S PARTY DOILIES,24,2011-01-02 10:00:00,0.72,13047,France
536376,23300,GLASS BOXES,1,2011-02-01 00:00:00,2.00,13047,France
CSV
gzip -n -c "$tmp/in.csv" >"$tmp/in.csv.gz"

"$imp" "$tmp/in.csv.gz" --out "$tmp/all" >"$tmp/out.txt" || fail "import: $(cat "$tmp/out.txt")"
grep -q "13 rows; kept 9; skipped 1 cancellations, 1 with Quantity <= 0, 1 without CustomerID, 1 non-product codes, 0 before --after, 0 from --before on" "$tmp/out.txt" ||
	fail "counts: $(cat "$tmp/out.txt")"
grep -q "wrote $tmp/all: 6 items (6 categories), 3 users (2 regions), 9 interactions, 2010-12-01 08:26:00 .. 2011-02-01 00:00:00 UTC" "$tmp/out.txt" ||
	fail "summary: $(cat "$tmp/out.txt")"

cat >"$tmp/items.want" <<'EOF2'
{"id":"21731","title":"RED TOADSTOOL LED NIGHT LIGHT, SMALL","category":"light","price":1.65,"stock":100}
{"id":"22222","title":"CHILDREN'S PARTY DOILIES","category":"doily","price":0.72,"stock":100}
{"id":"23300","title":"GLASS BOXES","category":"box","price":2.00,"stock":100}
{"id":"71053","title":"WHITE METAL LANTERN","category":"lantern","price":3.39,"stock":100}
{"id":"84029G","title":"KNITTED UNION FLAG \"HOT\" WATER BOTTLES","category":"bottle","price":3.39,"stock":100}
{"id":"85123A","title":"WHITE HANGING HEART T-LIGHT HOLDER","category":"holder","price":2.55,"stock":100}
EOF2
diff -u "$tmp/items.want" "$tmp/all/items.jsonl" || fail "items.jsonl"

printf '12583\n13047\n17850\n' | diff -u - "$tmp/all/users.txt" || fail "users.txt"
printf 'user_id,region\n12583,France\n13047,France\n17850,United Kingdom\n' | diff -u - "$tmp/all/regions.csv" ||
	fail "regions.csv"

# ts: InvoiceDate read as UTC, in ms (2010-12-01 08:26:00 = 1291191960 s);
# sorted by ts, file order among equal ones.
cat >"$tmp/inter.want" <<'EOF2'
user_id,item_id,type,ts
17850,85123A,purchase,1291191960000
17850,71053,purchase,1291191960000
13047,85123A,purchase,1291280400000
13047,85123A,purchase,1291370400000
12583,22222,purchase,1293839940000
13047,22222,purchase,1293962400000
12583,21731,purchase,1294750800000
12583,84029G,purchase,1296518400000
13047,23300,purchase,1296518400000
EOF2
diff -u "$tmp/inter.want" "$tmp/all/interactions.csv" || fail "interactions.csv"

# The same from the plain file, byte for byte; and again (deterministic).
"$imp" "$tmp/in.csv" --out "$tmp/plain" >/dev/null
for f in items.jsonl users.txt regions.csv interactions.csv; do
	cmp -s "$tmp/all/$f" "$tmp/plain/$f" || fail "plain and gzip inputs differ in $f"
done

# The split: train before 2011-01-01, test from it on.
"$imp" "$tmp/in.csv.gz" --out "$tmp/train" --before 2011-01-01 >"$tmp/out.txt"
grep -q "kept 5;.* 0 before --after, 4 from --before on" "$tmp/out.txt" || fail "train split: $(cat "$tmp/out.txt")"
[[ $(tail -n +2 "$tmp/train/interactions.csv" | wc -l) == 5 ]] || fail "train rows"
[[ $(wc -l <"$tmp/train/items.jsonl") == 3 ]] || fail "train items (only items sold in the window)"
"$imp" "$tmp/in.csv.gz" --out "$tmp/test" --after 2011-01-01 --stock 7 >"$tmp/out.txt"
grep -q "kept 4;.* 5 before --after, 0 from --before on" "$tmp/out.txt" || fail "test split: $(cat "$tmp/out.txt")"
grep -q '"id":"22222".*"price":0.72,"stock":7}' "$tmp/test/items.jsonl" || fail "test items / --stock"
printf '12583\n13047\n' | diff -u - "$tmp/test/users.txt" || fail "test users"

# Usage and input errors.
rc=0; "$imp" "$tmp/in.csv" >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "no --out: exit $rc"
rc=0; "$imp" "$tmp/in.csv" --out "$tmp/x" --before 2011-13-01 >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "bad date: exit $rc"
printf 'InvoiceNo,StockCode\n1,2\n' >"$tmp/bad.csv"
rc=0; "$imp" "$tmp/bad.csv" --out "$tmp/x" >/dev/null 2>"$tmp/err" || rc=$?
[[ $rc == 1 ]] || fail "bad header: exit $rc"
grep -q "no 'Description' column" "$tmp/err" || fail "bad header: $(cat "$tmp/err")"
"$imp" --list-drop-words | grep -qw RETROSPOT || fail "--list-drop-words"
echo "test_quality_import: ok"
