#!/bin/sh
# test_kvctl.sh - kvctl end to end, against a real kvstored.
#
# Starts a daemon on a socket in a temporary directory, drives every kvctl
# command through it and checks outputs and exit statuses. Prints
# "ok - NAME" or "not ok - NAME" per case, then cmocka-style summary lines
# for tests/run.sh; exits 1 if any case failed.
#
# Environment: KVSTORED, KVCTL (the binaries; default build/kvstored and
# build/kvctl). Needs python3 to check the JSON output.
# shellcheck disable=SC2317 # the cases run indirectly, through check()
set -u

KVSTORED=${KVSTORED:-build/kvstored}
KVCTL=${KVCTL:-build/kvctl}

. "$(dirname "$0")/lib.sh"
t_init test_kvctl kvctl

ns="test/kvctl"
k1=0123456789abcdef0123456789abcdef
k2=fedcba9876543210fedcba9876543210
absent=ffffffffffffffffffffffffffffffff

# ---- the daemon ------------------------------------------------------------

t_start()
{
	kvctl_daemon_start --dram-bytes 64M
}

t_health()
{
	kv health
	[ "$rc" -eq 0 ] && grep -q '^ok' "$tmp/out" || return 1
	kv health --json
	[ "$rc" -eq 0 ] && json_check 'd["status"] == "ok" and d["connections"] >= 1'
}

# ---- put and get -------------------------------------------------------------

t_put_get_file()
{
	head -c 3145728 /dev/urandom >"$tmp/data" || return 1
	kv put --ns "$ns" --key "$k1" --tokens 256 --position 0 "$tmp/data"
	[ "$rc" -eq 0 ] || return 1
	kv get --ns "$ns" --key "$k1" -o "$tmp/got"
	[ "$rc" -eq 0 ] && cmp -s "$tmp/data" "$tmp/got"
}

t_get_stdout()
{
	kv get --ns "$ns" --key "$k1"
	[ "$rc" -eq 0 ] && cmp -s "$tmp/data" "$tmp/out"
}

t_put_again()
{
	kv put --ns "$ns" --key "$k1" "$tmp/data"
	[ "$rc" -eq 0 ] && grep -q 'already cached' "$tmp/out"
}

t_get_absent()
{
	kv get --ns "$ns" --key "$absent" -o "$tmp/absent"
	[ "$rc" -eq 1 ] && grep -q 'miss' "$tmp/err" && [ ! -e "$tmp/absent" ]
}

t_put_stdin_parent()
{
	head -c 4096 /dev/urandom >"$tmp/small" || return 1
	"$KVCTL" --socket "$sock" put --ns="$ns" --key="$k2" --parent="$k1" \
		--tokens=256 --position=256 - <"$tmp/small" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	cat "$tmp/err" >>"$tmp/kvctl.err"
	[ "$rc" -eq 0 ] || return 1
	kv get --ns "$ns" --key "$k2"
	[ "$rc" -eq 0 ] && cmp -s "$tmp/small" "$tmp/out"
}

# ---- stats, ls, inspect --------------------------------------------------------

t_stats_json()
{
	kv stats --json
	[ "$rc" -eq 0 ] || return 1
	json_check '[t["chunks"] for t in d["tiers"] if t["name"] == "dram"] == [1] and
all(k in d for k in ("connections", "pinned_chunks", "pending_chunks",
	"checksum_failures", "namespaces", "uptime_ms")) and
all(d[k] == 0 for k in ("plans_loaded", "plans_computed", "plans_both",
	"plan_tokens_loaded", "plan_tokens_computed")) and
all((t["read_bw"], t["read_samples"], t["read_bytes"]) == (0, 0, 0) for t in d["tiers"])'
}

t_stats_human()
{
	kv stats
	[ "$rc" -eq 0 ] && grep -q 'dram' "$tmp/out" && grep -q 'hit ratio' "$tmp/out" &&
		grep -q 'read bw  *- (no sample yet)' "$tmp/out" &&
		grep -q '^plans  *loaded 0, computed 0, both 0' "$tmp/out"
}

t_ls()
{
	kv ls
	[ "$rc" -eq 0 ] && grep -q "$k1" "$tmp/out" || return 1
	kv ls --ns "$ns" --tier dram
	[ "$rc" -eq 0 ] && grep -q "$k1" "$tmp/out"
}

