#!/bin/sh
# check_callgrind.sh -- the CI-stable performance guard: the agent's
# instructions per probe, counted by valgrind --tool=callgrind, against the
# committed baseline in tests/perf/callgrind_baseline.  Instruction counts,
# not time, so a busy machine does not move them.
#
# It starts the bench farm (bench/probe/farm.py: nsd, nginx with the mail
# module) on 127.77.0.0/24, runs `mtasts-agent probe` over SMALL and over
# LARGE domains (in parallel, one per core) under callgrind, and takes
# (I(LARGE) - I(SMALL)) / (LARGE - SMALL), which cancels start-up and
# exit.  More than TOLERANCE percent over the baseline fails.  A sanitized
# agent is skipped (ASan changes every count) and counted as passed.
# Closes with "perf: N passed, M failed".
#
# Environment: BINDIR (bin), SMALL (100), LARGE (300), TOLERANCE (10),
# UPDATE_BASELINE=1 writes the measured figure as the new baseline.
# Needs valgrind, nginx, libnginx-mod-mail, nsd, openssl, python3.
set -u
cd "$(dirname "$0")/../.." || exit 2
BINDIR=${BINDIR:-bin}
AGENT=$BINDIR/mtasts-agent
SMALL=${SMALL:-100}
LARGE=${LARGE:-300}
TOLERANCE=${TOLERANCE:-10}
BASELINE=tests/perf/callgrind_baseline
CHECK_SUITE=perf
. tests/lib/checklib.sh

if [ ! -x "$AGENT" ]; then
	fail "callgrind: $AGENT not built"
	finish
	exit
fi
# ASan and UBSan change every instruction count: nothing to compare.
if grep -qa -e __asan_init -e __ubsan_handle "$AGENT" ||
    ldd "$AGENT" 2>/dev/null | grep -q -e libasan -e libubsan; then
	echo "skip callgrind: $AGENT is built with a sanitizer;" \
	    "instruction counts are only compared for the plain build"
	pass "callgrind: skipped for a sanitized binary"
	finish
	exit
fi
missing=
for t in valgrind nginx nsd openssl python3; do
	if ! command -v "$t" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$t" ]; then
		missing="$missing $t"
	fi
done
[ -f /usr/lib/nginx/modules/ngx_mail_module.so ] ||
    missing="$missing libnginx-mod-mail"
if [ -n "$missing" ]; then
	fail "callgrind: missing:$missing (deploy/install-deps.sh)"
	finish
	exit
fi

tmp=$(mktemp -d /tmp/mtperf.XXXXXX)
cleanup() {
	python3 bench/probe/farm.py down "$tmp/farm" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

if ! python3 bench/probe/farm.py up "$tmp/farm" --domains "$LARGE" \
    >"$tmp/farm.out" 2>&1; then
	cat "$tmp/farm.out"
	fail "callgrind: the farm did not start"
	finish
	exit
fi
farm_get() {
	python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" \
	    "$tmp/farm/farm.json" "$1"
}
resolver=$(farm_get resolver)
https_port=$(farm_get https_port)
smtp_port=$(farm_get smtp_port)
ca=$(farm_get ca_file)

# Text output, concurrency 16: what one agent round does, minus nothing.
run_cg() { # N OUT
	head -n "$1" "$tmp/farm/domains.txt" >"$tmp/list$1"
	valgrind --tool=callgrind --callgrind-out-file="$tmp/cg$1.out" \
	    "$AGENT" probe --resolver "$resolver" --ca-file "$ca" \
	    --https-port "$https_port" --smtp-port "$smtp_port" \
	    --timeout 60 --concurrency 16 -f "$tmp/list$1" \
	    >"$tmp/probe$1.out" 2>"$2"
	echo $? >"$tmp/rc$1"
}
start=$(date +%s)
run_cg "$SMALL" "$tmp/vg$SMALL.err" &
pid_small=$!
run_cg "$LARGE" "$tmp/vg$LARGE.err" &
pid_large=$!
wait "$pid_small"
wait "$pid_large"
secs=$(($(date +%s) - start))

count() { # N -> instructions
	sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/vg$1.err" | tail -1
}
ok_all=1
for n in "$SMALL" "$LARGE"; do
	rc=$(cat "$tmp/rc$n")
	clean=$(grep -c ': OK$' "$tmp/probe$n.out")
	if [ "$rc" != 0 ] || [ "$clean" != "$n" ]; then
		tail -5 "$tmp/vg$n.err"
		grep -v ': OK$' "$tmp/probe$n.out" | head -10
		fail "callgrind: $n probes: exit $rc, $clean of $n clean"
		ok_all=0
	fi
done
[ "$ok_all" = 1 ] && pass "callgrind: $SMALL and $LARGE probes all clean"
i_small=$(count "$SMALL")
i_large=$(count "$LARGE")
if [ -z "$i_small" ] || [ -z "$i_large" ]; then
	fail "callgrind: no instruction count from valgrind"
	finish
	exit
fi
per=$(((i_large - i_small) / (LARGE - SMALL)))
echo "callgrind: $i_small instructions for $SMALL probes, $i_large for" \
    "$LARGE: $per per probe (${secs}s)"

if [ -n "${UPDATE_BASELINE:-}" ]; then
	{
		echo "# Instructions per probe of mtasts-agent (plain -O2 build),"
		echo "# from tests/perf/check_callgrind.sh: (I($LARGE) - I($SMALL))"
		echo "# / $((LARGE - SMALL)) against the bench farm.  Regenerate with"
		echo "# UPDATE_BASELINE=1 sh tests/perf/check_callgrind.sh"
		echo "# after a change that is meant to cost more, and say why in"
		echo "# the commit."
		echo "instructions_per_probe $per"
	} >"$BASELINE"
	pass "callgrind: baseline written ($per)"
	finish
	exit
fi
base=$(sed -n 's/^instructions_per_probe \([0-9]*\)$/\1/p' "$BASELINE" \
    2>/dev/null)
if [ -z "$base" ]; then
	fail "callgrind: no baseline in $BASELINE"
	finish
	exit
fi
limit=$((base + base * TOLERANCE / 100))
pct=$(((per - base) * 1000 / base))
sign=
[ "$pct" -ge 0 ] && sign=+
delta="$sign$((pct / 10)).$(((pct < 0 ? -pct : pct) % 10))%"
if [ "$per" -le "$limit" ]; then
	pass "callgrind: $per instructions per probe, baseline $base ($delta, limit +$TOLERANCE%)"
	# Much cheaper than the baseline: the guard would miss a regression
	# that only gives the gain back.
	if [ "$per" -lt $((base * 80 / 100)) ]; then
		echo "note: more than 20% under the baseline; refresh it with" \
		    "UPDATE_BASELINE=1"
	fi
else
	fail "callgrind: $per instructions per probe, baseline $base ($delta, limit +$TOLERANCE%)"
fi
finish
