#!/usr/bin/env bash
# test_units.sh: the configured systemd units pass `systemd-analyze verify`
# and their exposure (`systemd-analyze security --offline=true`) is <= 2.0.
# usage: test_units.sh BUILD_DIR     (exit 0 pass, 1 fail, 77 skip)
#
# verify insists that ExecStart's binary exists, so the units are checked
# as installed into a DESTDIR, with their absolute paths moved under it.
# Works without systemd as PID 1: both commands run offline.
set -euo pipefail
build=${1:?usage: test_units.sh BUILD_DIR}
source "$(dirname "$0")/lib.sh"

command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed (Debian package systemd)"
units=(recd.service recd.socket recd-admin.socket)
for u in "${units[@]}"; do
	[[ -f $build/systemd/$u ]] || fail "$build/systemd/$u was not configured"
	grep -q '@[a-z]*@' "$build/systemd/$u" && fail "$u keeps an unsubstituted @var@"
done

# What the daemon relies on: notify protocol, watchdog, reload = SIGHUP,
# and the socket names it looks for.
svc=$build/systemd/recd.service
for want in '^Type=notify$' '^NotifyAccess=main$' '^WatchdogSec=' '^ExecReload=/bin/kill -HUP \$MAINPID$' \
	'^User=recd$' '^StateDirectory=recd$' '^SystemCallFilter=@system-service .*io_uring_setup'; do
	grep -qE -- "$want" "$svc" || fail "recd.service lacks /$want/"
done
grep -qx 'FileDescriptorName=main' "$build/systemd/recd.socket" || fail "recd.socket: FileDescriptorName=main"
grep -qx 'FileDescriptorName=admin' "$build/systemd/recd-admin.socket" || fail "recd-admin.socket: FileDescriptorName=admin"
for s in recd.socket recd-admin.socket; do
	grep -qx 'Service=recd.service' "$build/systemd/$s" || fail "$s: Service=recd.service"
done

dest=$tmp/dest
destdir_install "$build" "$dest"
mkdir "$tmp/v"
for u in "${units[@]}"; do
	inst=$(find "$dest" -name "$u" -path '*/systemd/system/*')
	[[ -n $inst ]] || fail "$u not installed into a systemd/system directory"
	cmp -s "$inst" "$build/systemd/$u" || fail "installed $u differs from $build/systemd/$u"
	sed -E "s#^ExecStart=(/[^ ]*) --config (/[^ ]*)#ExecStart=$dest\\1 --config $dest\\2#" "$inst" >"$tmp/v/$u"
done
read -r bin conf < <(unit_exec_paths "$svc")
[[ -x $dest$bin ]] || fail "ExecStart binary $bin is not installed"
[[ -f $dest$conf ]] || fail "config $conf is not installed"

# verify prints warnings (unknown keys, bad values) but still exits 0:
# anything on its output is a failure.
rc=0
(cd "$tmp/v" && systemd-analyze verify --man=no "${units[@]/#/$tmp/v/}") >"$tmp/verify" 2>&1 || rc=$?
[[ $rc == 0 && ! -s $tmp/verify ]] || fail "systemd-analyze verify (exit $rc): $(cat "$tmp/verify")"

systemd-analyze security --offline=true --no-pager "$svc" >"$tmp/security" 2>&1 ||
	true  # exits non-zero above its own default threshold; the score decides
score=$(sed -n 's/.*Overall exposure level for recd.service: \([0-9.]*\).*/\1/p' "$tmp/security")
[[ -n $score ]] || fail "no exposure level in: $(cat "$tmp/security")"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' ||
	fail "exposure $score > 2.0: $(grep '✗' "$tmp/security")"
echo "recd.service exposure: $score (limit 2.0)"
echo "ok: units verified"
