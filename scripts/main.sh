#!/usr/bin/env bash
# The main job: install what is needed, build, start one local spectrad
# node, drive it with a short real workload (redis-benchmark, redis-cli),
# print what it did, and stop the node. Later issues grow this into a
# 5-node cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
make -j2 >/dev/null

PORT=${PORT:-7379}
DIR=$(mktemp -d /tmp/spectra-main.XXXXXX)
cleanup() {
	bin/spectra node stop --dir "$DIR" >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

echo "== starting a spectrad node (fsync always) on 127.0.0.1:$PORT"
bin/spectra node start --dir "$DIR" --port "$PORT" -- --fsync always
bin/spectra node status --dir "$DIR"

# bench LABEL ARGS...: one redis-benchmark run, one table row per command.
bench() {
	local label=$1
	shift
	redis-benchmark -p "$PORT" -c 50 -d 64 -r 100000 --csv "$@" | tr -d '"' |
		awk -F, -v label="$label" 'NR > 1 { printf "  %-5s %-12s %10.0f req/s   p50 %6.3f  p95 %6.3f  p99 %6.3f ms\n", $1, label, $2, $5, $6, $7 }'
}

echo
echo "== redis-benchmark: 50 clients, 64-byte values, random keys from 100,000"
bench "1 in flight" -t set,get,incr -n 100000
bench "16 in flight" -t set,get -n 300000 -P 16

echo
echo "== a model registry entry, written and read back with redis-cli"
redis-cli -p "$PORT" SET model:resnet50:production v7 >/dev/null
redis-cli -p "$PORT" INCR counter:training-jobs >/dev/null
echo "model:resnet50:production = $(redis-cli -p "$PORT" GET model:resnet50:production)"
echo "counter:training-jobs     = $(redis-cli -p "$PORT" GET counter:training-jobs)"
echo "keys in the node          = $(redis-cli -p "$PORT" DBSIZE)"
echo
echo "== durability (INFO persistence)"
redis-cli -p "$PORT" INFO persistence | tr -d '\r' | grep -E '^(fsync|batches_committed|batches_durable|syncs|sync_avg_us|checkpoints|wal_bytes|store_used_bytes):'

echo
echo "== restart: the data survives"
bin/spectra node stop --dir "$DIR"
bin/spectra node start --dir "$DIR" --port "$PORT" -- --fsync always >/dev/null
echo "after restart: model:resnet50:production = $(redis-cli -p "$PORT" GET model:resnet50:production), keys = $(redis-cli -p "$PORT" DBSIZE)"
