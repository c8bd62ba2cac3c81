#!/bin/sh
# luacheck.sh: lint lua/, plugins/ and the fixtures with luacheck (.luacheckrc).
# Without luacheck the test is skipped (77), except under CI, where it fails.
cd "${MESON_SOURCE_ROOT:-$(dirname "$0")/../..}" || exit 1
if ! command -v luacheck >/dev/null 2>&1; then
	if [ -n "${CI:-}" ]; then
		echo "luacheck not found (install lua-check); required when CI is set" >&2
		exit 1
	fi
	echo "luacheck not found: skipped" >&2
	exit 77
fi
exec luacheck --no-color --codes lua plugins tests/lua/fixtures
