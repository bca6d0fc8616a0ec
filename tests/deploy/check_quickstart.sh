#!/bin/sh
# check_quickstart.sh -- runs `deploy/quickstart.sh --no-deps --demo` in a
# temporary state directory and checks what a first-time user sees: the
# three vantages and the demo's clean domains, expired certificate,
# missing intermediate and regional disagreement in the first report, a
# second run that changes nothing, the policy changed without a new id a
# few rounds later, and `--stop` leaving no process behind.  Everything it
# starts listens on 127.0.0.0/8 only.  Closes with "quickstart: N passed,
# M failed".
#
# Environment: BINDIR (the binaries to use, default bin; the test never
# builds), QUICKSTART_SKIP_HISTORY=1 skips the POLICY_CHANGED_WITHOUT_ID
# check (it needs the collector's incident engine), MTASTS_KEEP=1 keeps the
# state directory.
set -u
cd "$(dirname "$0")/../.." || exit 2
BINDIR=${BINDIR:-bin}
export BINDIR
CHECK_SUITE=quickstart
. tests/lib/checklib.sh

for b in mtasts-agent mtasts-collector mtasts-report; do
	if [ ! -x "$BINDIR/$b" ]; then
		fail "binaries" "no $BINDIR/$b (make first, or set BINDIR)"
		finish; exit
	fi
done

