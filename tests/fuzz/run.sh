#!/bin/sh
# run.sh - run the protocol fuzzer for a while; exit non-zero on any finding.
#
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS   (make fuzz-run; make fuzz
# built BUILD_DIR/fuzz_proto). Builds the seed generator (fuzz_proto.c with
# -DKV_FUZZ_SEEDS) next to it, writes the seeds into fuzz-corpus/proto (kept
# between runs, git-ignored), fuzzes that corpus for SECONDS, and ends with
# one line: runs, execs/s, coverage, corpus size and the number of findings.
# Crash, leak, timeout and OOM inputs go to fuzz-corpus/artifacts/; the log
# is BUILD_DIR/fuzz_proto.log.
set -u
build=${1:?usage: tests/fuzz/run.sh BUILD_DIR SECONDS}
secs=${2:?usage: tests/fuzz/run.sh BUILD_DIR SECONDS}
fuzzer=$build/fuzz_proto
corpus=fuzz-corpus/proto
artifacts=fuzz-corpus/artifacts
log=$build/fuzz_proto.log

if [ ! -x "$fuzzer" ]; then
	echo "run.sh: $fuzzer is not built: run 'make fuzz'" >&2
	exit 2
fi
mkdir -p "$corpus" "$artifacts" || exit 2

cc=$(command -v clang || command -v cc)
if ! "$cc" -std=gnu11 -D_GNU_SOURCE -DKV_FUZZ_SEEDS -O1 -g -I. \
	-o "$build/mkseeds" tests/fuzz/fuzz_proto.c lib/proto.c lib/errors.c; then
	echo "run.sh: cannot build the seed generator" >&2
	exit 2
fi
"$build/mkseeds" "$corpus" || exit 2

before=$(ls "$artifacts" | wc -l)
"$fuzzer" -max_total_time="$secs" -max_len=70000 -timeout=10 \
	-print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
rc=$?
findings=$(( $(ls "$artifacts" | wc -l) - before ))

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
# the last status line: "#N DONE cov: C ft: F corp: K/SIZE ..."
cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 |
	sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, ft \2, corpus \3/p')

if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
	tail -n 60 "$log"
	ls -t "$artifacts" | head -n "$(( findings > 0 ? findings : 1 ))" |
		sed "s|^|finding: $artifacts/|"
	[ "$findings" -gt 0 ] || findings=1
fi
printf 'fuzz_proto: %s runs (limit %ss, %s exec/s, %s, peak rss %s MB), exit %s, %s finding(s)\n' \
	"${runs:-?}" "$secs" "${eps:-?}" "${cov:-no coverage line}" "${rss:-?}" "$rc" "$findings"
[ "$rc" -eq 0 ] && [ "$findings" -eq 0 ]
