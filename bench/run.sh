#!/bin/sh
# run.sh -- collector ingest rate against psql \copy of the same rows.
#
# Usage: sh bench/run.sh            (make bench builds what it needs first)
# Environment: N (results per run, default 5000), RUNS (ingest and \copy
# pairs, run alternately, default 5),
# BUILD, BINDIR (as in the Makefile), PROFILE=1 (also load
# pg_stat_statements and print what the collector's statements cost).
#
# Starts a private PostgreSQL on a unix socket (tests/lib/pg_start.sh),
# makes a collector key and one agent key, and then RUNS times a pair:
# a fresh schema, a collector on tcp://127.0.0.1 (batch 100, credit 256)
# writing into it and bench/ingest_load sending it N results; then the
# rows the first run wrote (exported once with \copy) copied back with
# \copy into a fresh schema made by the same migration (same tables,
# partitions, indexes and foreign keys).  The ratio is the median of the
# pairs' ratios, the other figures medians; they are printed and written
# to bench/results.json.  PostgreSQL runs on CPU 0 and the clients on
# CPU 1 when there are two.  Every process started here is killed by its
# pid on the way out, even on failure.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
BUILD=${BUILD:-build}
BINDIR=${BINDIR:-bin}
N=${N:-5000}
RUNS=${RUNS:-5}
PROFILE=${PROFILE:-0}
LOAD=$BUILD/bench/ingest_load
COLLECTOR=$BINDIR/mtasts-collector
OUT=bench/results.json
BATCH=${BATCH:-100}
CREDIT=${CREDIT:-256}
# In the order the collector writes them; agents is copied untimed first.
TABLES="results result_seqs certificates dns_observations \
policy_observations host_observations chain_certs findings"

die() {
	echo "bench: $*" >&2
	exit 1
}

for f in "$LOAD" "$COLLECTOR"; do
	[ -x "$f" ] || die "$f is missing; run make bench"
done
case $N in '' | *[!0-9]*) die "N must be a number" ;; esac
case $RUNS in '' | *[!0-9]* | 0) die "RUNS must be a number > 0" ;; esac

work=$(mktemp -d /tmp/mtb.XXXXXX) || die "mktemp failed"
# The server runs as another user when we are root: it must reach pgdir.
chmod 711 "$work"
pgdir=$work/pg
pg_pid=
coll_pid=
load_pid=

# Stops a process we started: SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	_n=0
	while kill -0 "$1" 2>/dev/null && [ $_n -lt 100 ]; do
		sleep 0.1
		_n=$((_n + 1))
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

