#!/bin/sh
# ssdbench.sh - SSD-tier get bandwidth against fio O_DIRECT random reads:
# chunks of 1 MiB and 32 MiB, queue depth 1 and 32, each codec.
#
#   tests/bench/ssdbench.sh [DIR]     (make ssdbench runs it)
#
# It makes one directory under DIR (default /var/tmp; give a directory on
# the disk under test) and, for each size and depth, runs fio randread
# (O_DIRECT, io_uring, that block size and iodepth, over a file the size
# of the store's data set) and kvssdbench with each codec, fio again
# between the store's runs: fio, none, fio, zstd, fio, shuffle+zstd, fio.
# A store run's ceiling is the higher of the fio runs just before and just
# after it (TESTING.md: the disk is shared and drifts; the higher one never
# flatters the store). kvssdbench prints its own ratio to the run before
# it (--fio-mbps); the table at the end uses the higher one. Both fio and
# the store read with O_DIRECT, so the page cache plays no part.
#
# At qd > 1 fio also runs once in batch mode (it submits qd reads at once
# and waits for all of them, as one kvc_get_batch of qd chunks does): a
# batch drains the queue at its end, which continuous fio never does, so
# "vs batch" tells the store's own cost apart from that of the batch shape.
#
# fio comes from Debian (apt-get install fio, as root, with one apt-get
# update if that fails); without it the store runs alone, without ratios.
#
# Environment: KVSSDBENCH (default build/kvssdbench), KVSTORED (default
# build/kvstored), FIO (default fio), FIO_SECONDS (per fio run, default 3),
# STORE_SECONDS (aimed-for length of a store measurement, default 3),
# SSDBENCH_SIZES ("1M 32M"), SSDBENCH_QDS ("1 32"), SSDBENCH_CODECS ("none
# zstd shuffle+zstd").
#
# Exit status: 0, or 1 if a kvssdbench run failed (wrong bytes, a call that
# failed); low figures never fail it.
set -u

KVSSDBENCH=${KVSSDBENCH:-build/kvssdbench}
KVSTORED=${KVSTORED:-build/kvstored}
export KVSTORED
PARENT=${1:-/var/tmp}
FIO_SECONDS=${FIO_SECONDS:-3}
STORE_SECONDS=${STORE_SECONDS:-3}
SIZES=${SSDBENCH_SIZES:-1M 32M}
QDS=${SSDBENCH_QDS:-1 32}
CODECS=${SSDBENCH_CODECS:-none zstd shuffle+zstd}
FIO=${FIO:-fio}

die() {
	echo "ssdbench.sh: $*" >&2
	exit 1
}

[ -x "$KVSSDBENCH" ] || die "no $KVSSDBENCH (make O=... ssdbench builds it)"
[ -x "$KVSTORED" ] || die "no $KVSTORED"
[ -d "$PARENT" ] || die "no directory '$PARENT'"

# ---- fio ------------------------------------------------------------------
have_fio() {
	command -v "$FIO" >/dev/null 2>&1
}

apt_fio() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q fio >/dev/null 2>&1
}

if ! have_fio && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "ssdbench.sh: installing fio (apt-get install fio)"
	apt_fio || { apt-get update -q >/dev/null 2>&1 && apt_fio; }
fi
if have_fio; then
	echo "ssdbench.sh: $("$FIO" --version)"
else
	echo "ssdbench.sh: fio is missing and could not be installed: running the store" \
		"without a ceiling (no ratios)"
fi

# "1M" -> 1048576 (binary suffixes, as kvssdbench takes them)
bytes_of() {
	case "$1" in
	*[kK]) echo $(( ${1%?} * 1024 )) ;;
	*[mM]) echo $(( ${1%?} * 1024 * 1024 )) ;;
	*[gG]) echo $(( ${1%?} * 1024 * 1024 * 1024 )) ;;
	*) echo "$1" ;;
	esac
}

# fio's read bandwidth in MB/s (1e6 B/s) on stdin's JSON; nothing if none.
fio_mbps_of() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import json, sys
t = sys.stdin.read()
try:
    j = json.loads(t[t.index("{"):])
    print("%.1f" % (j["jobs"][0]["read"]["bw_bytes"] / 1e6))
except Exception:
    pass'
	elif command -v jq >/dev/null 2>&1; then
		sed -n '/^{/,$p' | jq -r '.jobs[0].read.bw_bytes / 1e6' 2>/dev/null
	fi
}

# run_fio SIZE_BYTES QD DATA_BYTES [batch]: print MB/s, or nothing (errors on
# stderr). With "batch", fio works as kvc_get_batch does: it submits QD reads
# at once and waits for all of them before the next QD.
run_fio() {
	have_fio || return 0
	batch=""
	[ "${4:-}" = batch ] && batch="--iodepth_batch_submit=$2 --iodepth_batch_complete_min=$2"
	# shellcheck disable=SC2086
	mbps=$("$FIO" --name=ceiling --directory="$DIR" --rw=randread --direct=1 \
		--ioengine=io_uring --bs="$1" --iodepth="$2" $batch --size="$3" \
		--runtime="$FIO_SECONDS" --time_based --group_reporting \
		--output-format=json 2>"$DIR/fio.err" | fio_mbps_of)
	if [ -n "$mbps" ]; then
		echo "fio randread bs=$1 iodepth=$2${4:+ $4}: $mbps MB/s" >&2
		echo "$mbps"
	else
		echo "ssdbench.sh: fio gave no bandwidth:" >&2
		tail -n 5 "$DIR/fio.err" >&2
	fi
}

