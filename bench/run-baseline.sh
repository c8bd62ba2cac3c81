#!/bin/sh
# run-baseline.sh: the honest baseline of the exact-scan path.
#   bench/run-baseline.sh [BUILD_DIR] [ITEMS] [DIM] [USERS]
# 1. recd-gen + recd-snapshot build a catalogue (default 1,000,000 x 64);
# 2. bench_scan: exact top-10 latency per request, one thread (p50/p99);
# 3. the real daemon under wrk -t1 -c64 -d10s with a known-user mix,
#    server pinned to CPU 0 and wrk to CPU 1 when there are two CPUs.
# Results: human lines on stdout, JSON in $OUT (default bench/results/).
set -eu
build=${1:-build-release}
items=${2:-1000000}
dim=${3:-64}
users=${4:-100000}
out=${OUT:-bench/results}
data=${BENCH_DATA:-/tmp/recd-bench-${items}x${dim}}
mkdir -p "$out" "$data"
[ -x "$build/engine/recd" ] || { meson setup "$build" --buildtype=release >/dev/null; }
ninja -C "$build" >/dev/null
command -v wrk >/dev/null || { echo "run-baseline: wrk not installed (apt-get install wrk)" >&2; exit 1; }

if [ ! -f "$data/snap.recd" ]; then
	t0=$(date +%s.%N)
	"$build/tools/recd-gen" --out "$data" --items "$items" --users "$users" --dim "$dim" --seed 1
	t1=$(date +%s.%N)
	"$build/tools/recd-snapshot" build --items "$data/items.jsonl" \
		--item-embeddings "$data/item_embeddings.npy" --users "$data/users.txt" \
		--user-embeddings "$data/user_embeddings.npy" --interactions "$data/interactions.csv" \
		--model-version "bench-${items}x${dim}" -o "$data/snap.recd"
	t2=$(date +%s.%N)
	echo "generate: $(echo "$t1 - $t0" | bc) s, snapshot build: $(echo "$t2 - $t1" | bc) s, $(du -h "$data/snap.recd" | cut -f1)"
fi

pin_server="" pin_client=""
if [ "$(nproc)" -ge 2 ]; then pin_server="taskset -c 0"; pin_client="taskset -c 1"; fi

$pin_server "$build/bench/bench_scan" "$data/snap.recd" --queries "${QUERIES:-300}" --json "$out/exact_scan.json"

log=$(mktemp)
$pin_server "$build/engine/recd" --snapshot "$data/snap.recd" --listen 127.0.0.1:0 --admin-listen "" \
	--workers 1 --event-log=false 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 200); do
	port=$(sed -n 's/.*msg=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { cat "$log" >&2; exit 1; }
echo "wrk -t1 -c64 -d${DURATION:-10}s, known users, 1 worker:"
$pin_client wrk -t1 -c64 -d"${DURATION:-10}s" --latency -s bench/wrk/known_users.lua "http://127.0.0.1:$port" -- "$users" 10 \
	| tee "$out/wrk_known_users.txt"
