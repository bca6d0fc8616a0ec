#!/bin/sh
# check_ansible.sh -- runs deploy/ansible/site.yml for real against
# localhost (ansible_connection=local) and checks what it did: two agents
# installed into scratch prefixes, keyed, configured, allowed by a collector
# this script starts on the private PostgreSQL ($MTASTS_TEST_PG, which
# tests/run.sh sets), started without systemd (mtasts_service_manager=none)
# and heard by the collector; a second run changes nothing; the
# verification fails when the collector is gone.  Needs no root and writes
# nothing outside one temporary directory and one database schema.
# Prints "ok NAME" / "FAIL NAME" and closes with "ansible: N passed, M failed".
# Environment: BINDIR (default bin), MTASTS_TEST_PG; KEEP_TMP=1 keeps the
# temporary directory (playbook logs run*.log, collector.log) for a look.
set -u
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
BINDIR=${BINDIR:-bin}
case $BINDIR in
/*) ;;
*) BINDIR=$ROOT/$BINDIR ;;
esac
PLAYBOOK=$ROOT/deploy/ansible/site.yml
CHECK_SUITE=ansible
. tests/lib/checklib.sh

if ! command -v ansible-playbook >/dev/null 2>&1; then
	echo "check_ansible: ansible-playbook not found" \
	    "(apt-get install --no-install-recommends ansible-core)"
	fail "ansible-playbook installed"
	finish; exit
fi
for b in mtasts-agent mtasts-collector mtasts-report; do
	if [ ! -x "$BINDIR/$b" ]; then
		fail "$BINDIR/$b built (make, or set BINDIR)"
		finish; exit
	fi
done
if ! command -v psql >/dev/null 2>&1 || [ -z "${MTASTS_TEST_PG:-}" ]; then
	fail "database: psql and MTASTS_TEST_PG (tests/run.sh sets it)"
	finish; exit
fi

tmp=$(mktemp -d /tmp/mtans.XXXXXX) || exit 2
schema=ans_$$
conninfo="$MTASTS_TEST_PG options='-csearch_path=$schema'"
cpid=
cleanup() {
	# Only what this script started: the collector by its pid, the agents
	# by the pid files the playbook wrote.
	for a in a1 a2; do
		f=$tmp/$a/var/lib/mtasts-watch/mtasts-agent.pid
		[ -s "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
	done
	[ -n "$cpid" ] && kill -TERM "$cpid" 2>/dev/null
	sleep 0.5
	psql "$MTASTS_TEST_PG" -X -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" \
	    >/dev/null 2>&1
	if [ -n "${KEEP_TMP:-}" ]; then
		echo "check_ansible: kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

sql() {
	psql "$conninfo" -X -q -At -v ON_ERROR_STOP=1 -c "$1"
}

# Ansible keeps its temporary files, its home and its configuration in
# $tmp: no ansible.cfg of the caller's applies, nothing lands in ~/.ansible.
: >"$tmp/ansible.cfg"
ANSIBLE_CONFIG=$tmp/ansible.cfg
ANSIBLE_HOME=$tmp/ansible-home
ANSIBLE_LOCAL_TEMP=$tmp/ansible-local
ANSIBLE_REMOTE_TEMP=$tmp/ansible-remote
ANSIBLE_NOCOLOR=1
ANSIBLE_RETRY_FILES_ENABLED=0
ANSIBLE_PYTHON_INTERPRETER=$(command -v python3)
export ANSIBLE_CONFIG ANSIBLE_HOME ANSIBLE_LOCAL_TEMP ANSIBLE_REMOTE_TEMP \
    ANSIBLE_NOCOLOR ANSIBLE_RETRY_FILES_ENABLED ANSIBLE_PYTHON_INTERPRETER

out=$(ansible-playbook --syntax-check \
    -i deploy/ansible/inventory.example.ini "$PLAYBOOK" 2>&1)
rc=$?
[ $rc -eq 0 ] || printf '%s\n' "$out"
check "syntax-check" [ $rc -eq 0 ]

# The collector, set up by hand as on its host, under prefix $tmp/c.
cetc=$tmp/c/etc/mtasts-watch
allow=$cetc/agents
mkdir -p "$cetc/collector" "$allow" || exit 2
if ! sql "CREATE SCHEMA $schema" >/dev/null; then
	fail "database: CREATE SCHEMA $schema"
	finish; exit
fi
"$BINDIR/mtasts-collector" keygen "$cetc/collector" >/dev/null || exit 2
cat >"$cetc/collector.conf" <<EOF
[collector]
bind = tcp://127.0.0.1:*
secret_key = $cetc/collector/collector.key_secret
allow_dir = $allow
database = $conninfo
migrations = $ROOT/deploy/sql
interval = 10
EOF
clog=$tmp/collector.log
: >"$clog"
"$BINDIR/mtasts-collector" --config "$cetc/collector.conf" \
    </dev/null >"$clog" 2>&1 &
cpid=$!
echo "$cpid" >"$tmp/collector.pid"
endpoint=
i=0
while [ $i -lt 300 ] && kill -0 "$cpid" 2>/dev/null; do
	endpoint=$(sed -n 's/.*ready bind=\(tcp:[^ ]*\).*/\1/p' "$clog")
	[ -n "$endpoint" ] && break
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$endpoint" ]; then
	cat "$clog"
	fail "collector ready"
	finish; exit
