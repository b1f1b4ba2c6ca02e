# lib.sh - what the shell tests share: a scratch directory, a daemon to
# stop on exit, and the case bookkeeping tests/run.sh reads.
#
# Usage, from a test script:
#   . "$(dirname "$0")/lib.sh"
#   t_init NAME TOOL          # scratch dir in $tmp; TOOL names the program
#                             # whose exit status ($rc) a failing case shows
#   check "what it proves" FUNCTION    # run one case
#   skip "what it would prove" "why"
#   summary                   # cmocka-style lines; exits 0 or 1
# A daemon started by the script stores its pid in $pid and logs to
# $tmp/daemon.log; daemon_stop stops it and checks it exited 0 with no
# sanitizer report; anything left is killed on exit, and $tmp is removed.
# nap sleeps a tenth of a second. Cases leave their program's stdout and stderr
# in $tmp/out and $tmp/err, shown when a case fails.
#
# For kvctl's tests: kvctl_daemon_start ARGS starts $KVSTORED on $sock and
# waits until kvctl health answers; kv ARGS runs $KVCTL on $sock,
# json_check EXPR judges the JSON it printed, and the case kvctl_clean
# fails if any kvctl run reported a sanitizer finding.

t_init()
{
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
	t_tool=$2
	sock="$tmp/kv.sock"
	pid=""
	rc=""
	pass=0
	fail=0
	skipped=0
	failed=""
	trap t_cleanup EXIT
	trap 'exit 1' HUP INT TERM
	: >"$tmp/kvctl.err"
}

t_cleanup()
{
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}

check()
{
	rc=""
	: >"$tmp/out"
	: >"$tmp/err"
	if "$2"; then
		echo "ok - $1"
		pass=$((pass + 1))
	else
		echo "not ok - $1"
		echo "#   last $t_tool exit status: ${rc:-none}"
		for f in out err; do
			[ -s "$tmp/$f" ] && head -n 20 "$tmp/$f" | cut -c 1-400 | sed "s/^/#   $f: /"
		done
		fail=$((fail + 1))
		failed="$failed
[  FAILED  ] $1"
	fi
}

skip()
{
	echo "ok - $1 # SKIP $2"
	skipped=$((skipped + 1))
}

summary()
{
	echo "[==========] $((pass + fail)) test(s) run, $skipped skipped."
	echo "[  PASSED  ] $pass test(s)."
	if [ "$fail" -ne 0 ]; then
		echo "[  FAILED  ] $fail test(s), listed below:$failed"
		exit 1
	fi
	exit 0
}

nap()
{
	sleep 0.1 2>/dev/null || sleep 1
}

# daemon_stop: SIGTERM, wait; it must exit 0 with no sanitizer report.
daemon_stop()
{
	kill -TERM "$pid" 2>/dev/null || return 1
	i=0
	while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
		nap
		i=$((i + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "#   kvstored still running 10 s after SIGTERM"
		return 1	# cleanup() kills it
	fi
	wait "$pid"
	status=$?
	pid=""
	if [ "$status" -ne 0 ] || grep -Eq 'Sanitizer|runtime error' "$tmp/daemon.log"; then
		echo "#   kvstored exit status $status"
		tail -n 30 "$tmp/daemon.log" | sed 's/^/#   daemon: /'
		return 1
	fi
}

# kvctl_daemon_start ARGS...: kvstored on $sock with ARGS, its pid in $pid;
# 0 once kvctl health answers (10 s at most), else 1 with its log shown.
kvctl_daemon_start()
{
	"$KVSTORED" --socket "$sock" "$@" >"$tmp/daemon.log" 2>&1 &
	pid=$!
	i=0
	while [ "$i" -lt 100 ]; do
		kv health
		[ "$rc" -eq 0 ] && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null
			pid=""
			break
		fi
		nap
		i=$((i + 1))
	done
	sed 's/^/#   daemon: /' "$tmp/daemon.log" | tail -n 20
	return 1
}

# kv ARGS...: run kvctl on the test socket; stdout in $tmp/out, stderr in
# $tmp/err, exit status in $rc. Every stderr is kept for the sanitizer check.
kv()
{
	"$KVCTL" --socket "$sock" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	cat "$tmp/err" >>"$tmp/kvctl.err"
}

# json_check PYTHON-EXPR: evaluate EXPR with d = the JSON in $tmp/out.
json_check()
{
	python3 -c '
import json, sys
try:
	d = json.load(open(sys.argv[1]))
except ValueError as e:
	print("#   not JSON: %s" % e)
	sys.exit(1)
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)
' "$tmp/out" "$1"
}

kvctl_clean()
{
	if grep -Eq 'Sanitizer|runtime error' "$tmp/kvctl.err"; then
		grep -E -A 20 'Sanitizer|runtime error' "$tmp/kvctl.err" | head -n 40 | sed 's/^/#   /'
		return 1
	fi
}
