#!/bin/sh
# run.sh -- the agent benchmarks: builds the agent and the bench tools,
# starts the local farm (bench/probe/farm.py) pinned to CPU 0, runs
# bench/probe/bench.py with the clients pinned to CPU 1, prints each figure
# beside its baseline and writes bench/probe/results.json.  Stops every
# process it started, by pid, even on failure or Ctrl-C.
# Environment: BUILD (build), BINDIR (bin), QUICK=1 (about 2 minutes),
# RUNS (A/B pairs per figure, default 5, QUICK 3), DOMAINS (farm size,
# default 20000, QUICK 5000), TARPIT (tarpit domains, default 4000, QUICK
# 1000), OUT (results file), NO_BUILD=1 (use the binaries as they are),
# ONLY (comma-separated figure keys, see bench.py).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BINDIR=${BINDIR:-bin}
QUICK=${QUICK:-}
if [ -n "$QUICK" ] && [ "$QUICK" != 0 ]; then
	DOMAINS=${DOMAINS:-5000}
	TARPIT=${TARPIT:-1000}
else
	DOMAINS=${DOMAINS:-20000}
	TARPIT=${TARPIT:-4000}
fi
OUT=${OUT:-bench/probe/results.json}
TOOLS=$BUILD/bench/probe

for t in nginx nsd openssl curl dig dnsperf taskset python3; do
	if ! command -v "$t" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$t" ]; then
		echo "bench/probe/run.sh: $t not found (see bench/probe/README.md" \
		    "for the packages)" >&2
		exit 2
	fi
done
if [ ! -f /usr/lib/nginx/modules/ngx_mail_module.so ]; then
	echo "bench/probe/run.sh: nginx mail module missing" \
	    "(apt-get install libnginx-mod-mail)" >&2
	exit 2
fi

if [ -z "${NO_BUILD:-}" ]; then
	make -s BUILD="$BUILD" BINDIR="$BINDIR" "$BINDIR/mtasts-agent" \
	    "$BUILD/libmtasts.a"
	PKGS="openssl libcurl libunbound libevent jansson libprotobuf-c libpq \
libzmq libczmq inih libmicrohttpd"
	CFLAGS_B="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
-Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wformat=2 \
-Wno-format-nonliteral -Wno-format-truncation -O2 -g"
	mkdir -p "$TOOLS"
	# shellcheck disable=SC2086 # word splitting of the flag lists is meant
	cc $CFLAGS_B -Icommon -Iagent -I"$BUILD/gen" \
	    $(pkg-config --cflags $PKGS) -o "$TOOLS/agent_load" \
	    bench/probe/agent_load.c "$BUILD/libmtasts.a" \
	    $(pkg-config --libs $PKGS) -lresolv
	# shellcheck disable=SC2086
	cc $CFLAGS_B -o "$TOOLS/mini_client" bench/probe/mini_client.c \
	    -lssl -lcrypto
fi

farm=$(mktemp -d /tmp/mtfarm.XXXXXX)
cleanup() {
	python3 bench/probe/farm.py down "$farm" >/dev/null 2>&1 || true
	rm -rf "$farm"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

cpu_farm=
if [ "$(nproc)" -ge 2 ]; then
	cpu_farm="--cpu 0"
fi
echo "farm: $DOMAINS domains, $TARPIT tarpit domains (nginx, nsd, tarpit" \
    "${cpu_farm:+pinned to CPU 0})"
# shellcheck disable=SC2086
python3 bench/probe/farm.py up "$farm" --domains "$DOMAINS" \
    --tarpit "$TARPIT" $cpu_farm >/dev/null
# The tarpit figure holds two sockets per pending probe.
ulimit -n 20000 2>/dev/null || true

AGENT="$BINDIR/mtasts-agent" TOOLS="$TOOLS" QUICK="$QUICK" \
    python3 bench/probe/bench.py "$farm/farm.json" "$OUT"
