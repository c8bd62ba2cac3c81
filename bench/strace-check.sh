#!/bin/sh
# strace-check.sh: show that the request path makes no per-request socket
# system calls (io_uring carries them). Runs recd under
# `strace -f -c -e trace=read,write,recvfrom,sendto,recvmsg,sendmsg,epoll_wait,io_uring_enter`
# during a short wrk run and prints strace's table next to wrk's request count.
#   bench/strace-check.sh [BUILD_DIR] [SNAPSHOT] [SECONDS]
set -eu
build=${1:-build}
snap=${2:-}
secs=${3:-5}
command -v strace >/dev/null && command -v wrk >/dev/null ||
	{ echo "strace-check: needs strace and wrk (apt-get install strace wrk)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$snap" ]; then
	"$build/tools/recd-gen" --out "$tmp" --items 10000 --users 2000 --dim 32 >/dev/null
	"$build/tools/recd-snapshot" build --items "$tmp/items.jsonl" --item-embeddings "$tmp/item_embeddings.npy" \
		--users "$tmp/users.txt" --user-embeddings "$tmp/user_embeddings.npy" \
		--interactions "$tmp/interactions.csv" -o "$tmp/snap.recd" >/dev/null
	snap="$tmp/snap.recd"
fi
strace -f -c -o "$tmp/strace.txt" -e trace=read,write,recvfrom,sendto,recvmsg,sendmsg,epoll_wait,io_uring_enter \
	"$build/engine/recd" --snapshot "$snap" --listen 127.0.0.1:0 --admin-listen "" --workers 1 --event-log=false 2>"$tmp/log" &
pid=$!
port=""
for _ in $(seq 1 100); do
	port=$(sed -n 's/.*msg=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/log")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/log" >&2; kill $pid; exit 1; }
wrk -t1 -c32 -d"${secs}s" -s bench/wrk/known_users.lua "http://127.0.0.1:$port" -- 2000 10
# SIGTERM to strace itself would only detach it: signal recd.
kill -TERM "$(pgrep -P $pid)" 2>/dev/null || kill -TERM $pid
wait $pid || true
echo "--- strace -c of recd during the run (io_uring_enter shown for scale) ---"
cat "$tmp/strace.txt"
