#!/bin/sh
# run.sh - run every test under a timeout and print one closing line:
#   N passed, N failed, N skipped
#
# A test is an executable: a cmocka binary (its cases are counted from its
# "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)" lines), or any
# other program or script, counted as one case by its exit status. Exit 77
# means skipped (no GPU, say). Output of a failing test is shown; passing
# tests show their summary lines only (and lines starting with "figure:").
#
# Environment: O (build directory, default build), TEST_TIMEOUT (seconds
# per test, default 300), TESTS (a space-separated list to run instead).
set -u
O=${O:-build}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
export KVSTORED="$PWD/$O/kvstored" KVCTL="$PWD/$O/kvctl" O
export KVSTORE_BUILD="$PWD/$O"

if [ -z "${TESTS:-}" ]; then
	TESTS=$(ls "$O"/tests/unit/test_* "$O"/tests/integration/test_* \
		"$O"/tests/regress/issue_* "$O"/tests/gpu/test_* 2>/dev/null | grep -v '\.[od]$')
	TESTS="$TESTS $(ls tests/integration/test_*.sh tests/unit/test_*.sh 2>/dev/null)"
	[ -x "$O/kvbench" ] && TESTS="$TESTS bench:$O/kvbench"
	[ -x "$O/kvpolicybench" ] && TESTS="$TESTS quick:$O/kvpolicybench"
	[ -x "$O/kvcodecbench" ] && TESTS="$TESTS quick:$O/kvcodecbench"
	[ -x "$O/kvremotebench" ] && TESTS="$TESTS quick:$O/kvremotebench"
	[ -x "$O/kvssdbench" ] && TESTS="$TESTS quick:$O/kvssdbench"
fi

pass=0 fail=0 skip=0
failed_names=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for t in $TESTS; do
	case "$t" in
	bench:*) cmd="${t#bench:} --quick --daemon $KVSTORED"; name="${t#bench:} --quick" ;;
	quick:*) cmd="${t#quick:} --quick"; name="$cmd" ;;
	*) cmd="$t"; name="$t" ;;
	esac
	start=$(date +%s)
	timeout -k 10 "$TEST_TIMEOUT" $cmd >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if [ "$rc" -eq 77 ]; then
		echo "SKIP $name ($(tail -n 1 "$log"))"
		skip=$((skip + 1))
		continue
	fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		if [ "$rc" -eq 0 ]; then p=1; else f=1; fi
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1	# crashed or timed out after its passes were printed
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$f" -ne 0 ]; then
		echo "FAIL $name (exit $rc, ${secs}s)"
		sed 's/^/    /' "$log" | tail -n 200
		failed_names="$failed_names $name"
	else
		echo "ok   $name ($p passed, ${secs}s)"
		grep '^figure:' "$log" | sed 's/^/    /'
	fi
done

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