# value of KEY on a "result: k=v ..." line (stdin)
result_of() {
	sed -n 's/^result: //p' | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# ---- the runs ---------------------------------------------------------------
DIR=$(mktemp -d "$PARENT/ssdbench.XXXXXX") || die "cannot make a directory in '$PARENT'"
trap 'rm -rf "$DIR"' EXIT
trap 'exit 130' INT TERM
ROWS="$DIR/rows"
: >"$ROWS"
status=0
start=$(date +%s)
echo "ssdbench.sh: in $DIR ($(df -P "$DIR" | awk 'NR == 2 { print $1 }')); $(nproc) CPUs;" \
	"kvstored $KVSTORED"

for size in $SIZES; do
	sb=$(bytes_of "$size")
	for qd in $QDS; do
		batch=$((sb * qd))
		# The data set (fio's file, the store's chunks): 512 MiB, or one
		# batch if more. Both read O_DIRECT: no cache to outgrow.
		data=$((512 * 1024 * 1024))
		[ "$batch" -gt "$data" ] && data=$batch
		echo
		echo "== $size chunks, qd $qd, data set $((data / 1048576)) MiB"
		fbatch=-
		if [ "$qd" -gt 1 ]; then
			fbatch=$(run_fio "$sb" "$qd" "$data" batch)
			fbatch=${fbatch:--}
		fi
		before=$(run_fio "$sb" "$qd" "$data")
		for codec in $CODECS; do
			# About STORE_SECONDS of reading at fio's pace, whole batches.
			if [ -n "$before" ]; then
				total=$(awk -v m="$before" -v b="$batch" -v s="$STORE_SECONDS" \
					'BEGIN { n = int(m * 1e6 * s / b) + 1; if (n < 2) n = 2;
						 printf "%.0f", n * b }')
			else
				total=$data
			fi
			out=$("$KVSSDBENCH" --dir "$DIR" --codec "$codec" --size "$sb" --qd "$qd" \
				--data "$data" --total "$total" --seconds $((2 * STORE_SECONDS)) \
				${before:+--fio-mbps "$before"} 2>&1)
			rc=$?
			echo "$out" | sed 's/^/    /'
			after=$(run_fio "$sb" "$qd" "$data")
			if [ "$rc" -ne 0 ]; then
				echo "ssdbench.sh: kvssdbench failed (exit $rc): $size qd $qd $codec"
				status=1
				echo "$size $qd $codec FAIL - ${before:--} ${after:--} - - -" >>"$ROWS"
			else
				g=$(echo "$out" | result_of "qd${qd}_gbps")
				sr=$(echo "$out" | result_of stored_ratio)
				pin=$(echo "$out" | result_of "qd${qd}_pin_gbps")
				cp=$(echo "$out" | result_of "qd${qd}_copy_gbps")
				echo "$size $qd $codec $g $sr ${before:--} ${after:--} $pin $cp $fbatch" \
					>>"$ROWS"
			fi
			before=$after
		done
	done
done

echo
echo "## SSD-tier get vs fio O_DIRECT randread ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs)"
echo
echo "store GB/s: decoded bytes delivered by kvc_get_batch of qd chunks (all promoted at"
echo "once from SSD) per second. fio GB/s: the higher of the fio runs right before and"
echo "after the store's run (both listed); ratio = store / fio. fio batch: fio submitting"
echo "qd reads at once and waiting for all of them, as a batch get does (one run before"
echo "the codecs; same at qd 1). stored: raw / SSD bytes. pin / copy: kvc_pin (read,"
echo "check, decode into DRAM) and the copy out, timed apart. GB = 1e9 B."
echo "Target: ratio >= 0.90 with codec none."
echo
echo "| size | qd | codec | store GB/s | fio GB/s | ratio | fio batch GB/s | vs batch |" \
	"stored ratio | fio before / after | pin / copy GB/s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
awk '{
	size = $1; qd = $2; codec = $3; g = $4; sr = $5; b = $6; a = $7; pin = $8; cp = $9
	fb = $10
	fio = ""
	if (b != "-") fio = b / 1e3
	if (a != "-" && (fio == "" || a / 1e3 > fio)) fio = a / 1e3
	fs = (fio == "" ? "-" : sprintf("%.3f", fio))
	ba = (b == "-" ? "-" : sprintf("%.3f", b / 1e3)) " / " \
	     (a == "-" ? "-" : sprintf("%.3f", a / 1e3))
	fbs = (fb == "-" ? "-" : sprintf("%.3f", fb / 1e3))
	if (g == "FAIL") {
		printf "| %s | %s | %s | FAILED | %s | - | %s | - | - | %s | - |\n", \
			size, qd, codec, fs, fbs, ba
		next
	}
	printf "| %s | %s | %s | %.3f | %s | %s | %s | %s | %.3f | %s | %.3f / %.2f |\n", \
		size, qd, codec, g, fs, (fio == "" ? "-" : sprintf("%.2f", g / fio)), fbs, \
		(fb == "-" ? "-" : sprintf("%.2f", g * 1e3 / fb)), sr, ba, pin, cp
}' "$ROWS"
echo
echo "ssdbench.sh: $(($(date +%s) - start)) s"
exit $status