fi
pass "collector ready at $endpoint"

# Inventory: the collector and two agents, each in its own prefix, all on
# localhost.  Variables: as a real run would set them, except for the
# prefix, the users (whoever runs this) and the service manager.
cat >"$tmp/inventory.ini" <<EOF
[collector]
coll ansible_connection=local mtasts_prefix=$tmp/c

[agents]
ag1 ansible_connection=local mtasts_prefix=$tmp/a1 mtasts_agent_name=ans-1 mtasts_region=test-east
ag2 ansible_connection=local mtasts_prefix=$tmp/a2 mtasts_agent_name=ans-2 mtasts_region=test-west
EOF
TMP=$tmp ENDPOINT=$endpoint CONNINFO=$conninfo BINDIR=$BINDIR \
    U=$(id -un) G=$(id -gn) python3 -c '
import json, os
e = os.environ
print(json.dumps({
    "mtasts_service_manager": "none",
    "mtasts_become": False,
    "mtasts_user": e["U"], "mtasts_group": e["G"],
    "mtasts_admin_user": e["U"], "mtasts_admin_group": e["G"],
    "mtasts_create_user": False,
    "mtasts_agent_binary": e["BINDIR"] + "/mtasts-agent",
    "mtasts_report_bin": e["BINDIR"] + "/mtasts-report",
    "mtasts_keys_local_dir": e["TMP"] + "/keys",
    "mtasts_collector_endpoints": [e["ENDPOINT"]],
    "mtasts_collector_database": e["CONNINFO"],
    "mtasts_collector_pidfile": e["TMP"] + "/collector.pid",
    "mtasts_verify_runas": "",
    "mtasts_verify_timeout": 30,
    "mtasts_verify_max_age": 20,
    "mtasts_agent_heartbeat": 2,
    "mtasts_agent_ack_timeout": 6,
}))' >"$tmp/vars.json" || exit 2

play() {
	log=$1
	shift
	timeout 120 ansible-playbook -i "$tmp/inventory.ini" -e "@$tmp/vars.json" \
	    "$@" "$PLAYBOOK" >"$log" 2>&1
}

# The PLAY RECAP line of each host has "changed=N".
changed_total() {
	sed -n 's/.* changed=\([0-9]*\) .*/\1/p' "$1" |
	    awk '{ s += $1 } END { print s + 0 }'
}
recap_hosts() {
	grep -c ' changed=[0-9]* .*failed=0 ' "$1"
}

t0=$(date +%s)
play "$tmp/run1.log"
rc=$?
t1=$(date +%s)
[ $rc -eq 0 ] || cat "$tmp/run1.log"
check "first run succeeds ($((t1 - t0)) s)" [ $rc -eq 0 ]
check "first run: 3 hosts ok" [ "$(recap_hosts "$tmp/run1.log")" -eq 3 ]

mode() {
	stat -c '%a' "$1" 2>/dev/null
}
conf_ok() {
	"$1" run --config "$2" -n >/dev/null 2>&1
}
for a in 1 2; do
	kd=$tmp/a$a/etc/mtasts-watch/agent
	check "ans-$a: secret key mode 0600" [ "$(mode "$kd/agent.key_secret")" = 600 ]
	check "ans-$a: key directory mode 0700" [ "$(mode "$kd")" = 700 ]
	check "ans-$a: agent.conf mode 0640" \
	    [ "$(mode "$tmp/a$a/etc/mtasts-watch/agent.conf")" = 640 ]
	check "ans-$a: public key in the collector's allowlist" \
	    cmp -s "$kd/agent.key" "$allow/ans-$a.key"
	check "ans-$a: agent.conf passes -n" conf_ok "$tmp/a$a/usr/bin/mtasts-agent" \
	    "$tmp/a$a/etc/mtasts-watch/agent.conf"
