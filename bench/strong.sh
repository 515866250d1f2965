#!/usr/bin/env bash
# strong: the strong (Raft, linearizable) row of the design's table, on a
# local 5-node cluster (make bench-strong).
#
# It starts a cluster with `spectra cluster up --nodes 5` in a temporary
# directory on free ports and drives it with redis-benchmark, SET then GET
# (reads are linearizable, spectra's default level for strong keys), at
# 100 and at 1000 concurrent clients:
#
#   redis-benchmark -h 127.0.0.1 -p <node i> -t <test> -c <clients/5>
#                   -d 64 -r 100000 -n <requests/5> --csv
#
# Clients are spread over all five nodes: one redis-benchmark per node, all
# five started together, each with a fifth of the connections and of the
# requests. Each run is bounded by its request count and by a time limit
# (a run that hits the limit fails the benchmark rather than reporting a
# partial number). The five are combined so that no number flatters:
#   ops/s        total requests of the five / wall time from the start of
#                the first to the end of the last (not the sum of their
#                own rates, which counts a fast finisher's idle tail as
#                throughput; that sum is kept in the JSON as sum_rps)
#   p50/p95/p99  the worst of the five. The percentile of the union lies
#                between the smallest and largest of the parts', so the
#                largest is an upper bound on the true one.
# Every node's own row is kept in the JSON too.
#
# It prints a table (workload, clients, ops/s, p50, p95, p99 ms) and writes
# bench/results/strong-<UTC timestamp>.json. The cluster is stopped and its
# directory removed on exit. On a 2-core machine the five redis-benchmarks
# compete with the five nodes for CPU: compare runs on one machine, not
# absolute rates across machines.
#
# Environment: SPECTRA (default bin/spectra), SPECTRAD (bin/spectrad),
# STRONG_NODES (5), STRONG_CLIENTS ("100 1000": total connections per row),
# STRONG_TESTS ("set get"), STRONG_REQUESTS (total requests per row,
# default 100000), STRONG_TIME_LIMIT (seconds per row, 300), STRONG_DATA
# (value bytes, 64), STRONG_KEYSPACE (100000), STRONG_SPECTRAD_FLAGS (more
# spectrad flags, default none), STRONG_ALLOW_NO_LEADER (default 0; 1 goes
# on when the nodes elect no leader, e.g. a spectrad that is not
# cluster-capable yet: the rows are then N independent nodes, marked so in
# the JSON, and say nothing about Raft), STRONG_RESULTS_DIR (where the JSON
# goes, default bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."

SPECTRA=${SPECTRA:-$PWD/bin/spectra}
SPECTRAD=${SPECTRAD:-$PWD/bin/spectrad}
export SPECTRAD
NODES=${STRONG_NODES:-5}
CLIENTS=${STRONG_CLIENTS:-"100 1000"}
TESTS=${STRONG_TESTS:-"set get"}
REQUESTS=${STRONG_REQUESTS:-100000}
TIME_LIMIT=${STRONG_TIME_LIMIT:-300}
DATA=${STRONG_DATA:-64}
KEYSPACE=${STRONG_KEYSPACE:-100000}
SPECTRAD_FLAGS=${STRONG_SPECTRAD_FLAGS:-}
ALLOW_NO_LEADER=${STRONG_ALLOW_NO_LEADER:-0}
RESULTS_DIR=${STRONG_RESULTS_DIR:-bench/results}
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
JSON_OUT="$RESULTS_DIR/strong-$STAMP.json"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-bench-strong-XXXXXX")
CLUSTER=$TMP/cluster

