# checklib.sh -- what the checks in tests/deploy share: the "ok NAME" and
# "FAIL NAME[: why]" lines, their counts, and the closing line
# "SUITE: N passed, M failed[, K skipped]" that tests/run.sh adds up.
# Sourced (POSIX sh) from the top of the tree, after setting CHECK_SUITE:
#
#   CHECK_SUITE=deb
#   . tests/lib/checklib.sh
passed=0
failed=0
skipped=0

pass() {
	echo "ok   $1"
	passed=$((passed + 1))
}
# fail NAME [WHY]
fail() {
	echo "FAIL $1${2:+: $2}"
	failed=$((failed + 1))
}
# skip NAME [WHY]: counted apart, neither passed nor failed.
skip() {
	echo "skip $1${2:+: $2}"
	skipped=$((skipped + 1))
}
# check NAME COMMAND...: passes when the command succeeds.
check() {
	name=$1
	shift
	if "$@"; then
		pass "$name"
	else
		fail "$name"
	fi
}
# check_why NAME WHY COMMAND...: the same, with WHY on the FAIL line.
check_why() {
	name=$1
	why=$2
	shift 2
	if "$@"; then
		pass "$name"
	else
		fail "$name" "$why"
	fi
}
# The closing line; returns 0 only when something passed and nothing
# failed.  A script ends with it, or stops early with "finish; exit" (a
# function that exits would hide the rest of the script from shellcheck).
finish() {
	extra=
	[ "$skipped" -eq 0 ] || extra=", $skipped skipped"
	echo "$CHECK_SUITE: $passed passed, $failed failed$extra"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}