t_ls_json()
{
	kv ls --json
	[ "$rc" -eq 0 ] &&
	json_check '[c["bytes"] for c in d["chunks"] if c["key"] == "'"$k1"'"] == [3145728]'
}

t_ls_tier_filter()
{
	kv ls --ns "$ns" --tier dram --json
	[ "$rc" -eq 0 ] || return 1
	json_check 'len(d["chunks"]) >= 1' || return 1
	# A tier this daemon does not have is an error, as for flush.
	kv ls --ns "$ns" --tier ssd
	[ "$rc" -eq 2 ] && grep -q 'no such tier' "$tmp/err"
}

t_inspect()
{
	kv inspect --ns "$ns" --key "$k1"
	[ "$rc" -eq 0 ] && grep -q '3145728' "$tmp/out"
}

t_inspect_parent()
{
	kv inspect --ns "$ns" --key "$k2" --json
	[ "$rc" -eq 0 ] && json_check 'd["has_parent"] is True and d["parent"] == "'"$k1"'" and
d["bytes"] == 4096 and d["tokens"] == 256 and d["position"] == 256' || return 1
	kv inspect --ns "$ns" --key "$k1" --json
	[ "$rc" -eq 0 ] && json_check 'd["has_parent"] is False and d["bytes"] == 3145728'
}

t_inspect_absent()
{
	kv inspect --ns "$ns" --key "$absent"
	[ "$rc" -eq 1 ] && grep -q 'not cached' "$tmp/err"
}

# ---- evict and flush -------------------------------------------------------------

t_evict()
{
	kv evict --ns "$ns" --key "$k1"
	[ "$rc" -eq 0 ] || return 1
	kv get --ns "$ns" --key "$k1"
	[ "$rc" -eq 1 ] || return 1
	kv evict --ns "$ns" --key "$k1"
	[ "$rc" -eq 1 ]
}

t_flush_drop()
{
	kv stats --json
	[ "$rc" -eq 0 ] && json_check 'd["tiers"][0]["chunks"] > 0' || return 1
	kv flush --drop
	[ "$rc" -eq 0 ] && grep -q 'dropped' "$tmp/out" || return 1
	kv stats --json
	[ "$rc" -eq 0 ] && json_check '[t["chunks"] for t in d["tiers"] if t["name"] == "dram"] == [0]'
}

t_flush_writeback()
{
	kv flush --tier dram
	[ "$rc" -eq 0 ] || return 1
	kv flush --tier bogus
	[ "$rc" -eq 2 ]
}

t_flush_json()
{
	kv flush --tier dram --json
	[ "$rc" -eq 0 ] && json_check 'd["action"] == "write-back" and d["refused"] == 0' || return 1
	kv flush --drop --json
	[ "$rc" -eq 0 ] && json_check 'd["action"] == "drop" and "skipped" in d'
}

# ---- namespaces --------------------------------------------------------------------

t_ns_ls()
{
	kv ns ls
	[ "$rc" -eq 0 ] && grep -q "$ns" "$tmp/out" || return 1
	kv ns ls --json
	[ "$rc" -eq 0 ] && json_check 'any(n["name"] == "'"$ns"'" and n["ns"] == 0 and
n["pending"] is False for n in d["namespaces"])' || return 1
	kv ns frobnicate
	[ "$rc" -eq 2 ] && grep -q "want 'ls' or 'rm NAME'" "$tmp/err"
}

# ls, inspect, evict and get look a namespace up; only put creates one.
t_ns_no_create()
{
	kv stats --json
	[ "$rc" -eq 0 ] || return 1
	before=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["namespaces"])' "$tmp/out")
	kv ls --ns never/created
	[ "$rc" -eq 2 ] && grep -q "no namespace 'never/created'" "$tmp/err" || return 1
	for c in inspect evict get; do
		kv "$c" --ns never/created --key "$k1"
		[ "$rc" -eq 1 ] || return 1
	done
	kv stats --json
	[ "$rc" -eq 0 ] && json_check 'd["namespaces"] == '"$before"
}

t_ns_rm()
{
	kv ns rm "$ns"
	[ "$rc" -eq 0 ] && grep -q "removed namespace '$ns'" "$tmp/out" || return 1
	kv ns ls --json
	[ "$rc" -eq 0 ] && json_check 'not any(n["name"] == "'"$ns"'" for n in d["namespaces"])' ||
		return 1
	kv ns rm "$ns"
	[ "$rc" -eq 2 ] && grep -q 'no such namespace' "$tmp/err"
}