cleanup() {
	local rc=$?
	if [ -f "$CLUSTER/cluster.conf" ]; then
		"$SPECTRA" cluster down --dir "$CLUSTER" --timeout 10 >/dev/null 2>&1 || true
	fi
	if [ "$rc" -ne 0 ]; then
		for log in "$CLUSTER"/node-*/spectrad.log "$TMP"/*.err; do
			[ -s "$log" ] || continue
			echo "---- last 20 lines of ${log#"$TMP"/} ----"
			tail -n 20 "$log"
		done
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "strong: $*" >&2
	exit 1
}

[ -x "$SPECTRA" ] || die "no spectra at $SPECTRA (run make)"
[ -x "$SPECTRAD" ] || die "no spectrad at $SPECTRAD (run make)"
command -v redis-benchmark >/dev/null || die "redis-benchmark not installed (make deps)"
command -v redis-cli >/dev/null || die "redis-cli not installed (make deps)"
for c in $CLIENTS; do
	[ $((c % NODES)) -eq 0 ] || die "STRONG_CLIENTS: $c is not a multiple of $NODES nodes"
	[ "$c" -ge "$NODES" ] || die "STRONG_CLIENTS: $c is fewer than $NODES nodes"
done
[ $((REQUESTS % NODES)) -eq 0 ] || die "STRONG_REQUESTS: $REQUESTS is not a multiple of $NODES"

# shellcheck source=tests/lib/ports.sh
source tests/lib/ports.sh

# ---- the cluster -------------------------------------------------------

LEADER=null
CLUSTER_CAPABLE=true
BASE=
start_cluster() {
	local rc
	for _ in 1 2 3; do
		BASE=$(free_base "$NODES")
		local peer
		peer=$(free_base "$NODES")
		rc=0
		# shellcheck disable=SC2086 # SPECTRAD_FLAGS is words on purpose
		"$SPECTRA" cluster up --nodes "$NODES" --dir "$CLUSTER" --base-port "$BASE" \
			--peer-base-port "$peer" --name bench-strong --wait 60 \
			-- --loglevel warn $SPECTRAD_FLAGS >"$TMP/up.out" 2>"$TMP/up.err" || rc=$?
		if [ "$rc" -eq 0 ]; then
			LEADER=$(sed -n 's/^leader: node \([0-9]*\).*/\1/p' "$TMP/up.out")
			return 0
		fi
		if grep -q "already answers" "$TMP/up.err"; then
			"$SPECTRA" cluster down --dir "$CLUSTER" >/dev/null 2>&1 || true
			rm -rf "$CLUSTER"
			continue
		fi
		if [ "$ALLOW_NO_LEADER" = 1 ] && grep -q "not cluster-capable" "$TMP/up.err"; then
			CLUSTER_CAPABLE=false
			echo "strong: WARNING: spectrad is not cluster-capable; measuring $NODES" \
				"independent nodes (STRONG_ALLOW_NO_LEADER=1)" >&2
			return 0
		fi
		cat "$TMP/up.out" "$TMP/up.err" >&2
		die "spectra cluster up failed"
	done
	die "no free ports for the cluster after 3 attempts"
}

# sanity: every node takes a write and serves a read before the numbers
# mean anything (a node that refuses writes would show up as a fast
# benchmark of errors).
sanity() {
	local i port got
	for i in $(seq 1 "$NODES"); do
		port=$((BASE + i - 1))
		got=$(redis-cli -p "$port" SET "bench:sanity:$i" "v$i" 2>&1) || true
		[ "$got" = OK ] || die "node $i (port $port) refused SET: $got"
		got=$(redis-cli -p "$port" GET "bench:sanity:$i" 2>&1) || true
		[ "$got" = "v$i" ] || die "node $i (port $port) GET gave '$got', wanted 'v$i'"
	done
}

# ---- one row -----------------------------------------------------------

# csv_row FILE TEST: "rps avg min p50 p95 p99 max" from redis-benchmark's
# CSV output in FILE.
csv_row() {
	local upper row
	upper=$(echo "$2" | tr '[:lower:]' '[:upper:]')
	row=$(tr -d '\r' <"$1" | grep "^\"$upper\"," | head -n 1) || return 1
	echo "$row" | tr -d '"' | awk -F, '{ print $2, $3, $4, $5, $6, $7, $8 }'
}

now_s() {
	date +%s.%N
}

