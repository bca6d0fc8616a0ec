#!/bin/sh
# install-deps.sh -- installs the Debian 12 packages that building and
# running mtasts-watch need; with --test, also what the test suite and
# the benchmarks need.  Run as root (or through sudo).
#
# The quickstart runs it without --test: an operator's machine gets no
# compilers for fuzzing, linters or benchmark servers it did not ask for.
set -eu

PKGS="build-essential pkg-config
libssl-dev libcurl4-openssl-dev libunbound-dev libevent-dev libjansson-dev
libcmocka-dev unbound openssl ca-certificates python3
libprotobuf-c-dev protobuf-c-compiler libpq-dev libzmq3-dev postgresql
libczmq-dev libinih-dev libmicrohttpd-dev"

# Fuzzing (clang), formatting, unit checks (systemd-analyze), packages
# (lintian, mandoc, fakeroot), the playbook (ansible-core) and the bench
# farm of the callgrind guard (nginx with its mail module, nsd, valgrind,
# dnsperf, dig, curl).
TEST_PKGS="clang libclang-rt-14-dev clang-format systemd ansible-core
lintian mandoc fakeroot nginx libnginx-mod-mail nsd valgrind dnsperf
bind9-dnsutils curl"

test=0
case ${1:-} in
--test) test=1 ;;
'') ;;
*)
	echo "usage: install-deps.sh [--test]" >&2
	exit 2
	;;
esac

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $PKGS
[ $test = 1 ] || exit 0

# nginx and nsd are started by the tests on 127.0.0.0/8 only; keep their
# packages from starting system-wide services on install (policy-rc.d,
# removed again unless one was there before).
rc=/usr/sbin/policy-rc.d
ours=0
if [ ! -e $rc ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee $rc >/dev/null
	$SUDO chmod 755 $rc
	ours=1
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $TEST_PKGS || {
	[ $ours = 0 ] || $SUDO rm -f $rc
	exit 1
}
[ $ours = 0 ] || $SUDO rm -f $rc
