#!/bin/sh
# install-deps.sh: install the Debian 12 packages recd needs, as root.
#   tools/install-deps.sh          build + run (the demo)
#   tools/install-deps.sh test     build + the whole test suite
# Idempotent: packages already present are not fetched again.
set -eu

build_pkgs="gcc libc6-dev meson ninja-build pkg-config libluajit-5.1-dev luajit liburing-dev
  libjemalloc-dev libck-dev libxxhash-dev libsystemd-dev librdkafka-dev zlib1g-dev"
# python3-numpy: reference computations; python3-xxhash: the experiment
# assignment formula recomputed independently; prometheus: promtool checks the
# /metrics exposition; clang + libclang-rt: the libFuzzer build.
test_pkgs="python3 python3-numpy python3-xxhash prometheus clang libclang-rt-14-dev systemd procps lua-check gnuplot-nox nginx-light libnginx-mod-http-ndk redis-server redis-tools python3-fastapi python3-uvicorn python3-redis"

pkgs=$build_pkgs
[ "${1:-}" = test ] && pkgs="$pkgs $test_pkgs"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing; run this as root (or with sudo)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# prometheus would start its own server on install where systemd runs;
# only promtool is wanted, so a temporary policy-rc.d keeps services down.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -q --no-install-recommends $missing
