#!/bin/sh
# test_python.sh - the Python binding's unittest suite against a real kvstored.
#
# Runs client/python/tests (each TestCase class starts its own daemon) with
# the binding on PYTHONPATH and KVSTORE_LIB at the build's libkvc.so. Ends
# with cmocka-style summary lines, from unittest's "Ran N tests" and its
# verdict, for tests/run.sh to count; exits with unittest's status, or 77
# when python3 is missing.
#
# Environment: KVSTORE_BUILD (the build directory; default build) and
# KVSTORED (default $KVSTORE_BUILD/kvstored), as tests/run.sh exports them.
set -u

if ! command -v python3 >/dev/null 2>&1; then
	echo "python3 is not installed: the Python binding is not tested"
	exit 77
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${KVSTORE_BUILD:-$root/build}
KVSTORED=${KVSTORED:-$build/kvstored}
KVSTORE_LIB=$build/libkvc.so
PYTHONPATH=$root/client/python${PYTHONPATH:+:$PYTHONPATH}
export KVSTORED KVSTORE_LIB PYTHONPATH

# A sanitizer build (make asan): python3 is not instrumented, so the ASan
# runtime must come first in the process; leaks are Python's own.
san=$(ldd "$KVSTORE_LIB" 2>/dev/null | awk '/libasan|libubsan/ {print $3}' | tr '\n' ' ')
if [ -n "$san" ]; then
	LD_PRELOAD="$san${LD_PRELOAD:+ $LD_PRELOAD}"
	ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	export LD_PRELOAD ASAN_OPTIONS
fi

log=$(mktemp "${TMPDIR:-/tmp}/test_python.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT
trap 'exit 1' HUP INT TERM

cd "$root" || exit 1
python3 -m unittest discover -s client/python/tests -v >"$log" 2>&1
rc=$?
cat "$log"

# "Ran 42 tests in 3.1s", then "OK", "OK (skipped=2)" or
# "FAILED (failures=1, errors=2, skipped=1)"
ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$log" | tail -n 1)
if [ -n "$ran" ]; then
	verdict=$(tail -n 1 "$log")
	num() { echo "$verdict" | sed -n "s/.*$1=\([0-9]*\).*/\1/p"; }
	failures=$(num failures)
	errors=$(num errors)
	skipped=$(num skipped)
	bad=$(( ${failures:-0} + ${errors:-0} ))
	passed=$(( ran - bad - ${skipped:-0} ))
	[ "$passed" -lt 0 ] && passed=0
	if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ]; then
		# all skipped (no libkvc, no kvstored): say why, last
		why=$(sed -n "s/.*skipped '\(.*\)'.*/\1/p" "$log" | head -n 1)
		echo "every test skipped: ${why:-see above}"
		exit 77
	fi
	echo "[==========] $ran test(s) run, ${skipped:-0} skipped."
	echo "[  PASSED  ] $passed test(s)."
	if [ "$bad" -ne 0 ] || [ "$rc" -ne 0 ]; then
		echo "[  FAILED  ] $(( bad > 0 ? bad : 1 )) test(s)"
	fi
fi
exit "$rc"