# ---- the remote tier ------------------------------------------------------------------

# This daemon has none: cluster says so (exit 2), stats shows no remote figures.
t_cluster_none()
{
	kv cluster
	[ "$rc" -eq 2 ] && grep -q 'no remote tier' "$tmp/err" || return 1
	kv cluster --json
	[ "$rc" -eq 2 ] && [ ! -s "$tmp/out" ] || return 1
	kv stats --json
	[ "$rc" -eq 0 ] && json_check '"remote" not in d' || return 1
	kv stats
	[ "$rc" -eq 0 ] && ! grep -q 'masters up' "$tmp/out"
}

# ---- errors ------------------------------------------------------------------------

t_bad_key()
{
	kv get --ns "$ns" --key 0123456789abcdef0123456789abcdeg
	[ "$rc" -eq 2 ] && grep -q 'hex' "$tmp/err" || return 1
	kv put --ns "$ns" --key 0123 "$tmp/small"
	[ "$rc" -eq 2 ] && grep -q 'hex' "$tmp/err"
}

t_unknown_command()
{
	kv frobnicate
	[ "$rc" -eq 2 ] && grep -q 'unknown command' "$tmp/err" && grep -q 'usage' "$tmp/err"
}

t_unknown_option()
{
	kv stats --frobnicate
	[ "$rc" -eq 2 ] && grep -q 'usage' "$tmp/err" || return 1
	kv get --key "$k1"
	[ "$rc" -eq 2 ] && grep -q -- '--ns' "$tmp/err"
}

t_help()
{
	kv --help
	[ "$rc" -eq 0 ] && grep -q 'usage' "$tmp/out" || return 1
	kv put --help
	[ "$rc" -eq 0 ] && grep -q -- '--parent' "$tmp/out"
}

t_no_daemon()
{
	"$KVCTL" --socket "$tmp/none.sock" health >"$tmp/out" 2>"$tmp/err"
	rc=$?
	cat "$tmp/err" >>"$tmp/kvctl.err"
	[ "$rc" -eq 2 ] && grep -Fq "$tmp/none.sock" "$tmp/err"
}

t_daemon_stop()
{
	daemon_stop
}

for bin in "$KVSTORED" "$KVCTL"; do
	if [ ! -x "$bin" ]; then
		echo "test_kvctl.sh: '$bin' is not an executable: build it first" >&2
		exit 1
	fi
done
if ! command -v python3 >/dev/null 2>&1; then
	echo "test_kvctl.sh: python3 is needed to check the JSON output" >&2
	exit 1
fi

check "daemon starts and kvctl health answers" t_start
[ "$fail" -eq 0 ] || summary
check "health and health --json" t_health
check "put a 3 MiB file, get -o is byte-exact" t_put_get_file
check "get to stdout is byte-exact" t_get_stdout
check "second put of a key says already cached" t_put_again
check "get of an absent key exits 1" t_get_absent
check "stats --json is one object: dram tier, 1 chunk" t_stats_json
check "stats human output" t_stats_human
check "ls shows the key" t_ls
check "ls --json is valid and lists the key" t_ls_json
check "ls --tier filters; an absent tier is refused" t_ls_tier_filter
check "inspect shows the bytes" t_inspect
check "put from stdin with --opt=value and --parent" t_put_stdin_parent
check "inspect --json shows has_parent and parent" t_inspect_parent
check "inspect of an absent key exits 1" t_inspect_absent
check "evict removes the key, get then exits 1" t_evict
check "flush --drop empties the tier" t_flush_drop
check "flush --tier dram writes back, a bad tier exits 2" t_flush_writeback
check "flush --json" t_flush_json
check "ns ls and ns ls --json list the namespace" t_ns_ls
check "ls, inspect, evict and get --ns never create a namespace" t_ns_no_create
check "cluster without a remote tier exits 2; stats shows no remote figures" t_cluster_none
check "bad key hex exits 2 with a message" t_bad_key
check "unknown command exits 2 with usage" t_unknown_command
check "unknown option or missing --ns exits 2" t_unknown_option
check "--help and COMMAND --help exit 0" t_help
check "health with no daemon exits 2 naming the socket" t_no_daemon
check "ns rm removes the namespace" t_ns_rm
check "kvstored stops cleanly on SIGTERM" t_daemon_stop
check "no sanitizer reports from kvctl" kvctl_clean
summary
