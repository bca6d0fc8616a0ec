#!/bin/sh
# check_units.sh -- checks deploy/systemd/*.service offline: systemd-analyze
# verify must be silent about them and systemd-analyze security must score
# each at most MAX_EXPOSURE.  Closes with "units: N passed, M failed".
# Needs systemd-analyze (Debian package "systemd"), not a running systemd.
# Environment: MAX_EXPOSURE (default 3.0).
set -u
cd "$(dirname "$0")/../.." || exit 2
MAX_EXPOSURE=${MAX_EXPOSURE:-3.0}
UNITS="mtasts-agent.service mtasts-collector.service"
CHECK_SUITE=units
. tests/lib/checklib.sh

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check_units: systemd-analyze not found (apt-get install systemd)"
	fail "systemd-analyze installed"
	finish; exit
fi

tmp=$(mktemp -d /tmp/mtunits.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 143' TERM INT

# verify insists that every Exec*= binary exists.  The units name
# /usr/bin/mtasts-*, which a build machine need not have, so check copies that
# point at stubs; the file names (and so the unit names) stay the same.
for b in agent collector; do
	printf '#!/bin/sh\nexit 0\n' >"$tmp/mtasts-$b"
	chmod 755 "$tmp/mtasts-$b"
done
for u in $UNITS; do
	src=deploy/systemd/$u
	if [ ! -f "$src" ]; then
		fail "$u: $src missing"
		continue
	fi
	sed "s#/usr/bin/mtasts-#$tmp/mtasts-#g" "$src" >"$tmp/$u"

	# What an operator relies on, which verify cannot know about.
	missing=
	# shellcheck disable=SC2016 # $MAINPID is meant literally
	for re in '^User=mtasts-watch$' '^ExecStartPre=/usr/bin/mtasts-[a-z]* .* -n$' \
	    '^ExecStart=/usr/bin/mtasts-[a-z]* .*--config /etc/mtasts-watch/[a-z]*\.conf$' \
	    '^ExecReload=/bin/kill -HUP \$MAINPID$' '^Restart=on-failure$' \
	    '^UMask=0077$' '^CapabilityBoundingSet=$' '^NoNewPrivileges=yes$'; do
		grep -q "$re" "$src" || missing="$missing '$re'"
	done
	if [ -n "$missing" ]; then
		fail "$u: no line matching$missing"
	else
		pass "$u: required settings"
	fi

	# verify prints only problems; any line naming this unit is one (other
	# lines are about the host, e.g. a container's own unit files).
	out=$(timeout 20 systemd-analyze verify --man=no "$tmp/$u" 2>&1)
	rc=$?
	about=$(printf '%s\n' "$out" | grep -F "$u")
	if [ $rc -ne 0 ] || [ -n "$about" ]; then
		printf '%s\n' "$out" | sed "s#$tmp/##g"
		fail "$u: systemd-analyze verify (exit $rc)"
	else
		pass "$u: systemd-analyze verify"
	fi

	out=$(timeout 20 systemd-analyze security --offline=yes --no-pager \
	    "$tmp/$u" 2>&1)
	rc=$?
	score=$(printf '%s\n' "$out" |
	    sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	if [ $rc -ne 0 ] || [ -z "$score" ]; then
		printf '%s\n' "$out"
		fail "$u: systemd-analyze security (exit $rc, no score)"
	elif awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
		# Show what costs points so the fix is obvious.
		printf '%s\n' "$out" | grep '✗'
		fail "$u: exposure $score > $MAX_EXPOSURE"
	else
		pass "$u: exposure $score <= $MAX_EXPOSURE"
	fi
done

finish
