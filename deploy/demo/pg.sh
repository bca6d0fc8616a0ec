#!/bin/sh
# pg.sh -- the quickstart's private PostgreSQL cluster, kept in one directory.
#
# Usage: sh deploy/demo/pg.sh start DIR   prints the conninfo on stdout
#        sh deploy/demo/pg.sh stop DIR
#        sh deploy/demo/pg.sh pid DIR     prints the server's pid if it runs
#
# start makes the cluster on first use (initdb into DIR/data, database
# "mtasts", role "mtasts", trust authentication) and starts it; later starts
# reuse it.  The server listens on no TCP port at all (listen_addresses =
# ''), only on a unix socket in DIR, so the port number only names the
# socket file.  The conninfo is also written to DIR/conninfo.  The server
# log is DIR/server.log.  stop is a fast shutdown that waits for the server
# to be gone.  Exit status is non-zero on any failure, with the reason on
# stderr; a failed start leaves no server running.
#
# PostgreSQL refuses to run as root, so when run as root the server runs as
# the user "postgres" (which Debian's postgresql package creates) and DIR
# is handed to that user, who must be able to reach it: a DIR under a
# private home such as /root does not work.  Server binaries come from the
# newest /usr/lib/postgresql/*/bin, since Debian does not put initdb and
# pg_ctl on PATH.  (tests/lib/pg_start.sh is the test suite's equivalent.)
set -eu

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

[ $# -eq 2 ] || die "usage: pg.sh start|stop|pid DIR"
cmd=$1
dir=$2
case $dir in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac
case $dir in
*\'* | *' '*) die "DIR must not contain quotes or spaces: $dir" ;;
esac

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] && [ -x "$bin/pg_ctl" ] ||
	die "no PostgreSQL server binaries (apt-get install postgresql)"

as=
if [ "$(id -u)" = 0 ]; then
	id -u postgres >/dev/null 2>&1 ||
		die "no user postgres (apt-get install postgresql)"
	as="runuser -u postgres --"
fi

s_running() {
	[ -f "$dir/data/postmaster.pid" ] &&
		$as "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

case $cmd in
pid)
	s_running || exit 1
	head -1 "$dir/data/postmaster.pid"
	exit 0
	;;
stop)
	[ -d "$dir/data" ] || exit 0
	s_running || exit 0
	$as "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
	exit 0
	;;
start) ;;
*) die "unknown command $cmd" ;;
esac

# A unix socket path is limited to 107 bytes: DIR/.s.PGSQL.NNNNN.
[ ${#dir} -le 90 ] || die "DIR is too long for a unix socket path: $dir"

if [ ! -f "$dir/data/PG_VERSION" ]; then
	if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
		die "$dir holds something other than a cluster; remove it"
	fi
	mkdir -p "$dir"
	chmod 700 "$dir"
	if [ -n "$as" ]; then
		chown postgres "$dir"
		$as test -w "$dir" ||
			die "user postgres cannot reach $dir (a private" \
			    "home directory on the way?): use another directory"
	fi
	$as "$bin/initdb" -D "$dir/data" -U mtasts -A trust -E UTF8 \
	    --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
		{
			cat "$dir/initdb.log" >&2
			rm -rf "$dir"
			die "initdb failed"
		}
	# The port only names the socket file, which no other cluster shares.
	port=$((20000 + ($$ + $(date +%s)) % 40000))
	cat >>"$dir/data/postgresql.conf" <<EOF
# Added by deploy/demo/pg.sh: a socket in $dir and no TCP at all.
listen_addresses = ''
port = $port
unix_socket_directories = '$dir'
unix_socket_permissions = 0770
max_connections = 40
EOF
	echo "$port" >"$dir/port"
	fresh=1
else
	fresh=0
fi
port=$(cat "$dir/port")
conninfo="host=$dir port=$port dbname=mtasts user=mtasts"

if ! s_running; then
	if ! $as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
	    start >/dev/null; then
		tail -20 "$dir/server.log" >&2 2>/dev/null || true
		die "the server did not start"
	fi
fi
if [ $fresh = 1 ]; then
	if ! $as "$bin/psql" -X -q -h "$dir" -p "$port" -U mtasts \
	    -d postgres -c 'CREATE DATABASE mtasts' >/dev/null; then
		$as "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ||
			true
		die "CREATE DATABASE failed"
	fi
fi
echo "$conninfo" >"$dir/conninfo"
echo "$conninfo"
