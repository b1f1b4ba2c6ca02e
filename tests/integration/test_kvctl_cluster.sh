#!/bin/sh
# test_kvctl_cluster.sh - kvctl cluster and kvctl stats' remote figures,
# against a kvstored on a real Redis Cluster (tests/lib/rcluster.sh: 3
# masters and 3 replicas on loopback).
#
# Puts chunks with kvctl, waits until they are written through, then
# checks that `kvctl cluster` shows 3 masters up whose ranges cover the
# 16384 slots, that `kvctl cluster --json` parses and says the same, and
# that `kvctl stats` and `stats --json` carry the remote tier's figures.
#
# Environment: KVSTORED, KVCTL (default build/kvstored and build/kvctl).
# Needs python3, redis-server and redis-cli.
# shellcheck disable=SC2317 # the cases run indirectly, through check()
set -u

KVSTORED=${KVSTORED:-build/kvstored}
KVCTL=${KVCTL:-build/kvctl}
root=$(cd "$(dirname "$0")/../.." && pwd)

. "$(dirname "$0")/lib.sh"
t_init test_kvctl_cluster kvctl

for tool in python3 redis-server redis-cli; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "test_kvctl_cluster.sh: $tool is needed (scripts/deps.sh test)" >&2
		exit 1
	fi
done

cdir="$tmp/cluster"
mkdir "$cdir" || exit 1
# The script stops the cluster once this shell is gone, however it ends.
seeds=$("$root/tests/lib/rcluster.sh" start "$cdir" $$) || exit 1
trap 't_cleanup_cluster' EXIT

t_cleanup_cluster()
{
	"$root/tests/lib/rcluster.sh" stop "$cdir" >/dev/null 2>&1
	t_cleanup
}

t_start()
{
	kvctl_daemon_start --dram-bytes 64M --hbm-bytes 0 --remote "redis-cluster://$seeds"
}

# Before any work the tier has not connected: said, not an error.
t_not_yet()
{
	kv cluster
	[ "$rc" -eq 0 ] && grep -q '^cluster  *not connected yet' "$tmp/out"
}

t_put_written()
{
	head -c 65536 /dev/urandom >"$tmp/data" || return 1
	for k in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do
		kv put --ns shared/kvctl --key "${k}123456789abcdef0123456789abcdef" "$tmp/data"
		[ "$rc" -eq 0 ] || return 1
	done
	i=0
	while [ "$i" -lt 100 ]; do
		kv stats --json
		[ "$rc" -eq 0 ] || return 1
		json_check '[t["demotions"] for t in d["tiers"] if t["name"] == "remote"] == [16]' &&
			return 0
		nap
		i=$((i + 1))
	done
	return 1
}

t_cluster_human()
{
	kv cluster
	[ "$rc" -eq 0 ] && grep -q '^cluster  *up, 3 of 3 masters up' "$tmp/out" &&
		grep -q '^written  *16 chunks, 1.0 MiB (1048576); 0 failed' "$tmp/out" &&
		[ "$(grep -c ' master .* up$' "$tmp/out")" -eq 3 ] &&
		grep -q '^NODE  *ROLE  *SLOTS  *CONNS  *RANGES  *STATE' "$tmp/out" &&
		grep -Eq ' 0-[0-9]+ ' "$tmp/out" && grep -Eq ' [0-9]+-16383 ' "$tmp/out"
}

t_cluster_json()
{
	kv cluster --json
	[ "$rc" -eq 0 ] && json_check 'd["remote"] and d["up"] and d["seen"] and
d["masters"] == 3 and d["masters_down"] == 0 and d["stores"] == 16 and
d["store_bytes"] == 16 * 65536 and len(d["nodes"]) >= 3 and
sorted(s for n in d["nodes"] if n["master"] for r in n["ranges"]
	for s in range(r[0], r[1] + 1)) == list(range(16384)) and
all(n["up"] and n["state"] == 0 and n["error"] is None for n in d["nodes"]) and
all(sum(r[1] - r[0] + 1 for r in n["ranges"]) == n["slots"] for n in d["nodes"])'
}

t_stats_remote()
{
	kv stats
	[ "$rc" -eq 0 ] && grep -q '^tier remote (policy server)' "$tmp/out" &&
		grep -q '^  masters up  *3 of 3$' "$tmp/out" &&
		grep -q '^  written  *16 chunks, 1.0 MiB (1048576) (0 failed)' "$tmp/out" &&
		grep -q '^  timeouts  *0$' "$tmp/out" || return 1
	kv stats --json
	[ "$rc" -eq 0 ] && json_check 'd["remote"]["masters"] == 3 and
d["remote"]["masters_down"] == 0 and d["remote"]["store_bytes"] == 16 * 65536 and
"nodes" not in d["remote"]'
}

t_daemon_stop()
{
	daemon_stop
}

check "daemon on the cluster starts" t_start
[ "$fail" -eq 0 ] || summary
check "cluster before any work: not connected yet" t_not_yet
check "16 chunks put and written through" t_put_written
check "cluster: 3 masters up, their ranges, 16 chunks written" t_cluster_human
check "cluster --json: the masters' ranges cover 0..16383 once" t_cluster_json
check "stats and stats --json show the remote figures" t_stats_remote
check "kvstored stops cleanly on SIGTERM" t_daemon_stop
check "no sanitizer reports from kvctl" kvctl_clean
summary
