#!/bin/sh
# quality-retail.sh: the offline quality experiment of docs/quality.md on
# the vendored Online Retail data, end to end: build the tools, import
# (temporal split), train the embeddings, build the snapshot, evaluate.
#
#   tools/quality-retail.sh                  test split: train Dec 2010 - Sep 2011, test Oct 2011
#   tools/quality-retail.sh --validation     tuning split: train Dec 2010 - Aug 2011, test Sep 2011
#
# Environment: BUILD (build directory, default build; set up and built
# here if needed), OUT (results, default /tmp/recd-quality-retail),
# DIM ALPHA LAMBDA ITERS SEED THREADS (recd-train; defaults: the values
# chosen on the validation split, docs/quality.md).
# Writes OUT/results.md and OUT/results.json. Deterministic: the same
# inputs and settings give the same figures.
set -eu

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=${OUT:-/tmp/recd-quality-retail}
DIM=${DIM:-64}
ALPHA=${ALPHA:-1}
LAMBDA=${LAMBDA:-10}
ITERS=${ITERS:-15}
SEED=${SEED:-1}
THREADS=${THREADS:-2}
DATA=data/online-retail/online_retail.csv.gz

split="test"
case "${1:-}" in
"") ;;
--validation) split=validation ;;
-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "quality-retail: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac
if [ "$split" = test ]; then
	train_args="--before 2011-10-01" test_args="--after 2011-10-01"
	label="Online Retail: train 2010-12-01..2011-09-30, test 2011-10"
else
	train_args="--before 2011-09-01" test_args="--after 2011-09-01 --before 2011-10-01"
	label="Online Retail (validation): train 2010-12-01..2011-08-31, test 2011-09"
fi

t0=$(date +%s)
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release >/dev/null
ninja -C "$BUILD" tools/recd-import-retail tools/recd-train tools/recd-snapshot tools/recd-eval >/dev/null
T=$BUILD/tools
mkdir -p "$OUT"

echo "== import ($label)"
# shellcheck disable=SC2086
"$T/recd-import-retail" "$DATA" --out "$OUT/train" $train_args
# shellcheck disable=SC2086
"$T/recd-import-retail" "$DATA" --out "$OUT/test" $test_args

echo "== train (dim $DIM, alpha $ALPHA, lambda $LAMBDA, $ITERS iterations, seed $SEED)"
"$T/recd-train" --items "$OUT/train/items.jsonl" --users "$OUT/train/users.txt" \
	--interactions "$OUT/train/interactions.csv" --out "$OUT/model" \
	--dim "$DIM" --alpha "$ALPHA" --lambda "$LAMBDA" --iters "$ITERS" --seed "$SEED" --threads "$THREADS"

echo "== snapshot"
"$T/recd-snapshot" build --items "$OUT/train/items.jsonl" \
	--item-embeddings "$OUT/model/item_embeddings.npy" \
	--users "$OUT/model/users.txt" --user-embeddings "$OUT/model/user_embeddings.npy" \
	--interactions "$OUT/train/interactions.csv" --model-version "als-d$DIM-a$ALPHA-l$LAMBDA" \
	--build-time 1317427200 -o "$OUT/snapshot.recd"

echo "== evaluate"
"$T/recd-eval" --snapshot "$OUT/snapshot.recd" --train "$OUT/train/interactions.csv" \
	--test "$OUT/test/interactions.csv" --plugins plugins --lua lua --label "$label" \
	--json "$OUT/results.json" --markdown "$OUT/results.md"
echo
echo "quality-retail: $OUT/results.md, $OUT/results.json ($(($(date +%s) - t0)) s)"
