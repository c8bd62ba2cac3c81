#!/bin/sh
# run-all.sh: build and run every test suite twice: an optimised build
# (unit, fuzz corpus replay, integration) and an ASan+UBSan build of the
# same suites. Prints one closing line "tests: N passed, N failed".
set -eu
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
status=0
passed=0
failed=0

run_suite() { # build-dir, meson setup options...
	dir=$1
	shift
	if [ -f "$dir/meson-private/build.dat" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" -j "$jobs" >/dev/null || { echo "build failed in $dir" >&2; ninja -C "$dir" -j1 | tail -40; return 1; }
	# Sanitizer runs abort on the first report, with a readable trace.
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C "$dir" --print-errorlogs --num-processes "$jobs" || status=1
	if [ -f "$dir/meson-logs/testlog.json" ]; then
		p=$(grep -c '"result": "OK"' "$dir/meson-logs/testlog.json" || true)
		f=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$dir/meson-logs/testlog.json" || true)
		passed=$((passed + p))
		failed=$((failed + f))
	fi
}

run_suite build || status=1
run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug || status=1

echo "tests: $passed passed, $failed failed"
exit $status