cleanup() {
	stop_pid "$load_pid"
	stop_pid "$coll_pid"
	if [ -d "$pgdir" ]; then
		sh tests/lib/pg_stop.sh "$pgdir" >/dev/null 2>&1
	fi
	# pg_ctl stop signals the postmaster by the pid it wrote; make sure.
	if [ -n "$pg_pid" ] && kill -0 "$pg_pid" 2>/dev/null; then
		kill -KILL "$pg_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# The middle value of the numbers on stdin (the lower middle when even).
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# key=value from a line of ingest_load output.
field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# CPU seconds (user + system) a process used so far.
cpu_s() {
	awk -v hz="$(getconf CLK_TCK)" \
	    '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' \
	    "/proc/$1/stat" 2>/dev/null || echo 0
}

# The same for several processes together.
cpu_sum() {
	t=0
	for p in "$@"; do
		t=$(echo "$t $(cpu_s "$p")" | awk '{ printf "%.2f", $1 + $2 }')
	done
	echo "$t"
}

# As the agent benchmarks do: the server (PostgreSQL: the postmaster and
# every backend it forks) on one core, the client under test (the
# collector, the load generator, psql for the baseline) on the other, so
# that neither figure depends on how the scheduler mixes them.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	PIN_SERVER="taskset -c 0"
	PIN_CLIENT="taskset -c 1"
else
	PIN_SERVER=
	PIN_CLIENT=
fi

t_start=$(date +%s)
load_start=$(cut -d" " -f1 /proc/loadavg)
echo "bench: N=$N RUNS=$RUNS batch=$BATCH credit=$CREDIT" \
    "loadavg=$load_start" \
    "cpus=$(nproc) pinned=${PIN_SERVER:+server:0,client:1} work=$work"

pgenv=$($PIN_SERVER sh tests/lib/pg_start.sh "$pgdir" \
    2>"$work/pg_start.log") ||
	{ cat "$work/pg_start.log" >&2; die "PostgreSQL did not start"; }
eval "$pgenv"
pg_pid=$(head -1 "$pgdir/data/postmaster.pid")
if [ "$PROFILE" = 1 ]; then
	echo "shared_preload_libraries = 'pg_stat_statements'" \
	    >>"$pgdir/data/postgresql.conf"
	$PIN_SERVER sh "$pgdir/restart.sh" ||
		die "restart with pg_stat_statements failed"
	pg_pid=$(head -1 "$pgdir/data/postmaster.pid")
fi
PG=$MTASTS_TEST_PG
if [ "$PROFILE" = 1 ]; then
	psql "$PG" -X -q -v ON_ERROR_STOP=1 \
	    -c "CREATE EXTENSION pg_stat_statements" ||
		die "CREATE EXTENSION pg_stat_statements failed"
fi

q() {
	$PIN_CLIENT psql "$PG" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

keys=$work/keys
mkdir -p "$keys/allow" "$keys/collector" "$keys/agent"
"$COLLECTOR" keygen "$keys/collector" >/dev/null 2>"$work/keygen.log" &&
	"$BINDIR/mtasts-agent" keygen "$keys/agent" --name bench-1 \
	    --region bench >/dev/null 2>>"$work/keygen.log" ||
	{ cat "$work/keygen.log" >&2; die "keygen failed"; }
cp "$keys/agent/agent.key" "$keys/allow/bench-1.key"

# --- psql \copy of the same rows --------------------------------------------

# The rows the first ingest run wrote, exported once for every \copy run.
export_rows() {
	src=ingest_1
	rows_total=0
	for t in agents $TABLES; do
		q -c "\\copy (SELECT * FROM $src.$t) TO '$work/$t.copy'" ||
			die "export of $t failed"
		if [ "$t" != agents ]; then
			rows_total=$((rows_total + $(wc -l <"$work/$t.copy")))
		fi
	done
	day=$(q -c "SELECT (min(received_at) AT TIME ZONE 'UTC')::date
	    FROM $src.results")
}

# copy_run K: the exported rows copied into a fresh schema copy_K made by
# the same migration (same tables, partitions, indexes, foreign keys).
copy_run() {
	schema=copy_$1
	q -c "CREATE SCHEMA $schema" &&
		$PIN_CLIENT psql "$PG options='-csearch_path=$schema'" -X -q \
		    -v ON_ERROR_STOP=1 -f deploy/sql/001_init.sql >/dev/null &&
		q -c "SET search_path = $schema" \
		    -c "SELECT mtastswatch_ensure_partitions('$day', 5)" \
		    -c "\\copy agents FROM '$work/agents.copy'" >/dev/null ||
		die "making $schema failed"
	{
		printf 'SET search_path = %s;\n' "$schema"
		stamp='SELECT extract(epoch FROM clock_timestamp()) AS %s \\gset\n'
		# shellcheck disable=SC2059 # the stamp is the format
		printf "$stamp" t0
		for t in $TABLES; do
			printf '\\copy %s FROM %s\n' "$t" "'$work/$t.copy'"
			# shellcheck disable=SC2059
			[ "$t" = results ] && printf "$stamp" t1
		done
		# shellcheck disable=SC2059
		printf "$stamp" t2
		printf '\\echo :t0 :t1 :t2\n'
	} >"$work/copy-$1.sql"
	times=$(q -f "$work/copy-$1.sql") || die "\\copy into $schema failed"
	echo "$times" | awk -v n="$N" -v rows="$rows_total" '{
		printf "results_s=%.4f results_rows_per_s=%.1f all_s=%.4f " \
		    "all_results_per_s=%.1f all_rows_per_s=%.1f\n",
		    $2 - $1, n / ($2 - $1), $3 - $1, n / ($3 - $1),
		    rows / ($3 - $1) }' >>"$work/copy.txt"
	echo "copy $1: $(tail -1 "$work/copy.txt")"
}

# --- collector ingest ------------------------------------------------------

: >"$work/ingest.txt"
: >"$work/copy.txt"
i=1
while [ $i -le "$RUNS" ]; do
	schema=ingest_$i
	conninfo="$PG options='-csearch_path=$schema'"
	q -c "CREATE SCHEMA $schema" || die "CREATE SCHEMA failed"
	cat >"$work/collector-$i.conf" <<EOF
[collector]
bind = tcp://127.0.0.1:*
secret_key = $keys/collector/collector.key_secret
allow_dir = $keys/allow
database = $conninfo
migrations = $ROOT/deploy/sql
interval = 300
credit = $CREDIT
batch = $BATCH
EOF
	log=$work/collector-$i.log
	: >"$log"
	# taskset execs the collector: $! is the collector's pid.
	$PIN_CLIENT "$COLLECTOR" --config "$work/collector-$i.conf" 2>"$log" &
	coll_pid=$!
	endpoint=
	w=0
	while [ $w -lt 300 ]; do
		endpoint=$(sed -n 's/.*ready bind=\([^ ]*\).*/\1/p' "$log")
		[ -n "$endpoint" ] && break
		kill -0 "$coll_pid" 2>/dev/null || break
		sleep 0.1
		w=$((w + 1))
	done
	[ -n "$endpoint" ] || { cat "$log" >&2; die "collector not ready"; }
	[ "$PROFILE" = 1 ] && q -c "SELECT pg_stat_statements_reset()" >/dev/null
	# The collector's own backends (its main thread's and its writer's):
	# the only other clients connected.
	backends=$(q -c "SELECT pid FROM pg_stat_activity WHERE backend_type =
	    'client backend' AND pid <> pg_backend_pid()" | tr '\n' ' ')
	c0=$(cpu_s "$coll_pid")
	b0=$(cpu_sum $backends)
	$PIN_CLIENT "$LOAD" load "$endpoint" "$keys/collector/collector.key" \
	    "$keys/agent/agent.key_secret" "$N" >"$work/load-$i.out" \
	    2>"$work/load-$i.err" &
	load_pid=$!
	wait "$load_pid"
	rc=$?
	load_pid=
	c1=$(cpu_s "$coll_pid")
	b1=$(cpu_sum $backends)
	[ $rc -eq 0 ] || {
		cat "$work/load-$i.err" "$log" >&2
		die "ingest_load exited $rc"
	}
	line=$(cat "$work/load-$i.out")
	stored=$(q -c "SELECT count(*) FROM $schema.results")
	[ "$stored" = "$N" ] || die "run $i: $stored results stored, not $N"
	if [ "$PROFILE" = 1 ]; then
		echo "--- run $i: the collector's statements (pg_stat_statements)"
		q -F ' | ' -c "SELECT calls, round(calls::numeric / $N, 2)
		    AS per_result, round(total_exec_time::numeric, 0) AS ms,
		    left(regexp_replace(query, '\\s+', ' ', 'g'), 60)
		    FROM pg_stat_statements WHERE query NOT ILIKE
		    '%pg_stat%' ORDER BY calls DESC LIMIT 16"
		q -c "SELECT 'statements per result: ' ||
		    round(sum(calls)::numeric / $N, 1) || ', server execution ' ||
		    round(sum(total_exec_time)::numeric / 1000, 2) || ' s'
		    FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat%'"
	fi
	stop_pid "$coll_pid"
	coll_pid=
	el=$(field elapsed_s "$line")
	echo "$line collector_cpu_s=$(echo "$c0 $c1" | awk '{print $2 - $1}')" \
	    "backend_cpu_s=$(echo "$b0 $b1" | awk '{print $2 - $1}')" \
	    >>"$work/ingest.txt"
	echo "run $i: ingest $(field results_per_s "$line") results/s" \
	    "(${el} s, peak in flight $(field peak_in_flight "$line"))," \
	    "decode $(field decode_per_s "$line")/s"
	# The pair: the same rows through psql \copy, right after.
	[ "$i" -eq 1 ] && export_rows
	copy_run "$i"
	i=$((i + 1))
done

# --- figures ---------------------------------------------------------------

col() {
	while read -r _l; do field "$1" "$_l"; done <"$2"
}
list() {
	col "$1" "$2" | paste -sd, -
}

X=$(col results_per_s "$work/ingest.txt" | median)
T=$(col elapsed_s "$work/ingest.txt" | median)
P=$(col peak_in_flight "$work/ingest.txt" | median)
D=$(col decode_per_s "$work/ingest.txt" | median)
B=$(col mean_bytes "$work/ingest.txt" | median)
CC=$(col collector_cpu_s "$work/ingest.txt" | median)
BC=$(col backend_cpu_s "$work/ingest.txt" | median)
Y=$(col results_rows_per_s "$work/copy.txt" | median)
YT=$(col results_s "$work/copy.txt" | median)
Z=$(col all_results_per_s "$work/copy.txt" | median)
ZR=$(col all_rows_per_s "$work/copy.txt" | median)
ZT=$(col all_s "$work/copy.txt" | median)
ratio=$(echo "$X $Y" | awk '{ printf "%.4f", $1 / $2 }')
# Each ingest run is paired with the \copy run right after it; the figure
# is the median of the pairs' ratios.
col results_per_s "$work/ingest.txt" >"$work/x.txt"
col all_results_per_s "$work/copy.txt" >"$work/z.txt"
pairs=$(paste -d' ' "$work/x.txt" "$work/z.txt" |
    awk '{ printf "%.4f\n", $1 / $2 }')
ratio_all=$(echo "$pairs" | median)
pair_list=$(echo "$pairs" | paste -sd, -)
per_result=$(echo "$rows_total $N" | awk '{ printf "%.1f", $1 / $2 }')

printf '\n'
printf '%s\n' "collector ingest: $X results/s ($N results, $T s)"
printf '%s\n' "psql \\copy of the same rows: $Y rows/s ($N rows of results, $YT s)"
printf '%s\n' "ratio: $X/$Y = $ratio"
printf '%s\n' "psql \\copy of every row those results made ($rows_total rows in 8 tables, $per_result per result): $Z results/s, $ZR rows/s ($ZT s)"
printf '%s\n' "ratio (every row): $ratio_all (median of $RUNS alternating pairs: $pair_list; medians $X/$Z)"
printf '%s\n' "wire_agent_decode alone: $D results/s (mean frame $B bytes)"
printf '%s\n' "during ingest: collector CPU $CC s, its PostgreSQL backend CPU $BC s in $T s wall (medians)"

# The receive path without the database, against raw ZeroMQ: PUSH -> PULL
# over loopback with CURVE and decode, and plain (goal: at least 0.25).
TN=${TRANSPORT_N:-50000}
"$LOAD" transport "$TN" >"$work/transport.txt" ||
	die "ingest_load transport failed"
tline=$(tail -1 "$work/transport.txt")
TA=$(field curve_decode_per_s "$tline")
TB=$(field raw_per_s "$tline")
TR=$(field ratio "$tline")
printf '%s\n' "ZeroMQ CURVE + decode, no database: $TA frames/s; raw PUSH/PULL of the same bytes: $TB frames/s; ratio $TR (median of 5 alternating pairs, $TN frames)"

cat >"$OUT" <<EOF
{
  "machine": {"cpus": $(nproc), "kernel": "$(uname -r)",
    "postgresql": "$(q -c 'SHOW server_version')",
    "loadavg_start": $load_start,
    "loadavg_end": $(cut -d" " -f1 /proc/loadavg)},
  "n": $N,
  "runs": $RUNS,
  "collector": {"batch": $BATCH, "credit": $CREDIT},
  "ingest": {
    "results_per_s": $X, "elapsed_s": $T, "peak_in_flight": $P,
    "collector_cpu_s": $CC, "backend_cpu_s": $BC,
    "runs_results_per_s": [$(list results_per_s "$work/ingest.txt")]
  },
  "copy_results_table": {
    "rows_per_s": $Y, "elapsed_s": $YT,
    "runs_rows_per_s": [$(list results_rows_per_s "$work/copy.txt")]
  },
  "copy_every_row": {
    "tables": 8, "rows": $rows_total, "results_per_s": $Z,
    "rows_per_s": $ZR, "elapsed_s": $ZT,
    "runs_results_per_s": [$(list all_results_per_s "$work/copy.txt")]
  },
  "ratio": $ratio,
  "ratio_every_row": $ratio_all,
  "runs_ratio_every_row": [$pair_list],
  "decode": {
    "results_per_s": $D, "mean_frame_bytes": $B,
    "runs_results_per_s": [$(list decode_per_s "$work/ingest.txt")]
  },
  "transport": {
    "frames": $TN, "curve_decode_per_s": $TA, "raw_per_s": $TB,
    "ratio": $TR
  },
  "wall_s": $(($(date +%s) - t_start))
}
EOF
echo "bench: wrote $OUT in $(($(date +%s) - t_start)) s"
