#!/bin/sh
# pg_start.sh -- starts a private PostgreSQL cluster for the tests.
#
# Usage:   eval "$(sh tests/lib/pg_start.sh DIR)"
#          ... tests ...
#          sh tests/lib/pg_stop.sh DIR
#
# DIR must not exist yet (or be empty); keep it short, since the server's
# unix socket lives in it and socket paths are limited to about 100 bytes.
# The cluster listens on no TCP port at all (listen_addresses=''), only on a
# socket in DIR, and trusts local connections; the port number only names
# the socket file.  On success stdout holds exactly these shell lines:
#
#   MTASTS_TEST_PG='host=DIR port=PORT dbname=mtasts_test user=mtasts'
#   MTASTS_TEST_PGDIR='DIR'
#   export MTASTS_TEST_PG MTASTS_TEST_PGDIR
#
# and DIR/restart.sh restarts the server (pg_ctl -m fast restart -w) for the
# reconnect test.  Progress and server errors go to stderr; the server log
# is DIR/server.log.  Exit status is non-zero on any failure, and a failed
# start leaves no server running.
#
# PostgreSQL refuses to run as root, so when run as root the server runs as
# the user mtastswatch-test (created with useradd when missing), and DIR is
# handed to that user.  Server binaries come from the newest
# /usr/lib/postgresql/*/bin, not PATH, since Debian does not put initdb and
# pg_ctl on PATH.
set -eu

die() {
	echo "pg_start: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: pg_start.sh DIR"
dir=$1
case $dir in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac
case $dir in
*\'* | *' '*) die "DIR must not contain quotes or spaces: $dir" ;;
esac
[ ${#dir} -le 80 ] || die "DIR is too long for a unix socket path: $dir"
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
	die "$dir exists and is not empty"
fi

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] && [ -x "$bin/initdb" ] || die "no PostgreSQL server binaries"

user=mtastswatch-test
if [ "$(id -u)" = 0 ]; then
	if ! id -u "$user" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent \
		    --shell /usr/sbin/nologin "$user" >/dev/null ||
			die "useradd $user failed"
	fi
	as="runuser -u $user --"
else
	as=
fi

mkdir -p "$dir"
chmod 755 "$dir"
[ -z "$as" ] || chown "$user" "$dir"

# A port derived from the PID and time; it only names the socket file in
# DIR, which no other cluster uses, so a collision cannot happen.
port=$((20000 + ($$ + $(date +%s)) % 40000))

$as "$bin/initdb" -D "$dir/data" -U mtasts -A trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; die "initdb failed"; }

cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
port = $port
unix_socket_directories = '$dir'
unix_socket_permissions = 0777
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 40
EOF

# Written before the start so that every later step can clean up with it.
cat >"$dir/restart.sh" <<EOF
#!/bin/sh
# restart.sh -- written by pg_start.sh: restarts this cluster.
exec $as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w \\
    -t 60 restart >/dev/null
EOF
cat >"$dir/stop.sh" <<EOF
#!/bin/sh
# stop.sh -- written by pg_start.sh: stops this cluster.
exec $as "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
EOF
chmod 755 "$dir/restart.sh" "$dir/stop.sh"

if ! $as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    start >/dev/null; then
	cat "$dir/server.log" >&2 2>/dev/null || true
	die "server did not start"
fi

if ! $as "$bin/psql" -X -q -h "$dir" -p "$port" -U mtasts -d postgres \
    -c 'CREATE DATABASE mtasts_test' >/dev/null; then
	sh "$dir/stop.sh" || true
	die "CREATE DATABASE failed"
fi

echo "MTASTS_TEST_PG='host=$dir port=$port dbname=mtasts_test user=mtasts'"
echo "MTASTS_TEST_PGDIR='$dir'"
echo "export MTASTS_TEST_PG MTASTS_TEST_PGDIR"
