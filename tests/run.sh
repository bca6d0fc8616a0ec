#!/bin/sh
# run.sh -- runs the unit test binaries, then the integration scenarios, and
# prints one closing line "N passed, N failed" over all of them.
# Environment: BUILD (object dir), AGENT (the binary under test).
set -u
BUILD=${BUILD:-build}
AGENT=${AGENT:-bin/mtasts-agent}
passed=0
failed=0
log=$(mktemp)
pgdir=
cleanup() {
	rm -f "$log"
	if [ -n "$pgdir" ]; then
		sh tests/lib/pg_stop.sh "$pgdir" >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# A private PostgreSQL for the tests that need one (socket only, no TCP).
if [ -z "${MTASTS_TEST_PG:-}" ] && [ -f tests/lib/pg_start.sh ]; then
	pgdir=$(mktemp -d /tmp/mtpg.XXXXXX)
	rmdir "$pgdir"
	if pgenv=$(sh tests/lib/pg_start.sh "$pgdir" 2>"$log"); then
		eval "$pgenv"
	else
		cat "$log"
		echo "run.sh: could not start PostgreSQL; database tests will fail"
		pgdir=
	fi
fi

for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	"$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [ $rc -ne 0 ] && [ -z "${f:-}" ]; then
		echo "unit: $t exited $rc"
		failed=$((failed + 1))
	fi
done

# Each runner closes with "NAME: N passed, M failed".
for runner in integration/run.py integration/network.py \
    integration/faults.py integration/vantage.py integration/report_cli.py \
    deploy/check_units.sh perf/check_callgrind.sh \
    deploy/check_deb.sh deploy/check_ansible.sh deploy/check_quickstart.sh; do
	[ -f "tests/$runner" ] || continue
	# Under ASan (make asan) the packaging and playbook checks are left
	# to the plain run: they test dpkg and ansible around the same
	# binaries that every other runner exercises under the sanitizers.
	case "${MTASTS_SANITIZED:-}:$runner" in
	1:deploy/check_deb.sh | 1:deploy/check_ansible.sh)
		echo "skip $runner under the sanitizers (run by make test)"
		continue
		;;
	esac
	case $runner in
	*.py) AGENT="$AGENT" python3 "tests/$runner" >"$log" 2>&1 ;;
	*.sh) sh "tests/$runner" >"$log" 2>&1 ;;
	esac
	rc=$?
	cat "$log"
	line=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	p=$(echo "$line" | sed -n 's/^[a-z]*: \([0-9]*\) passed.*/\1/p')
	f=$(echo "$line" | sed -n 's/.* passed, \([0-9]*\) failed.*/\1/p')
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [ $rc -ne 0 ] && [ "${f:-0}" = 0 ]; then
		echo "$runner: runner exited $rc"
		failed=$((failed + 1))
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
