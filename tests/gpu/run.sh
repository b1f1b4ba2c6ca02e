#!/bin/sh
# run.sh - the GPU tests and benchmarks, on a machine with an NVIDIA GPU.
#
# Runs, from the repo root, against a build directory O made with CUDA
# (default build-gpu; a folder made by 'make gpu-bundle' works too, and is
# found by itself when this script is run from inside one):
#   every $O/tests/gpu/test_* (exit 0 pass, 77 skip, anything else fail),
#   $O/tests/gpu/pinbench if it was built,
#   $O/kvbench --gpu --daemon $O/kvstored,
#   tests/gpu/ttft.py (the transformers adapter; python3 with torch),
# and prints one closing line: N passed, N failed, N skipped. Everything it
# prints goes to ${OUT:-.}/gpu-run.log as well. Exit status 0 when nothing
# failed. It builds nothing: the GPU machine may lack liburing and liblmdb,
# which the binaries for it link statically.
#
# Environment: O (build directory), OUT (where the log goes), TEST_TIMEOUT
# (seconds per program, default 900), TTFT_ARGS (ttft.py's arguments, e.g.
# --quick), PARTS ("tests" or "ttft" to run one half: the tests and
# benchmarks, or ttft.py; default both).
set -u

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${O:-}" ]; then
	O=build-gpu
	# A bundle: this script sits in <bundle>/tests/gpu beside the binaries.
	if [ ! -x "$O/kvstored" ] && [ -x "$here/../../kvstored" ]; then
		O=$(cd "$here/../.." && pwd)
	fi
fi
OUT=${OUT:-.}
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
mkdir -p "$OUT" || exit 1
log="$OUT/gpu-run.log"

case "$O" in
/*) ;;
*) O="$PWD/$O" ;;
esac
export O KVSTORED="$O/kvstored" KVCTL="$O/kvctl" KVSTORE_BUILD="$O"
# A bundle carries the shared libraries the GPU machine may lack (cmocka).
if [ -d "$O/lib" ]; then
	LD_LIBRARY_PATH="$O/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	export LD_LIBRARY_PATH
fi

pass=0 fail=0 skip=0
failed_names=""

# run NAME COMMAND...: run one program under the timeout, count its result.
run() {
	name=$1
	shift
	echo "==== $name"
	start=$(date +%s)
	timeout -k 10 "$TEST_TIMEOUT" "$@"
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0)
		echo "==== ok   $name (${secs}s)"
		pass=$((pass + 1)) ;;
	77)
		echo "==== SKIP $name (${secs}s)"
		skip=$((skip + 1)) ;;
	*)
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			echo "==== FAIL $name (timed out after ${TEST_TIMEOUT}s)"
		else
			echo "==== FAIL $name (exit $rc, ${secs}s)"
		fi
		fail=$((fail + 1))
		failed_names="$failed_names $name" ;;
	esac
}

main() {
	echo "tests/gpu/run.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n)" \
		"($(uname -sr), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs)"
	echo "build: $O"
	if command -v nvidia-smi >/dev/null 2>&1; then
		nvidia-smi -L
	else
		echo "nvidia-smi: not found"
	fi
	if [ ! -x "$O/kvstored" ]; then
		echo "run.sh: no $O/kvstored: build with CUDA first (make O=build-gpu" \
			"CUDA=1 STATIC_DEPS=1 gpu-bins, or make gpu-bundle), or set O"
		echo "0 passed, 1 failed, 0 skipped"
		return 1
	fi

	if [ "${PARTS:-all}" = ttft ]; then
		run_ttft
		return
	fi
	for t in "$O"/tests/gpu/test_*; do
		case "$t" in
		*.o|*.d) continue ;;
		esac
		if [ ! -f "$t" ] || [ ! -x "$t" ]; then
			continue
		fi
		run "$(basename "$t")" "$t"
	done
	if [ -x "$O/tests/gpu/pinbench" ]; then
		run pinbench "$O/tests/gpu/pinbench"
	fi
	if [ -x "$O/kvbench" ]; then
		run "kvbench --gpu" "$O/kvbench" --gpu --daemon "$KVSTORED"
	else
		echo "==== FAIL kvbench --gpu (no $O/kvbench)"
		fail=$((fail + 1))
		failed_names="$failed_names kvbench"
	fi

	if [ "${PARTS:-all}" != tests ]; then
		run_ttft
		return
	fi
	summary
}

summary() {
	[ -n "$failed_names" ] && echo "failed:$failed_names"
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
}

# The transformers adapter's TTFT (needs python3 with torch and transformers;
# exits 77 without them), then the closing line.
run_ttft() {
	ttft=$here/ttft.py
	if [ -f "$ttft" ] && command -v python3 >/dev/null 2>&1; then
		PYTHONUNBUFFERED=1 KVSTORE_LIB="$O/libkvc.so" run "ttft.py ${TTFT_ARGS:-}" \
			python3 "$ttft" ${TTFT_ARGS:-}
	fi
	summary
}

# POSIX sh has no pipefail: main's status comes back through a file.
status_file=$(mktemp)
trap 'rm -f "$status_file"' EXIT
{
	main
	echo $? >"$status_file"
} 2>&1 | tee "$log"
status=$(cat "$status_file")
[ "${status:-1}" -eq 0 ]
