#!/bin/sh
# quickstart.sh -- one command from a fresh Debian 12 machine to a running
# probe network: a collector, three agents and PostgreSQL, all on this
# machine, watching the domains given or, without any, a demo world of six
# domains on 127.0.0.0/8 that shows the classic mistakes.  Then prints the
# first report.
#
# Everything it starts runs in the background with its pid file and log in
# one state directory, listens on 127.0.0.0/8 only (PostgreSQL on a unix
# socket only), and is stopped by --stop.  Run --help for the options.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENTS="eu-west:eu us-east:us ap-south:ap"
DEFAULT_HTTP_PORT=8350
DEFAULT_ZMQ_PORT=7350

usage() {
	cat <<EOF
usage: deploy/quickstart.sh [options] [DOMAIN...]
       deploy/quickstart.sh --report | --stop | --help

Starts PostgreSQL, a collector and three agents (eu-west, us-east,
ap-south) on this machine and prints the first report.  With DOMAIN
arguments the agents watch those domains (over the Internet, with this
machine's resolver); without any (or with --demo) they watch a demo world
on 127.0.0.0/8: two healthy domains, an expired certificate, a missing
intermediate, a policy changed without a new id, and a domain that
agent us-east sees differently from the others.

  --demo             the demo world (the default on a new state directory)
  --database CONN    use this PostgreSQL (libpq conninfo) instead of a
                     private cluster in the state directory
  --state DIR        state directory (default \$MTASTS_STATE, else
                     ./quickstart-state in the source tree, or
                     /var/tmp/mtasts-quickstart as root when the tree is
                     private, as under /root)
  --interval SECS    seconds between rounds (default 10 for the demo, 60
                     for your domains; at least 10)
  --http-port N      port of the collector's HTTP API on 127.0.0.1
                     (default $DEFAULT_HTTP_PORT, another free one if taken)
  --no-deps          do not run deploy/install-deps.sh (apt-get)
  --no-build         do not run make (implied when \$BINDIR is set)
  --report           print the report of the running instance
  --stop             stop everything this state directory runs
  -h, --help         this text

Environment: BINDIR (where the binaries are; default bin, and when set no
make is run), MTASTS_STATE.

A run without arguments resumes what the state directory last ran.  A
second run while one is running changes nothing: it says so, adds the
domains given (the agents get them within 30 s) and prints the report
again.  If only some of the processes are still alive, it stops them and
starts everything afresh.  Giving domains to a demo state directory leaves
the demo for them; the other way round takes a new state directory.  The
state directory can be deleted after --stop.
EOF
}

die() {
	echo "quickstart: $*" >&2
	exit 1
}
say() {
	echo "quickstart: $*"
}

# --- arguments ------------------------------------------------------------

demo=0
deps=1
build=1
action=start
database=
state=${MTASTS_STATE:-}
interval=
http_port=
domains=
while [ $# -gt 0 ]; do
	case $1 in
	--demo) demo=1 ;;
	--no-deps) deps=0 ;;
	--no-build) build=0 ;;
	--report) action=report ;;
	--stop) action=stop ;;
	-h | --help)
		usage
		exit 0
		;;
	--database | --state | --interval | --http-port)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--database) database=$2 ;;
		--state) state=$2 ;;
		--interval) interval=$2 ;;
		--http-port) http_port=$2 ;;
		esac
		shift
		;;
	--) ;;
	-*) die "unknown option $1 (see --help)" ;;
	*)
		case $1 in
		*[!A-Za-z0-9.-]* | .* | *..*) die "not a domain name: $1" ;;
		esac
		domains="$domains $1"
		;;
	esac
	shift
done
case ${interval:-10} in
'' | *[!0-9]*) die "--interval takes a number of seconds" ;;
esac
[ "${interval:-10}" -ge 10 ] && [ "${interval:-10}" -le 86400 ] ||
	die "--interval must be between 10 and 86400"
case ${http_port:-1} in
*[!0-9]*) die "--http-port takes a port number" ;;
esac
[ $demo = 0 ] || [ -z "$domains" ] || die "--demo takes no domains"

