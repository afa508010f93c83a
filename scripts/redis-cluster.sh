#!/bin/sh
# Starts a throwaway Redis Cluster on loopback for measurements: 3 masters
# with one replica each, ports BASE..BASE+5 (default 17000), data under a
# temporary directory, with the settings the README's production section
# names (AOF fsync'd on every write). Prints the node addresses as
# REDIS_ADDR for mailhook-bench, e.g.
#
#	eval "$(scripts/redis-cluster.sh)"
#	bin/mailhook-bench --backend redis --shards 6 --no-sink
#	kill $REDIS_CLUSTER_PIDS
set -e
base=${1:-17000}
dir=$(mktemp -d /tmp/mailhook-redis-cluster.XXXXXX)
addrs="" pids=""
for i in 0 1 2 3 4 5; do
	port=$((base + i))
	mkdir -p "$dir/$port"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" \
		--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
		--appendonly yes --appendfsync always --save "" --daemonize no >"$dir/$port/log" 2>&1 &
	pids="$pids $!"
	addrs="$addrs 127.0.0.1:$port"
done
for a in $addrs; do
	until redis-cli -h 127.0.0.1 -p "${a#*:}" ping >/dev/null 2>&1; do sleep 0.1; done
done
# shellcheck disable=SC2086
redis-cli --cluster create $addrs --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1
until redis-cli -p "$base" cluster info | grep -q cluster_state:ok; do sleep 0.2; done
echo "REDIS_ADDR=$(echo $addrs | tr ' ' ,); export REDIS_ADDR"
echo "REDIS_CLUSTER_PIDS='$pids'; REDIS_CLUSTER_DIR=$dir"
