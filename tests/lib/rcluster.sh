#!/bin/sh
# rcluster.sh - a throwaway Redis Cluster on loopback for the tests:
# 3 masters and 3 replicas, each a redis-server of its own under DIR.
#
# Usage:
#   tests/lib/rcluster.sh start DIR [PID]   # DIR: an empty directory the
#                                     # caller made; PID: stop when it exits
#   tests/lib/rcluster.sh stop DIR    # kill every server, remove DIR
#
# With RC_TLS_DIR set (a directory that holds ca.crt, server.crt,
# server.key, client.crt and client.key, as tests/lib/tls_certs.sh makes
# them), start starts the nodes with TLS only: no plain port, the ports
# printed are their TLS ports, the cluster bus and replication use TLS,
# and clients must show a certificate the CA signed (tls-auth-clients).
#
# start prints one line, the seed list "127.0.0.1:P1,...,127.0.0.1:P6" (the
# first three are the masters as created), once every node reports
# cluster_state:ok and agrees on all 16384 slots. Ports are picked at
# random in 20000..44999 (the bus port is port + 10000) and a server that
# cannot bind is retried on another, so parallel runs do not collide.
# DIR/PORT/ holds each node's files, DIR/PORT.pid its pid, DIR/ports the
# ports in order. cluster-node-timeout is 1000 ms, so a replica takes over
# a killed master within a few seconds; start returns once every replica
# has synced with its master. Needs redis-server and redis-cli
# (scripts/deps.sh test); works as root. Exits 1 with a message on failure,
# having stopped what it started.
set -u

tls=${RC_TLS_DIR:-}

# redis-cli, over TLS in TLS mode.
cli()
{
	if [ -n "$tls" ]; then
		redis-cli --tls --cacert "$tls/ca.crt" --cert "$tls/client.crt" \
			--key "$tls/client.key" "$@"
	else
		redis-cli "$@"
	fi
}

# redis-server's port flags for port $1.
port_flags()
{
	if [ -n "$tls" ]; then
		echo "--port 0 --tls-port $1 --tls-cluster yes --tls-replication yes" \
			"--tls-cert-file $tls/server.crt --tls-key-file $tls/server.key" \
			"--tls-ca-cert-file $tls/ca.crt"
	else
		echo "--port $1"
	fi
}

die()
{
	echo "rcluster.sh: $*" >&2
	exit 1
}

rand_port()
{
	r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
	echo $((20000 + r % 25000))
}

# Start one node on a free port; print the port.
start_node()
{
	dir=$1
	for try in 1 2 3 4 5 6 7 8 9 10; do
		p=$(rand_port)
		[ -e "$dir/$p" ] && continue
		mkdir -p "$dir/$p"
		# shellcheck disable=SC2046
		redis-server $(port_flags "$p") --bind 127.0.0.1 --daemonize yes \
			--pidfile "$dir/$p.pid" --logfile "$dir/$p/log" --dir "$dir/$p" \
			--cluster-enabled yes --cluster-config-file "$dir/$p/nodes.conf" \
			--cluster-node-timeout 1000 --repl-diskless-sync-delay 0 \
			--save '' --appendonly no \
			--protected-mode no >/dev/null 2>&1 || { rm -rf "${dir:?}/$p"; continue; }
		i=0
		while [ $i -lt 50 ]; do
			if [ "$(cli -p "$p" ping 2>/dev/null)" = PONG ]; then
				echo "$p"
				return 0
			fi
			grep -q 'Address already in use\|Could not create server' \
				"$dir/$p/log" 2>/dev/null && break
			sleep 0.1
			i=$((i + 1))
		done
		[ -f "$dir/$p.pid" ] && kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null
		rm -rf "${dir:?}/$p" "$dir/$p.pid"
	done
	return 1
}

stop_all()
{
	dir=$1
	for f in "$dir"/*.pid; do
		[ -f "$f" ] || continue
		kill -9 "$(cat "$f")" 2>/dev/null
	done
	# Wait (at most 2 s) until they are gone, so their ports are free.
	for f in "$dir"/*.pid; do
		[ -f "$f" ] || continue
		n=0
		while kill -0 "$(cat "$f")" 2>/dev/null && [ $n -lt 40 ]; do
			sleep 0.05
			n=$((n + 1))
		done
	done
	rm -rf "${dir:?}"
}

cmd=${1:-}
dir=${2:-}
[ -n "$dir" ] && [ -d "$dir" ] || die "usage: $0 start|stop DIR (an existing directory)"

case "$cmd" in
stop)
	stop_all "$dir"
	exit 0
	;;
start) ;;
*) die "usage: $0 start|stop DIR" ;;
esac

for t in redis-server redis-cli; do
	command -v $t >/dev/null 2>&1 ||
		die "$t not found: install it with scripts/deps.sh test (redis-server redis-tools)"
done

trap "stop_all $dir" HUP INT TERM
ports=""
addrs=""
for i in 1 2 3 4 5 6; do
	p=$(start_node "$dir") || { stop_all "$dir"; die "cannot start redis-server (see its log)"; }
	ports="$ports $p"
	addrs="$addrs 127.0.0.1:$p"
done
echo $ports >"$dir/ports"

# shellcheck disable=SC2086
if ! cli --cluster create $addrs --cluster-replicas 1 --cluster-yes \
	>"$dir/create.log" 2>&1; then
	cat "$dir/create.log" >&2
	stop_all "$dir"
	die "redis-cli --cluster create failed"
fi

# A watchdog: the cluster goes when its owner does, however it ends.
if [ -n "${3:-}" ]; then
	owner=$3
	(
		trap '' HUP INT
		while kill -0 "$owner" 2>/dev/null && [ -d "$dir" ]; do
			sleep 1
		done
		stop_all "$dir"
	) </dev/null >/dev/null 2>&1 &
fi

# Every node ok, every node's view of the slots complete, and every
# replica synced (a replica that never synced cannot take over).
i=0
while :; do
	ok=1
	for p in $ports; do
		info=$(cli -p "$p" cluster info 2>/dev/null | tr -d '\r')
		case "$info" in
		*cluster_state:ok*cluster_slots_ok:16384*) ;;
		*) ok=0 ;;
		esac
		repl=$(cli -p "$p" info replication 2>/dev/null | tr -d '\r')
		case "$repl" in
		*role:master*) ;;
		*master_link_status:up*) ;;
		*) ok=0 ;;
		esac
	done
	# shellcheck disable=SC2086
	set -- $ports
	first=$1
	if [ $ok = 1 ] && cli --cluster check "127.0.0.1:$first" >/dev/null 2>&1; then
		break
	fi
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		stop_all "$dir"
		die "the cluster did not reach cluster_state:ok in 30 s"
	fi
	sleep 0.1
done

# shellcheck disable=SC2086
echo $addrs | tr ' ' ','
