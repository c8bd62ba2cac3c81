#!/bin/sh
# run-all.sh: build and run every test suite twice: an optimised build
# (unit, fuzz corpus replay, integration, stress, ...) and an ASan+UBSan
# build of the same suites; then a ThreadSanitizer build that runs only
# the stress suite and the unit tests that start threads. Prints one
# closing line "tests: N passed, N failed".
set -eu
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
status=0
passed=0
failed=0

run_suite() { # build-dir, meson setup options... [-- meson test options...]
	dir=$1
	shift
	# Setup options up to "--" (none may contain a space), test options after.
	setup=
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		setup="$setup $1"
		shift
	done
	if [ $# -gt 0 ]; then
		shift
	fi
	# shellcheck disable=SC2086 # $setup: one word per option, on purpose
	if [ -f "$dir/meson-private/build.dat" ]; then
		meson setup --reconfigure "$dir" $setup >/dev/null
	else
		meson setup "$dir" $setup >/dev/null
	fi
	ninja -C "$dir" -j "$jobs" >/dev/null || { echo "build failed in $dir" >&2; ninja -C "$dir" -j1 | tail -40; return 1; }
	# Sanitizer runs abort on the first report, with a readable trace.
	# TSan cannot see ck's synchronisation: tsan.supp says what that hides.
	# A stale log (from an earlier run in the same dir) must not be counted.
	rm -f "$dir/meson-logs/testlog.json"
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$(pwd)/tests/stress/tsan.supp" \
		meson test -C "$dir" --print-errorlogs --num-processes "$jobs" "$@" || status=1
	if [ -f "$dir/meson-logs/testlog.json" ]; then
		p=$(grep -c '"result": "OK"' "$dir/meson-logs/testlog.json" || true)
		f=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$dir/meson-logs/testlog.json" || true)
		passed=$((passed + p))
		failed=$((failed + f))
	fi
}

run_suite build || status=1
run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug || status=1
# ThreadSanitizer: the stress suite, and the unit tests that race threads
# (meson test intersects --suite with test names, hence two runs).
tsan="-Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug"
# shellcheck disable=SC2086 # $tsan: one word per option, on purpose
run_suite build-tsan $tsan -- --suite stress || status=1
# shellcheck disable=SC2086
run_suite build-tsan $tsan -- test_live test_trend test_metrics test_exp_ledger || status=1

echo "tests: $passed passed, $failed failed"
exit $status
