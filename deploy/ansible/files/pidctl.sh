#!/bin/sh
# pidctl.sh -- runs one daemon without systemd, tracked by a pid file: what
# the playbook does with mtasts_service_manager=none (containers, the test
# suite).  Prints "started", "restarted", "signalled", "stopped" when it
# changed something and "running"/"not running" when it did not, so that
# Ansible can tell.
#
#   pidctl.sh start   PIDFILE LOGFILE PROGRAM ARG...
#   pidctl.sh restart PIDFILE LOGFILE PROGRAM ARG...
#   pidctl.sh signal  PIDFILE SIGNAL
#   pidctl.sh stop    PIDFILE [PROGRAM]
#
# A pid file whose process is gone, or is no longer PROGRAM, counts as not
# running.  "start" fails when the daemon exits within its first second,
# with the end of its log, which is where a bad configuration shows.
set -u

die() {
	echo "pidctl: $*" >&2
	exit 1
}

# The pid in $1 when it names a live process, else nothing.  When the
# program is given, the process must be running it: a pid reused by an
# unrelated process after a reboot is not ours to signal.
alive() {
	[ -s "$1" ] || return 1
	p=$(cat "$1") || return 1
	case $p in
	'' | *[!0-9]*) return 1 ;;
	esac
	kill -0 "$p" 2>/dev/null || return 1
	if [ $# -ge 2 ]; then
		exe=$(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | head -n 1)
		[ "$exe" = "$2" ] || return 1
	fi
	echo "$p"
}

# SIGTERM, then up to 60 s for a clean exit (the agent flushes its spool).
stop() {
	p=$(alive "$@") || return 1
	kill -TERM "$p" 2>/dev/null
	i=0
	while kill -0 "$p" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 600 ] || die "pid $p did not stop within 60 s"
		sleep 0.1
	done
	rm -f "$1"
	return 0
}

start() {
	pidfile=$1 logfile=$2
	shift 2
	# setsid: the daemon leaves the session of the Ansible task, so that
	# nothing is killed with it.  Not a process group leader here, so
	# setsid execs in place and $! is the daemon's pid.
	setsid "$@" </dev/null >>"$logfile" 2>&1 &
	p=$!
	echo "$p" >"$pidfile" || die "cannot write $pidfile"
	sleep 1
	if ! kill -0 "$p" 2>/dev/null; then
		rm -f "$pidfile"
		tail -n 20 "$logfile" >&2
		die "$1 exited at once (log: $logfile)"
	fi
}

[ $# -ge 2 ] || die "usage: pidctl.sh start|restart|signal|stop PIDFILE ..."
cmd=$1
pidfile=$2
shift 2
case $cmd in
start | restart)
	[ $# -ge 2 ] || die "usage: pidctl.sh $cmd PIDFILE LOGFILE PROGRAM ARG..."
	logfile=$1
	if [ "$cmd" = start ] && alive "$pidfile" "$2" >/dev/null; then
		echo running
		exit 0
	fi
	if stop "$pidfile" "$2"; then
		start "$pidfile" "$@"
		echo restarted
	else
		start "$pidfile" "$@"
		echo started
	fi
	;;
signal)
	[ $# -eq 1 ] || die "usage: pidctl.sh signal PIDFILE SIGNAL"
	p=$(alive "$pidfile") || die "$pidfile: no running process"
	kill -s "$1" "$p" || die "kill -s $1 $p failed"
	echo signalled
	;;
stop)
	if stop "$pidfile" "$@"; then
		echo stopped
	else
		echo "not running"
	fi
	;;
*)
	die "unknown command $cmd"
	;;
esac