ROWS=()
# run_row TEST CLIENTS: one redis-benchmark per node in parallel; prints
# the table line and adds the JSON row.
run_row() {
	local test=$1 clients=$2 per_c=$(($2 / NODES)) per_n=$((REQUESTS / NODES))
	local i port t0 t1 pids=() failed=0
	t0=$(now_s)
	for i in $(seq 1 "$NODES"); do
		port=$((BASE + i - 1))
		timeout --kill-after=10 "$TIME_LIMIT" redis-benchmark -h 127.0.0.1 -p "$port" \
			-t "$test" -c "$per_c" -d "$DATA" -r "$KEYSPACE" -n "$per_n" --csv \
			>"$TMP/$test-$clients-$i.out" 2>"$TMP/$test-$clients-$i.err" &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		local rc=0
		wait "${pids[$i]}" || rc=$?
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			echo "strong: $test with $clients clients: node $((i + 1))'s redis-benchmark" \
				"hit the ${TIME_LIMIT}s limit" >&2
			failed=1
		elif [ "$rc" -ne 0 ]; then
			echo "strong: $test with $clients clients: node $((i + 1))'s redis-benchmark" \
				"exited $rc" >&2
			failed=1
		fi
	done
	t1=$(now_s)
	[ "$failed" = 0 ] || die "$test with $clients clients did not finish (raise STRONG_TIME_LIMIT or lower STRONG_REQUESTS)"

	local nodes_json=() rows=() errors=0 f
	for i in $(seq 1 "$NODES"); do
		f=$TMP/$test-$clients-$i
		local row
		row=$(csv_row "$f.out" "$test") || die "no CSV row for $test from node $i: $(tail -n 3 "$f.out" "$f.err")"
		rows+=("$row")
		local e rps avg min p50 p95 p99 max
		e=$(cat "$f.out" "$f.err" | grep -ci "error" || true)
		errors=$((errors + e))
		read -r rps avg min p50 p95 p99 max <<<"$row"
		nodes_json+=("$(printf '{"node": %d, "port": %d, "clients": %d, "requests": %d, "rps": %s, "avg_ms": %s, "min_ms": %s, "p50_ms": %s, "p95_ms": %s, "p99_ms": %s, "max_ms": %s}' \
			"$i" "$((BASE + i - 1))" "$per_c" "$per_n" "$rps" "$avg" "$min" "$p50" "$p95" "$p99" "$max")")
	done
	[ "$errors" -eq 0 ] || die "$test with $clients clients: redis-benchmark reported $errors error lines (see $TMP)"

	# Combine: wall-clock throughput; worst percentiles; the sum of rates
	# for reference.
	local combined
	combined=$(printf '%s\n' "${rows[@]}" | awk -v total="$REQUESTS" -v t0="$t0" -v t1="$t1" '
		{ sum += $1; if ($4 > p50) p50 = $4; if ($5 > p95) p95 = $5; if ($6 > p99) p99 = $6 }
		END { wall = t1 - t0; printf "%.2f %.2f %.3f %.3f %.3f %.3f", total / wall, sum, wall, p50, p95, p99 }')
	local ops sum_rps wall w50 w95 w99
	read -r ops sum_rps wall w50 w95 w99 <<<"$combined"
	printf '%-8s %8d %12.0f %9s %9s %9s\n' "$test" "$clients" "$ops" "$w50" "$w95" "$w99"
	local joined
	joined=$(
		IFS=,
		echo "${nodes_json[*]}"
	)
	ROWS+=("$(printf '{"workload": "%s", "clients": %d, "requests": %d, "ops_per_s": %s, "wall_s": %s, "sum_rps": %s, "p50_ms": %s, "p95_ms": %s, "p99_ms": %s, "per_node": [%s]}' \
		"$test" "$clients" "$REQUESTS" "$ops" "$wall" "$sum_rps" "$w50" "$w95" "$w99" "$joined")")
}

# ---- main --------------------------------------------------------------

mkdir -p "$RESULTS_DIR"
SPECTRA_VERSION=$("$SPECTRAD" --version 2>&1 | head -n 1 || true)
BENCH_VERSION=$(redis-benchmark --version | head -n 1)

start_cluster
sanity
if [ "$CLUSTER_CAPABLE" = true ]; then
	what="$NODES-node cluster (leader: node $LEADER), linearizable reads"
else
	what="$NODES independent nodes (NOT a cluster: no leader)"
fi
echo "strong: $what; $(nproc) cores; -d $DATA -r $KEYSPACE, $REQUESTS requests per row" \
	"spread over all nodes"
echo "  spectrad: $SPECTRA_VERSION"
echo "  client:   $BENCH_VERSION"
echo "  ops/s = all requests / wall time; latency = worst node's percentile"
echo
printf '%-8s %8s %12s %9s %9s %9s\n' workload clients "ops/s" "p50 ms" "p95 ms" "p99 ms"
printf '%s\n' "$(printf '%.0s-' $(seq 1 60))"
for c in $CLIENTS; do
	for t in $TESTS; do
		run_row "$t" "$c"
	done
done

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
{
	printf '{\n'
	printf '  "benchmark": "strong",\n'
	printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf '  "host": {"cores": %s, "kernel": "%s"},\n' "$(nproc)" "$(json_escape "$(uname -sr)")"
	printf '  "spectrad": "%s",\n' "$(json_escape "$SPECTRA_VERSION")"
	printf '  "client": "%s",\n' "$(json_escape "$BENCH_VERSION")"
	printf '  "cluster": {"nodes": %s, "leader": %s, "cluster_capable": %s, "spectrad_flags": "%s"},\n' \
		"$NODES" "${LEADER:-null}" "$CLUSTER_CAPABLE" "$(json_escape "--loglevel warn $SPECTRAD_FLAGS")"
	printf '  "params": {"requests_per_row": %s, "data_bytes": %s, "keyspace": %s, "time_limit_s": %s, "read_level": "linearizable"},\n' \
		"$REQUESTS" "$DATA" "$KEYSPACE" "$TIME_LIMIT"
	printf '  "combine": {"ops_per_s": "total requests / wall time of the parallel runs", "percentiles": "max over nodes (an upper bound on the combined percentile)"},\n'
	printf '  "rows": [\n'
	for i in "${!ROWS[@]}"; do
		printf '    %s%s\n' "${ROWS[$i]}" "$([ "$i" -lt $((${#ROWS[@]} - 1)) ] && echo ,)"
	done
	printf '  ]\n}\n'
} >"$JSON_OUT"
echo
echo "wrote $JSON_OUT"