state=$(mktemp -d /tmp/qst.XXXXXX)
out=$state.out
QS="sh deploy/quickstart.sh --no-deps --state $state"
cleanup() {
	$QS --stop >/dev/null 2>&1 || true
	if [ -n "${MTASTS_KEEP:-}" ]; then
		echo "info kept $state and $out"
	else
		rm -rf "$state" "$out" "$state.out2" "$state.rep"
	fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT
t0=$(date +%s)

# --- the first run --------------------------------------------------------

timeout 180 $QS --demo >"$out" 2>&1
rc=$?
t1=$(date +%s)
check_why "first run exits 0" "rc=$rc; $(tail -20 "$out" | tr '\n' '|')" \
    [ $rc = 0 ]
echo "info first report after $((t1 - t0)) s"

# The report is what follows "== vantages".
report=$(sed -n '/^== vantages/,$p' "$out")
has() {
	printf '%s\n' "$report" | grep -q -- "$1"
}
# has_on_line A B: a line of the report holds both.
has_on_line() {
	printf '%s\n' "$report" | grep -- "$1" | grep -q -- "$2"
}
check_why "report printed" "$(tail -5 "$out" | tr '\n' '|')" has "== status"
for v in eu-west us-east ap-south; do
	check_why "report: vantage $v" "not in the report" has "$v"
done
for d in clean.example tidy.example; do
	check_why "report: clean domain $d" "absent, or with a finding" \
	    sh -c 'printf "%s\n" "$1" | grep -q "$2" &&
		! printf "%s\n" "$1" | grep "$2" |
		grep -Eq "(CERT|POLICY|VANTAGE|MX|STS|TLS|DNS)_[A-Z_]+"' \
	    sh "$report" "$d"
done
check_why "report: expired.example CERT_EXPIRED" "not in the report" \
    has_on_line CERT_EXPIRED expired.example
check_why "report: nochain.example CERT_CHAIN_INCOMPLETE" "not in the report" \
    has_on_line CERT_CHAIN_INCOMPLETE nochain.example
check_why "report: split.example VANTAGE_CHAIN_MISMATCH" "not in the report" \
    has_on_line VANTAGE_CHAIN_MISMATCH split.example
check_why "report: split.example VANTAGE_DNS_MISMATCH" "not in the report" \
    has_on_line VANTAGE_DNS_MISMATCH split.example
check_why "report: us-east is the dissenter" "not in the report" \
    has_on_line VANTAGE_CHAIN_MISMATCH us-east
check_why "output says how to stop" "no --stop hint" grep -q -- "--stop" "$out"

# Every process of ours, by pid file, and PostgreSQL's postmaster.
pids() {
	for f in "$state"/run/*.pid; do
		[ -f "$f" ] && cat "$f"
	done
	[ -f "$state/pg/data/postmaster.pid" ] &&
		head -1 "$state/pg/data/postmaster.pid"
}
first_pids=$(pids | sort -n | tr '\n' ' ')
check_why "pid files: 3 agents, collector, world, 2 resolvers, PostgreSQL" \
    "$first_pids" [ "$(echo "$first_pids" | wc -w)" = 8 ]

# What our processes listen on, from /proc/net: nothing but loopback.  The
# agents are clients only: their resolver's unconnected UDP sockets are
# bound to the wildcard address for a moment, and are no listeners.
listen_check() {
	servers=
	for f in "$state"/run/*.pid; do
		case $f in */agent-*) continue ;; esac
		servers="$servers $(cat "$f")"
	done
	servers="$servers $(head -1 "$state/pg/data/postmaster.pid")"
	# shellcheck disable=SC2086
	python3 - $servers <<'EOF'
import os, sys
inodes = {}
for pid in sys.argv[1:]:
    try:
        for fd in os.listdir("/proc/%s/fd" % pid):
            try:
                t = os.readlink("/proc/%s/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes[t[8:-1]] = pid
    except OSError:
        pass
bad, n = [], 0
for proto in ("tcp", "tcp6", "udp", "udp6"):
    try:
        lines = open("/proc/net/" + proto).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        local, st, inode = f[1], f[3], f[9]
        if inode not in inodes:
            continue
        if proto.startswith("tcp") and st != "0A":  # LISTEN only
            continue
        if proto.startswith("udp") and f[2].split(":")[0].strip("0") != "":
            continue  # a connected UDP socket is a client
        n += 1
        addr = local.split(":")[0]
        if len(addr) == 8:
            ok = addr[6:8] == "7F"  # little-endian 127.x.x.x
        else:
            ok = addr == "00000000000000000000000001000000"  # ::1
        if not ok:
            bad.append("%s %s pid %s" % (proto, local, inodes[inode]))
if bad or n == 0:
    print("listening sockets: %d, not on loopback: %s" % (n, bad))
    sys.exit(1)
EOF
}
why=$(listen_check 2>&1)
check_why "everything listens on 127.0.0.0/8 only" "$why" [ -z "$why" ]

# The HTTP API, when this collector build serves one (the quickstart
# writes its port to the state directory only when it answers).
http_get() { # PORT PATH: prints the status code and the body's length
	python3 - "$1" "$2" <<'EOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", sys.argv[2])
r = c.getresponse()
body = r.read()
print(r.status, len(body))
EOF
}
if [ -f "$state/http_port" ]; then
	hp=$(cat "$state/http_port")
	got=$(http_get "$hp" /api/v1/status 2>&1)
	check_why "HTTP API on 127.0.0.1:$hp answers /api/v1/status" "$got" \
	    [ "${got%% *}" = 200 ]
	got=$(http_get "$hp" /metrics 2>&1)
	check_why "HTTP API /metrics" "$got" [ "${got%% *}" = 200 ]
else
	skip "HTTP API" "not served by this collector build"
fi

# --- a second run while the first is running ------------------------------

timeout 60 $QS >"$state.out2" 2>&1
rc=$?
check_why "second run exits 0" "rc=$rc $(tail -5 "$state.out2" | tr '\n' '|')" \
    [ $rc = 0 ]
check_why "second run says it is running" "$(head -3 "$state.out2")" \
    grep -q "already running" "$state.out2"
check_why "second run prints the report again" "no report" \
    grep -q CERT_EXPIRED "$state.out2"
second_pids=$(pids | sort -n | tr '\n' ' ')
check_why "second run restarted nothing" "$first_pids -> $second_pids" \
    [ "$first_pids" = "$second_pids" ]
alive=0
for p in $first_pids; do
	[ -d "/proc/$p" ] && alive=$((alive + 1))
done
check_why "every process still alive after the second run" "$alive of 8" \
    [ $alive = 8 ]

# --- across rounds: the policy changed without a new id -------------------

if [ "${QUICKSTART_SKIP_HISTORY:-}" = 1 ]; then
	skip "report: silentchange.example POLICY_CHANGED_WITHOUT_ID" \
	    "QUICKSTART_SKIP_HISTORY=1"
else
	flip=$(sed -n "s/^DEMO_FLIP_AT='\(.*\)'/\1/p" "$state/demo/world.env")
	deadline=$((${flip:-$(date +%s)} + 45))
	found=0
	while [ "$(date +%s)" -lt $deadline ]; do
		if $QS --report >"$state.rep" 2>&1 &&
			grep "POLICY_CHANGED_WITHOUT_ID" "$state.rep" |
			grep -q silentchange.example; then
			found=1
			break
		fi
		sleep 3
	done
	check_why "report: silentchange.example POLICY_CHANGED_WITHOUT_ID" \
	    "not reported by $(date -d "@$deadline" +%T) (flip at $(date -d \
	    "@${flip:-0}" +%T)); QUICKSTART_SKIP_HISTORY=1 skips this" \
	    [ $found = 1 ]
fi

# --- --stop ---------------------------------------------------------------

timeout 90 $QS --stop >"$state.out2" 2>&1
rc=$?
check_why "--stop exits 0" "rc=$rc $(tr '\n' '|' <"$state.out2")" [ $rc = 0 ]
left=
for p in $first_pids; do
	if [ -n "$(tr -d '\0' 2>/dev/null <"/proc/$p/cmdline")" ]; then
		left="$left $p"
	fi
done
check_why "--stop: every started process is gone" "left:$left" [ -z "$left" ]
left=
for d in /proc/[0-9]*; do
	case $(tr '\0' ' ' 2>/dev/null <"$d/cmdline") in
	*"$state"/*) left="$left ${d#/proc/}" ;;
	esac
done
check_why "--stop: no process names the state directory" \
    "$left" [ -z "$left" ]
logs=$(grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" \
    "$state"/log/*.log 2>/dev/null | tr '\n' ' ')
check_why "no sanitizer report in the logs" "$logs" [ -z "$logs" ]
echo "info took $(($(date +%s) - t0)) s"
finish
