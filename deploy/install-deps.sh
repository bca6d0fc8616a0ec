#!/bin/sh
# install-deps.sh -- installs the Debian 12 packages that building and
# testing mtasts-watch need.  Run as root (or through sudo).
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev
libssl-dev libcurl4-openssl-dev libunbound-dev libevent-dev libjansson-dev
libcmocka-dev unbound openssl ca-certificates python3 clang-format
libprotobuf-c-dev protobuf-c-compiler libpq-dev libzmq3-dev postgresql
libczmq-dev libinih-dev libmicrohttpd-dev systemd ansible-core lintian mandoc fakeroot"

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $PKGS
