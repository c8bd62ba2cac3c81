#!/usr/bin/env bash
# test_install.sh: a DESTDIR `meson install` holds everything the units
# name, and the installed daemon checks its installed config, starts,
# answers /ready over a real socket and stops on SIGTERM with exit 0.
# usage: test_install.sh BUILD_DIR     (exit 0 pass, 1 fail)
set -euo pipefail
build=${1:?usage: test_install.sh BUILD_DIR}
source "$(dirname "$0")/lib.sh"

dest=$tmp/dest
destdir_install "$build" "$dest"

# inst NAME [PATH-GLOB]: the one installed file called NAME.
inst() {
	local f
	f=$(find "$dest" -name "$1" -path "${2:-*}")
	[[ -n $f && $(wc -l <<<"$f") == 1 ]] || fail "want exactly one installed $1 (${2:-*}), got: ${f:-none}"
	echo "$f"
}
unit=$(inst recd.service '*/systemd/system/*')
inst recd.socket '*/systemd/system/*' >/dev/null
inst recd-admin.socket '*/systemd/system/*' >/dev/null
grep -qx 'u recd - "recd recommendation engine" /var/lib/recd' "$(inst recd.conf '*/sysusers.d/*')" ||
	fail "sysusers.d entry for user recd"
inst README.md '*/recd/lua/*' >/dev/null
inst README.md '*/recd/plugins/*' >/dev/null
inst operations.md '*/doc/recd/*' >/dev/null

read -r bin conf < <(unit_exec_paths "$unit")
[[ -n $bin && -n $conf ]] || fail "cannot read ExecStart from $unit"
recd=$dest$bin
conf=$dest$conf
[[ -x $recd ]] || fail "ExecStart binary $bin not installed"
[[ -f $conf ]] || fail "config $conf (ExecStart --config) not installed"
cmp -s "$conf" "$(dirname "$0")/../../systemd/recd.conf" || fail "installed config differs from systemd/recd.conf"
doc=$(sed -n 's#^Documentation=file://##p' "$unit")
[[ -f $dest$doc ]] || fail "Documentation=$doc not installed"
bindir=$(dirname "$(inst recdctl)")
for t in recd-snapshot recd-gen; do
	[[ -x $bindir/$t ]] || fail "$t not installed next to recdctl in $bindir"
done

expect_rc 0 "$recd" --version
grep -q '^recd ' "$tmp/out" || fail "recd --version: $(cat "$tmp/out")"
expect_rc 0 "$recd" --check-config --config "$conf"
grep -q 'configuration ok' "$tmp/out" || fail "--check-config: $(cat "$tmp/out")"

# The installed config, with only what a test needs overridden.
mkdir "$tmp/state"
start_recd "$tmp/recd.log" "$recd" --config "$conf" --demo --demo-items 2000 --demo-users 200 \
	--listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --state-dir "$tmp/state" --workers 1
code=
for _ in $(seq 50); do
	code=$(http_status "$MAIN_ADDR" /ready) || code=
	[[ $code == 200 ]] && break
	sleep 0.1
done
[[ $code == 200 ]] || fail "GET /ready on $MAIN_ADDR: '$code' (want 200)"
expect_rc 0 "$bindir/recdctl" --admin "$ADMIN_ADDR" status
grep -q 'workers      1' "$tmp/out" || fail "installed recdctl status: $(cat "$tmp/out")"
stop_recd
echo "ok: installed layout runs ($bin, $(basename "$conf"))"