# The state directory, absolute, without characters that config files and
# conninfo strings would need quoted for.
if [ -z "$state" ]; then
	state=$ROOT/quickstart-state
	# As root, PostgreSQL runs as user postgres, which cannot reach a
	# tree under a private home such as /root: use /var/tmp then.  The
	# test uses "nobody" so it answers the same before and after the
	# postgresql package is installed, and --stop finds the same place.
	if [ "$(id -u)" = 0 ] &&
		! runuser -u nobody -- test -x "$ROOT" 2>/dev/null; then
		state=/var/tmp/mtasts-quickstart
	fi
fi
case $state in
/*) ;;
*) state=$(pwd)/$state ;;
esac
case $state in
*[!A-Za-z0-9/._-]*) die "the state directory path may only hold letters," \
	"digits and / . _ -: $state" ;;
esac
[ ${#state} -le 80 ] || die "state directory path too long (a unix socket" \
	"lives in it): $state"

if [ -n "${BINDIR:-}" ]; then
	build=0
	case $BINDIR in
	/*) bindir=$BINDIR ;;
	*) bindir=$ROOT/$BINDIR ;;
	esac
else
	bindir=$ROOT/bin
fi
AGENT=$bindir/mtasts-agent
COLLECTOR=$bindir/mtasts-collector
REPORT=$bindir/mtasts-report
MIGRATIONS=$ROOT/deploy/sql
RUN=$state/run
LOG=$state/log

# --- small helpers --------------------------------------------------------

# The command line of pid, spaces for NULs; empty when it is gone.
s_cmdline() {
	tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true
}

# s_ours PID MARKER: PID runs and its command line holds MARKER, so it is
# the process we started and not a stranger that inherited the number.
s_ours() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	case $(s_cmdline "$1") in
	*"$2"*) return 0 ;;
	esac
	return 1
}

s_pidof() {
	cat "$RUN/$1.pid" 2>/dev/null || true
}

# What each name's process has in its command line.
s_marker() {
	case $1 in
	collector) echo "$state/collector.conf" ;;
	agent-*) echo "$state/$1.conf" ;;
	world) echo "--dir $state/demo" ;;
	unbound-*) echo "$state/demo/dns-" ;;
	esac
}

s_alive() {
	s_ours "$(s_pidof "$1")" "$(s_marker "$1")"
}

# s_kill NAME: SIGTERM, up to 15 s, then SIGKILL; only our own process.
s_kill() {
	pid=$(s_pidof "$1")
	marker=$(s_marker "$1")
	if s_ours "$pid" "$marker"; then
		kill -TERM "$pid" 2>/dev/null || true
		n=0
		while s_ours "$pid" "$marker" && [ $n -lt 75 ]; do
			sleep 0.2
			n=$((n + 1))
		done
		if s_ours "$pid" "$marker"; then
			say "$1 (pid $pid) ignored SIGTERM; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
		fi
		say "stopped $1 (pid $pid)"
	fi
	rm -f "$RUN/$1.pid"
}

s_port_free() {
	python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

s_any_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

s_psql_bin() {
	p=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V |
		tail -1)
	[ -n "$p" ] || p=$(command -v psql || true)
	echo "$p"
}

# s_sql SQL: unaligned, tuples only, one value per line.
s_sql() {
	"$PSQL" "$DB" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
}

# s_show SQL: a table for people.
s_show() {
	"$PSQL" "$DB" -X -q -P footer=off -v ON_ERROR_STOP=1 -c "$1"
}

# s_spawn NAME CMD...: starts CMD in its own session, stdio to the log,
# and records its pid.  setsid execs in place here (a background child of
# a script is no process group leader), so $! is CMD's own pid.  fd 9 is
# the state lock, which must not outlive this script.
s_spawn() {
	name=$1
	shift
	echo "--- $(date -u +%FT%TZ) quickstart start" >>"$LOG/$name.log"
	setsid "$@" </dev/null >>"$LOG/$name.log" 2>&1 9>&- &
	echo $! >"$RUN/$name.pid"
	# Until the child has exec'd, its command line is this script's.
	n=0
	while ! s_alive "$name" && [ $n -lt 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
}

# s_wait_log NAME OFFSET TEXT SECS: waits until the log holds TEXT after
# byte OFFSET, while the process lives.
s_wait_log() {
	n=0
	while [ $n -lt $(($4 * 5)) ]; do
		if tail -c +$(($2 + 1)) "$LOG/$1.log" 2>/dev/null |
			grep -q -- "$3"; then
			return 0
		fi
		s_alive "$1" || break
		sleep 0.2
		n=$((n + 1))
	done
	echo "quickstart: $1 did not come up; the end of $LOG/$1.log:" >&2
	tail -15 "$LOG/$1.log" >&2 || true
	return 1
}

s_size() {
	wc -c 2>/dev/null <"$1" || echo 0
}

# --- the report -----------------------------------------------------------

# s_has_cmd CMD: this build's mtasts-report has CMD (its usage lists it).
s_has_cmd() {
	"$REPORT" --help 2>&1 | grep -Eq "^ *$1( |\$)|\] $1( |\$)"
}

# s_report_cmd ARGS...: runs mtasts-report ARGS for people (tables, not
# the JSON it writes into a pipe); 2 when this build has no such command
# (so the caller falls back on SQL), 0 otherwise.
s_report_cmd() {
	fmt=
	if "$REPORT" --help 2>&1 | grep -q -- "--format"; then
		fmt="--format table"
	fi
	# shellcheck disable=SC2086
	if out=$("$REPORT" --database "$DB" $fmt "$@" 2>&1); then
		rc=0
	else
		rc=$?
	fi
	if [ $rc = 2 ] && printf '%s\n' "$out" | grep -q '^usage:'; then
		return 2
	fi
	printf '%s\n' "$out"
	return 0
}

s_has_table() {
	[ "$(s_sql "SELECT to_regclass('$1') IS NOT NULL")" = t ]
}

# The latest compared round of every domain, and what it found: the
# agents' findings (which vantages saw each), the comparison's dissent and
# the cross-round findings of the last day.  Used until mtasts-report has
# `status` and `incidents` in this build.
s_findings_sql() {
	hist=
	if s_has_table history_findings; then
		hist="UNION ALL SELECT h.domain, h.severity, h.code, h.subject,
		    'round ' || h.round FROM history_findings h
		    WHERE h.created_at > now() - interval '1 day'"
	fi
	cat <<EOF
WITH last AS (SELECT DISTINCT ON (domain) domain, round FROM round_status
    WHERE state = 'compared' ORDER BY domain, round DESC),
agentf AS (SELECT r.domain, f.severity, f.code, coalesce(f.subject, '')
    AS subject, 'seen by ' || string_agg(DISTINCT a.name, ',') AS why
    FROM last JOIN results r ON r.domain = last.domain
    AND r.round = last.round
    JOIN agents a ON a.id = r.agent_id
    JOIN findings f ON f.result_id = r.id AND f.received_at = r.received_at
    WHERE f.severity IN ('error', 'warning') GROUP BY 1, 2, 3, 4),
x AS (SELECT * FROM agentf
    UNION ALL SELECT v.domain, v.severity, v.code, v.subject,
    'dissent: ' || array_to_string(v.dissenters, ',')
    FROM last JOIN vantage_findings v ON v.domain = last.domain
    AND v.round = last.round WHERE v.severity <> 'info'
    $hist)
SELECT d.name AS domain, coalesce(x.severity, CASE WHEN last.round IS NULL
    THEN 'pending' ELSE 'ok' END) AS severity, coalesce(x.code, '') AS code,
    coalesce(x.subject, '') AS subject, coalesce(x.why, '') AS "where"
FROM domains d LEFT JOIN last ON last.domain = d.name
LEFT JOIN x ON x.domain = d.name
WHERE d.removed_at IS NULL ORDER BY 1, 2, 3, 4
EOF
}

report() {
	echo
	echo "== vantages"
	if ! s_report_cmd agents; then
		s_show "SELECT name AS vantage, region,
		    to_char(last_seen, 'YYYY-MM-DD HH24:MI:SS') AS last_seen,
		    last_committed_seq AS results FROM agents ORDER BY name" ||
			echo "(the database did not answer)"
	fi
	echo
	echo "== status"
	if ! s_report_cmd status; then
		echo "(this mtasts-report has no 'status' yet: the latest" \
		    "compared round of each domain, from the database)"
		s_show "$(s_findings_sql)" ||
			echo "(the database did not answer)"
	fi
	echo
	echo "== open incidents"
	if ! s_report_cmd incidents --open; then
		echo "(this mtasts-report has no 'incidents' yet: see the" \
		    "status above)"
	fi
	# The demo's regional disagreement, as each vantage saw it.
	if [ "$(cat "$state/mode" 2>/dev/null)" = demo ] &&
		s_has_cmd domain; then
		echo
		echo "== split.example, vantage by vantage"
		s_report_cmd domain split.example || true
	fi
}

s_shq() {
	printf "'%s'" "$1"
}

# How to call this script again for this state directory.
s_self() {
	if [ "$state" = "$ROOT/quickstart-state" ]; then
		echo "./deploy/quickstart.sh"
	else
		echo "./deploy/quickstart.sh --state $state"
	fi
}

further() {
	rep=$REPORT
	case $rep in "$ROOT"/*) rep=${rep#"$ROOT"/} ;; esac
	echo
	echo "== look further"
	echo "  export MTASTS_DATABASE=$(s_shq "$DB")"
	# Only the commands this build of mtasts-report has.
	for c in "status::every domain, worst first" \
	    "domain:NAME:one domain, vantage by vantage" \
	    "incidents:--open:what is wrong now" \
	    "expiring::certificates by expiry date" "agents::the vantages"; do
		cmd=${c%%:*}
		rest=${c#*:}
		arg=${rest%%:*}
		if s_has_cmd "$cmd"; then
			printf '  %s %-18s %s\n' "$rep" "$cmd${arg:+ $arg}" \
			    "${rest#*:}"
		fi
	done
	echo "  $rep domains add|remove|list"
	echo "  $(s_psql_bin) \"\$MTASTS_DATABASE\"   the tables" \
	    "(deploy/sql/)"
	hp=$(cat "$state/http_port" 2>/dev/null || true)
	if [ -n "$hp" ]; then
		echo "  HTTP API: http://127.0.0.1:$hp/ (JSON under /api/v1/:" \
		    "status, incidents, agents, expiring, domains/NAME;" \
		    "Prometheus at /metrics)"
	else
		echo "  HTTP API: not in this collector build"
	fi
	echo "  logs: $LOG/"
	if [ -f "$state/demo/world.env" ] && [ "$(cat "$state/mode")" = demo ]
	then
		flip=$(sed -n "s/^DEMO_FLIP_AT='\(.*\)'/\1/p" \
			"$state/demo/world.env")
		if [ -n "$flip" ] && [ "$(date +%s)" -lt "$flip" ]; then
			echo "  demo: at $(date -d "@$flip" +%T)" \
			    "silentchange.example changes its policy but" \
			    "not its id; a round"
			echo "        later, $(s_self) --report" \
			    "shows POLICY_CHANGED_WITHOUT_ID"
		fi
	fi
	echo "  stop everything: $(s_self) --stop"
	echo "  (then delete $state to start afresh)"
}

# --- what runs ------------------------------------------------------------

s_names() {
	names="collector"
	for a in $AGENTS; do
		names="$names agent-${a%%:*}"
	done
	if [ "$(cat "$state/mode" 2>/dev/null || true)" = demo ]; then
		names="$names world"
	fi
	echo "$names"
}

s_own_pg() {
	[ -d "$state/pg" ] && [ ! -f "$state/external-database" ]
}

s_pg_alive() {
	s_own_pg || return 1
	pid=$(sh "$ROOT/deploy/demo/pg.sh" pid "$state/pg" 2>/dev/null) ||
		return 1
	s_ours "$pid" "$state/pg/data"
}

# How many of the processes that should run do: "all", "none" or "some".
s_running() {
	up=0
	down=0
	for n in $(s_names); do
		if s_alive "$n"; then
			up=$((up + 1))
		else
			down=$((down + 1))
		fi
	done
	if s_own_pg; then
		if s_pg_alive; then up=$((up + 1)); else down=$((down + 1)); fi
	fi
	if [ $down = 0 ] && [ $up -gt 0 ]; then
		echo all
	elif [ $up = 0 ]; then
		echo none
	else
		echo some
	fi
}

stop_all() {
	for a in $AGENTS; do
		s_kill "agent-${a%%:*}"
	done
	s_kill collector
	s_kill world
	# The world stops its resolvers; these are for a world that was
	# killed before it could.
	s_kill unbound-main
	s_kill unbound-us
	if s_own_pg; then
		pid=$(sh "$ROOT/deploy/demo/pg.sh" pid "$state/pg" \
		    2>/dev/null || true)
		if ! sh "$ROOT/deploy/demo/pg.sh" stop "$state/pg"; then
			if s_ours "$pid" "$state/pg/data"; then
				kill -TERM "$pid" 2>/dev/null || true
				sleep 2
			fi
		fi
		[ -z "$pid" ] || say "stopped PostgreSQL (pid $pid)"
	fi
}

s_load_db() {
	DB=$(cat "$state/database" 2>/dev/null || true)
	PSQL=$(s_psql_bin)
	[ -n "$PSQL" ] || die "no psql (apt-get install postgresql-client)"
}

# --- --stop and --report --------------------------------------------------

if [ $action = stop ]; then
	[ -d "$state" ] || die "no state directory $state"
	RUN=$state/run
	stop_all
	# Anything else whose command line names the state directory.
	left=
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		case $(s_cmdline "$p") in
		*quickstart.sh*) ;;
		*"$state/"*) left="$left $p" ;;
		esac
	done
	if [ -n "$left" ]; then
		say "still running with $state in the command line:$left"
		exit 1
	fi
	say "everything stopped; $state can be deleted"
	exit 0
fi

if [ $action = report ]; then
	[ -f "$state/database" ] || die "nothing was started in $state"
	[ "$(s_running)" = all ] ||
		die "not running; start it with deploy/quickstart.sh"
	s_load_db
	say "running (state in $state)"
	report
	further
	exit 0
fi

# --- start ----------------------------------------------------------------

if [ $deps = 1 ]; then
	say "installing the Debian packages (deploy/install-deps.sh)"
	sh "$ROOT/deploy/install-deps.sh"
fi
if [ $build = 1 ]; then
	say "building (make)"
	make -C "$ROOT" -j"$(nproc 2>/dev/null || echo 1)"
fi
for b in "$AGENT" "$COLLECTOR" "$REPORT"; do
	[ -x "$b" ] || die "no $b (build with make, or set BINDIR)"
done
for c in python3 openssl unbound setsid flock; do
	command -v "$c" >/dev/null 2>&1 ||
		die "$c is missing (deploy/install-deps.sh installs it)"
done

mkdir -p "$state" "$RUN" "$LOG"
chmod 755 "$state"
# One quickstart at a time per state directory.
exec 9>"$state/lock"
flock -n 9 || die "another quickstart.sh is working on $state"

# Which world: --demo or domains say so; a bare run resumes what the state
# directory had, or starts the demo on a new one.
old_mode=$(cat "$state/mode" 2>/dev/null || true)
if [ $demo = 1 ]; then
	mode=demo
elif [ -n "$domains" ]; then
	mode=domains
else
	mode=${old_mode:-demo}
fi
if [ "$old_mode" = domains ] && [ "$mode" = demo ]; then
	die "$state watches your domains; run the demo in another state" \
	    "directory: MTASTS_STATE=/tmp/mtasts-demo ./deploy/quickstart.sh"
fi

if [ -n "$old_mode" ]; then
	running=$(s_running)
else
	running=none
fi
if [ "$running" = all ] && [ "$old_mode" = "$mode" ]; then
	s_load_db
	say "already running (state in $state); nothing restarted"
	if [ -n "$database$interval$http_port" ]; then
		say "--database, --interval and --http-port take effect after" \
		    "--stop and a new start"
	fi
	if [ -n "$domains" ]; then
		# shellcheck disable=SC2086
		"$REPORT" --database "$DB" --migrations "$MIGRATIONS" \
		    domains add $domains
		say "added:$domains (the agents get them within 30 s)"
	fi
	report
	further
	exit 0
fi
if [ "$running" != none ]; then
	if [ "$running" = all ]; then
		say "switching from the demo to your domains: restarting"
	else
		say "only some processes run: stopping them to start afresh"
	fi
	stop_all
fi

# The interval: given, or the one this world ran with, or the default.
if [ -z "$interval" ] && [ "$old_mode" = "$mode" ]; then
	interval=$(cat "$state/interval" 2>/dev/null || true)
fi
interval=${interval:-$([ "$mode" = demo ] && echo 10 || echo 60)}
echo "$interval" >"$state/interval"
# Interrupted while starting: stop what was started.
trap 'echo; say "interrupted: stopping what was started"; stop_all; exit 130' \
    INT TERM
start_epoch=$(date +%s)
start_round=$((start_epoch / interval))

# The database.
if [ -n "$database" ]; then
	echo "$database" >"$state/database"
	: >"$state/external-database"
elif [ -f "$state/external-database" ]; then
	database=$(cat "$state/database")
else
	say "starting PostgreSQL in $state/pg (unix socket only)"
	sh "$ROOT/deploy/demo/pg.sh" start "$state/pg" >"$state/database" \
	    9>&- || die "no PostgreSQL: see above (another state directory:" \
	    "MTASTS_STATE=/var/tmp/mtasts-quickstart; or --database CONNINFO)"
fi
s_load_db
chmod 600 "$state/database"

# Keys: made once, kept across restarts.
KEYS=$state/keys
if [ ! -f "$KEYS/collector/collector.key_secret" ]; then
	mkdir -p "$KEYS/collector"
	chmod 700 "$KEYS" "$KEYS/collector"
	"$COLLECTOR" keygen "$KEYS/collector" >/dev/null
fi
mkdir -p "$state/allow"
for a in $AGENTS; do
	name=${a%%:*}
	if [ ! -f "$KEYS/$name/agent.key_secret" ]; then
		"$AGENT" keygen "$KEYS/$name" --name "$name" \
		    --region "${a#*:}" >/dev/null
	fi
	cp "$KEYS/$name/agent.key" "$state/allow/$name.key"
done

# The demo world: servers and resolvers on 127.0.0.0/8.
if [ "$mode" = demo ]; then
	echo demo >"$state/mode"
	say "starting the demo world (CAs, two resolvers, policy and mail" \
	    "servers on 127.0.0.0/8)"
	rm -f "$state/demo/world.env"
	off=$(s_size "$LOG/world.log")
	s_spawn world python3 "$ROOT/deploy/demo/world.py" \
	    --dir "$state/demo" --interval "$interval"
	s_wait_log world "$off" "world ready" 60 || {
		stop_all
		exit 1
	}
	# shellcheck disable=SC1091
	. "$state/demo/world.env"
	# shellcheck disable=SC2086
	set -- $DEMO_UNBOUND_PIDS
	echo "$1" >"$RUN/unbound-main.pid"
	echo "$2" >"$RUN/unbound-us.pid"
	want_domains=$DEMO_DOMAINS
	echo "$want_domains" >"$state/demo-domains"
else
	# Leaving the demo: its domains leave the watch list (their history
	# stays in the database).
	if [ "$old_mode" = demo ] && [ -f "$state/demo-domains" ]; then
		# shellcheck disable=SC2046
		"$REPORT" --database "$DB" --migrations "$MIGRATIONS" domains \
		    remove $(cat "$state/demo-domains") >/dev/null || true
	fi
	echo domains >"$state/mode"
	want_domains=$domains
fi
if [ -n "$want_domains" ]; then
	# Before the collector starts, so the first task set has them.
	# shellcheck disable=SC2086
	"$REPORT" --database "$DB" --migrations "$MIGRATIONS" domains add \
	    $want_domains >/dev/null || {
		stop_all
		die "could not add the domains"
	}
fi
ndomains=$(s_sql "SELECT count(*) FROM domains WHERE removed_at IS NULL")
[ "$ndomains" -gt 0 ] || {
	stop_all
	die "no domains to watch: give some (deploy/quickstart.sh DOMAIN...)"
}

# The collector, on loopback ports.
zmq_port=$DEFAULT_ZMQ_PORT
s_port_free $zmq_port || zmq_port=$(s_any_port)
if [ -n "$http_port" ]; then
	s_port_free "$http_port" || {
		stop_all
		die "port $http_port on 127.0.0.1 is taken"
	}
else
	http_port=$DEFAULT_HTTP_PORT
	s_port_free $http_port || http_port=$(s_any_port)
	while [ "$http_port" = "$zmq_port" ]; do
		http_port=$(s_any_port)
	done
fi
s_collector_conf() {
	cat <<EOF
# collector.conf -- written by deploy/quickstart.sh at every start.
[collector]
bind = tcp://127.0.0.1:$zmq_port
secret_key = $KEYS/collector/collector.key_secret
allow_dir = $state/allow
database = $DB
migrations = $MIGRATIONS
interval = $interval
EOF
	# In the demo world no resolver cache stands between a new id and
	# the agents: a policy changed without one is reported after a
	# round, not after the hour real caches are given.
	if [ "$mode" = demo ]; then
		printf 'propagation_window = 1\n'
	fi
	if [ "$1" = http ]; then
		printf '\n[http]\nbind = 127.0.0.1:%s\n' "$http_port"
	fi
}
s_collector_conf http >"$state/collector.conf"
if "$COLLECTOR" --config "$state/collector.conf" -n >"$state/check.log" \
    2>&1; then
	echo "$http_port" >"$state/http_port"
else
	# A collector built before [http] existed refuses the section.
	s_collector_conf none >"$state/collector.conf"
	if ! "$COLLECTOR" --config "$state/collector.conf" -n \
	    >>"$state/check.log" 2>&1; then
		cat "$state/check.log" >&2
		stop_all
		die "the collector configuration is refused"
	fi
	rm -f "$state/http_port"
fi
off=$(s_size "$LOG/collector.log")
s_spawn collector "$COLLECTOR" --config "$state/collector.conf"
s_wait_log collector "$off" "ready bind=" 30 || {
	stop_all
	exit 1
}

for a in $AGENTS; do
	name=${a%%:*}
	mkdir -p "$state/spool/$name"
	{
		echo "# agent-$name.conf -- written by deploy/quickstart.sh."
		echo "[agent]"
		echo "name = $name"
		echo "region = ${a#*:}"
		echo "secret_key = $KEYS/$name/agent.key_secret"
		echo "collector_key = $KEYS/collector/collector.key"
		echo "endpoint = tcp://127.0.0.1:$zmq_port"
		echo "spool_dir = $state/spool/$name"
		echo "concurrency = 16"
		if [ "$mode" = demo ]; then
			if [ "$name" = us-east ]; then
				echo "resolver = $DEMO_RESOLVER_US"
			else
				echo "resolver = $DEMO_RESOLVER"
			fi
			echo "ca_file = $DEMO_CA_FILE"
			echo "https_port = $DEMO_HTTPS_PORT"
			echo "smtp_port = $DEMO_SMTP_PORT"
			echo "timeout = 8"
		fi
	} >"$state/agent-$name.conf"
	"$AGENT" run --config "$state/agent-$name.conf" -n \
	    >"$state/check.log" 2>&1 || {
		cat "$state/check.log" >&2
		stop_all
		die "agent $name: configuration refused"
	}
	eval "off_$(echo "$name" | tr - _)=$(s_size "$LOG/agent-$name.log")"
	s_spawn "agent-$name" "$AGENT" run --config "$state/agent-$name.conf"
done
for a in $AGENTS; do
	name=${a%%:*}
	eval "off=\$off_$(echo "$name" | tr - _)"
	s_wait_log "agent-$name" "$off" "ready endpoint=" 30 || {
		stop_all
		exit 1
	}
done
# Everything is up: from here on an interrupt leaves it running.
trap 'echo; say "left running: deploy/quickstart.sh --report or --stop"
exit 130' INT TERM

# The HTTP API, when this collector build serves one.
if [ -f "$state/http_port" ]; then
	if ! python3 -c 'import socket, sys, time
for _ in range(20):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)' "$http_port"; then
		rm -f "$state/http_port"
	fi
fi

echo
say "running, state in $state"
if s_own_pg; then
	echo "  PostgreSQL      pid $(sh "$ROOT/deploy/demo/pg.sh" pid \
	    "$state/pg"), socket in $state/pg, no TCP"
else
	echo "  PostgreSQL      $DB (yours)"
fi
echo "  collector       pid $(s_pidof collector)," \
    "tcp://127.0.0.1:$zmq_port$( [ -f "$state/http_port" ] &&
	echo ", http://127.0.0.1:$http_port/")"
for a in $AGENTS; do
	name=${a%%:*}
	printf '  agent %-9s pid %s, region %s\n' "$name" \
	    "$(s_pidof "agent-$name")" "${a#*:}"
done
if [ "$mode" = demo ]; then
	echo "  demo world      pid $(s_pidof world): resolvers" \
	    "$DEMO_RESOLVER (us-east: $DEMO_RESOLVER_US), policy hosts" \
	    "on port $DEMO_HTTPS_PORT, MX on port $DEMO_SMTP_PORT"
	echo "  demo domains    $DEMO_DOMAINS"
fi
echo "  every $interval s each agent probes every domain"

# The first round that all three vantages delivered and the collector
# compared; then, when an incident engine folds rounds, until it has
# folded that round (it does so within moments, or never in a build
# without one).
echo
say "waiting for the first round compared across the three vantages"
limit=$((start_epoch + 90 + 3 * interval))
pending_sql="SELECT count(*) FROM domains d WHERE d.removed_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM round_status s WHERE s.domain = d.name
    AND s.round >= $start_round AND s.vantages >= 3
    AND s.state = 'compared')"
ok=0
while [ "$(date +%s)" -lt $limit ]; do
	if [ "$(s_sql "$pending_sql" 2>/dev/null || echo x)" = 0 ]; then
		ok=1
		break
	fi
	for n in $(s_names); do
		if ! s_alive "$n"; then
			tail -5 "$LOG/$n.log" >&2 || true
			stop_all
			die "$n died; see $LOG/$n.log"
		fi
	done
	sleep 1
done
if [ $ok = 1 ] && [ "$(s_sql "SELECT count(*) FROM information_schema.columns
    WHERE table_name = 'round_status' AND column_name = 'folded_at'")" = 1 ]
then
	folded_sql="SELECT count(*) FROM round_status WHERE round >=
	    $start_round AND state = 'compared' AND folded_at IS NULL
	    AND vantages >= 3"
	any_sql="SELECT count(*) FROM round_status WHERE folded_at IS NOT NULL"
	n=0
	while [ $n -lt $((2 * interval)) ]; do
		[ "$(s_sql "$folded_sql")" = 0 ] && break
		[ $n -ge 5 ] && [ "$(s_sql "$any_sql")" = 0 ] && break
		sleep 1
		n=$((n + 1))
	done
fi
if [ $ok = 1 ]; then
	say "first round in after $(($(date +%s) - start_epoch)) s"
else
	echo "quickstart: no round compared across three vantages yet;" \
	    "what is there so far (logs in $LOG):" >&2
fi
report
further
[ $ok = 1 ]
