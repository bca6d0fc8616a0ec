#!/bin/sh
# pg_stop.sh -- stops a cluster made by pg_start.sh and removes its DIR.
#
# Usage: sh tests/lib/pg_stop.sh DIR
# Safe to call on a half-made DIR (for example after a failed start) and on
# one already removed.  Refuses to remove a directory that pg_start.sh did
# not make (no DIR/data/PG_VERSION and no DIR/initdb.log).
set -u

[ $# -eq 1 ] || { echo "usage: pg_stop.sh DIR" >&2; exit 2; }
dir=$1
[ -d "$dir" ] || exit 0
if [ ! -f "$dir/data/PG_VERSION" ] && [ ! -f "$dir/initdb.log" ]; then
	echo "pg_stop: $dir is not a pg_start.sh cluster; left alone" >&2
	exit 1
fi

rc=0
if [ -f "$dir/data/postmaster.pid" ] && [ -x "$dir/stop.sh" ]; then
	sh "$dir/stop.sh" || rc=1
fi
rm -rf "$dir"
exit $rc