done
check "allowlist holds exactly the two agents" \
    [ "$(ls "$allow" | tr '\n' ' ')" = "ans-1.key ans-2.key " ]
# zcert writes the secret as 'secret-key = "..."'; only the VM has it.
check "no secret key left the agents" \
    [ -z "$(grep -rl secret-key "$tmp/keys" "$allow")" ]
check "collector key installed on the agents" \
    cmp -s "$cetc/collector/collector.key" "$tmp/a1/etc/mtasts-watch/collector.key"
check "collector reloaded with both agents" \
    grep -q 'reloaded .*allowed_agents=2' "$clog"
rows=$(sql "SELECT name || ':' || region FROM agents
    WHERE last_seen > now() - interval '30 seconds' ORDER BY name" |
    tr '\n' ' ')
check "both agents heard, regions from their keys ($rows)" \
    [ "$rows" = "ans-1:test-east ans-2:test-west " ]
# The verification's two ways to ask: psql always, mtasts-report when it
# has an "agents" command.  The answer must depend on the name.
heard() {
	MTASTS_DATABASE=$conninfo python3 deploy/ansible/files/heard.py \
	    --name "$1" --max-age 20 --report "$2" 2>&1
}
out=$(heard ans-1 /nonexistent)
check "heard.py via psql: ans-1 heard" \
    [ "$(printf '%s' "$out" | grep -c '"heard": true, .*"via": "psql"')" = 1 ]
out=$(heard ans-3 /nonexistent)
check "heard.py via psql: ans-3 not heard" \
    [ "$(printf '%s' "$out" | grep -c '"heard": false, "found": false')" = 1 ]
if "$BINDIR/mtasts-report" --help 2>&1 | grep -q ' agents '; then
	out=$(heard ans-2 "$BINDIR/mtasts-report")
	check "heard.py via mtasts-report: ans-2 heard in test-west" [ "$(printf '%s' \
	    "$out" | grep -c '"heard": true, .*"via": "report", .*"test-west"')" = 1 ]
	out=$(heard ans-3 "$BINDIR/mtasts-report")
	check "heard.py via mtasts-report: ans-3 not heard" \
	    [ "$(printf '%s' "$out" | grep -c '"found": false, "via": "report"')" = 1 ]
fi
pids1=$(cat "$tmp"/a?/var/lib/mtasts-watch/mtasts-agent.pid 2>/dev/null | tr '\n' ' ')

play "$tmp/run2.log"
rc=$?
[ $rc -eq 0 ] || cat "$tmp/run2.log"
check "second run succeeds" [ $rc -eq 0 ]
ch=$(changed_total "$tmp/run2.log")
if [ "$ch" -ne 0 ] || [ "$(recap_hosts "$tmp/run2.log")" -ne 3 ]; then
	grep -E '^(changed|PLAY RECAP)|changed=' "$tmp/run2.log"
	fail "second run: changed=0 on every host (changed=$ch)"
else
	pass "second run: changed=0 on every host"
fi
pids2=$(cat "$tmp"/a?/var/lib/mtasts-watch/mtasts-agent.pid 2>/dev/null | tr '\n' ' ')
check "second run: agents not restarted" [ "$pids1" = "$pids2" ]

# Without a collector nobody hears the agents: the verification must fail
# the play, within its timeout.
kill -TERM "$cpid"
i=0
while kill -0 "$cpid" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
cpid=
sleep 3
t0=$(date +%s)
play "$tmp/run3.log" -t mtasts_verify -e mtasts_verify_timeout=4 \
    -e mtasts_verify_max_age=2
rc=$?
t1=$(date +%s)
if [ $rc -ne 0 ] && grep -q 'has not heard agent ans-1' "$tmp/run3.log"; then
	pass "verification fails without a collector ($((t1 - t0)) s)"
else
	cat "$tmp/run3.log"
	fail "verification fails without a collector (exit $rc)"
fi

for a in a1 a2; do
	sh deploy/ansible/files/pidctl.sh stop \
	    "$tmp/$a/var/lib/mtasts-watch/mtasts-agent.pid" \
	    "$tmp/$a/usr/bin/mtasts-agent" >/dev/null
done
# Every process whose command line names $tmp, except this scan itself.
left=$(TMPDIR_SCAN=$tmp/ python3 -c '
import os
me, t = os.getpid(), os.environ["TMPDIR_SCAN"].encode()
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open("/proc/%s/cmdline" % p, "rb") as f:
            if int(p) != me and t in f.read():
                print(p, end=" ")
    except OSError:
        pass
')
check "no process left${left:+:$left}" [ -z "$left" ]

finish
