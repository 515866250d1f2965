#!/usr/bin/env bash
# eventual: the eventual row of the design's table, beside Redis with
# replicas, on this machine (make bench-eventual).
#
# Two systems run side by side, each on its own free 127.0.0.1 ports:
#
#   spectra  a 5-node cluster (`spectra cluster up --nodes 5`) with an
#            eventual keyspace, `KEYSPACE CREATE ev MODE eventual RF 3`
#   redis    redis-server as a primary and 4 replicas (--replicaof)
#
# and `spectra bench` drives both, with these workloads at 100 and 1000
# clients (one `spectra bench` run per row):
#
#   spectra  write QUORUM   LEVEL quorum SET ev:{key} {value}   all 5 nodes
#            read ONE       LEVEL one GET ev:{key}              all 5 nodes
#            read QUORUM    LEVEL quorum GET ev:{key}           all 5 nodes
#   redis    SET + WAIT 2   SET k:{key} {value};WAIT 2 0        the primary
#            SET            SET k:{key} {value}                 the primary
#            GET            GET k:{key}                         primary + replicas
#
# Connections go round-robin over the hosts named. Before any row, each
# system gets a write pass over every key (--dist seq), so reads find
# values; Redis then waits for its replicas to have it all. Each row is a
# closed loop of BENCH_SECONDS (10) after BENCH_WARMUP (2) seconds of
# warm-up; rows alternate between the systems so drift in the machine's
# state hits both alike. The ratio column divides spectra's ops/s by
# Redis's for the pairs that ask the same of the system: a QUORUM write
# (2 of 3 replicas) against SET + WAIT 2 (2 replicas have it), and a ONE
# read against a Redis GET.
#
# It prints each row as it finishes, then one summary table, and writes
# bench/results/eventual-<UTC timestamp>.json (every row as `spectra bench`
# reported it, and the pairs with their ratios). Everything it started is
# stopped on exit. On a 2-core machine the client competes with ten
# servers for CPU: compare runs on one machine, not absolute rates across
# machines. Redis runs without persistence (--save '' --appendonly no);
# spectrad with its defaults plus EVENTUAL_SPECTRAD_FLAGS.
#
# Environment: SPECTRA (default bin/spectra), SPECTRAD (bin/spectrad),
# BENCH_SECONDS (10), BENCH_WARMUP (2), EVENTUAL_CLIENTS ("100 1000"),
# EVENTUAL_KEYS (100000), EVENTUAL_VALUE_SIZE (64), EVENTUAL_SYSTEMS
# ("spectra redis"; one alone runs only its half), EVENTUAL_PRELOAD_LEVEL
# (level of spectra's write pass, quorum), EVENTUAL_SPECTRAD_FLAGS (more
# spectrad flags), EVENTUAL_REDIS_FLAGS (more redis-server flags),
# EVENTUAL_RESULTS_DIR (bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."

SPECTRA=${SPECTRA:-$PWD/bin/spectra}
SPECTRAD=${SPECTRAD:-$PWD/bin/spectrad}
export SPECTRAD
SECONDS_PER_ROW=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CLIENTS=${EVENTUAL_CLIENTS:-"100 1000"}
KEYS=${EVENTUAL_KEYS:-100000}
VALUE_SIZE=${EVENTUAL_VALUE_SIZE:-64}
SYSTEMS=${EVENTUAL_SYSTEMS:-"spectra redis"}
PRELOAD_LEVEL=${EVENTUAL_PRELOAD_LEVEL:-quorum}
SPECTRAD_FLAGS=${EVENTUAL_SPECTRAD_FLAGS:-}
REDIS_FLAGS=${EVENTUAL_REDIS_FLAGS:-}
RESULTS_DIR=${EVENTUAL_RESULTS_DIR:-bench/results}
# A run that outlives these was stuck (a `spectra bench` with a request
# count waits for every request): it fails the benchmark.
ROW_LIMIT=$(awk -v s="$SECONDS_PER_ROW" -v w="$WARMUP" 'BEGIN { printf "%d", s + w + 60 }')
PRELOAD_LIMIT=600
NODES=5
REPLICAS=4
RF=3
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
JSON_OUT="$RESULTS_DIR/eventual-$STAMP.json"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-bench-eventual-XXXXXX")
CLUSTER=$TMP/cluster
REDIS_PIDS=()

cleanup() {
	local rc=$? pid
	if [ -f "$CLUSTER/cluster.conf" ]; then
		"$SPECTRA" cluster down --dir "$CLUSTER" --timeout 10 >/dev/null 2>&1 || true
	fi
	for pid in "${REDIS_PIDS[@]}"; do
		sys_stop_pid "$pid"
	done
	if [ "$rc" -ne 0 ]; then
		sys_tail_logs 20 "$CLUSTER"/node-*/spectrad.log "$TMP"/redis-*/redis.log "$TMP"/*.err
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "eventual: $*" >&2
	exit 1
}

has_system() {
	[[ " $SYSTEMS " == *" $1 "* ]]
}

[ -x "$SPECTRA" ] || die "no spectra at $SPECTRA (run make)"
command -v redis-cli >/dev/null || die "redis-cli not installed (make deps)"
for s in $SYSTEMS; do
	case $s in
	spectra) [ -x "$SPECTRAD" ] || die "no spectrad at $SPECTRAD (run make)" ;;
	redis) command -v redis-server >/dev/null || die "redis-server not installed (make deps)" ;;
	*) die "EVENTUAL_SYSTEMS: unknown system '$s' (spectra, redis)" ;;
	esac
done

# shellcheck source=tests/lib/ports.sh
source tests/lib/ports.sh
# shellcheck source=bench/lib/systems.sh
source bench/lib/systems.sh

# ---- spectra: a 5-node cluster and an eventual keyspace ----------------

SPECTRA_BASE=
SPECTRA_HOSTS=
start_spectra() {
	local rc peer i
	for _ in 1 2 3; do
		SPECTRA_BASE=$(free_base "$NODES")
		peer=$(free_base "$NODES")
		rc=0
		# shellcheck disable=SC2086 # SPECTRAD_FLAGS is words on purpose
		"$SPECTRA" cluster up --nodes "$NODES" --dir "$CLUSTER" --base-port "$SPECTRA_BASE" \
			--peer-base-port "$peer" --name bench-eventual --wait 60 \
			-- --loglevel warn $SPECTRAD_FLAGS >"$TMP/up.out" 2>"$TMP/up.err" || rc=$?
		[ "$rc" -eq 0 ] && break
		if grep -q "already answers" "$TMP/up.err"; then
			"$SPECTRA" cluster down --dir "$CLUSTER" >/dev/null 2>&1 || true
			rm -rf "$CLUSTER"
			continue
		fi
		cat "$TMP/up.out" "$TMP/up.err" >&2
		die "spectra cluster up failed"
	done
	[ "$rc" -eq 0 ] || die "no free ports for the spectra cluster after 3 attempts"
	local got
	got=$(redis-cli -p "$SPECTRA_BASE" KEYSPACE CREATE ev MODE eventual RF "$RF" 2>&1) || true
	[ "$got" = OK ] || die "KEYSPACE CREATE ev MODE eventual RF $RF on node 1 gave '$got'"
	SPECTRA_HOSTS=
	for i in $(seq 0 $((NODES - 1))); do
		SPECTRA_HOSTS="$SPECTRA_HOSTS${SPECTRA_HOSTS:+,}127.0.0.1:$((SPECTRA_BASE + i))"
	done
	# Every node knows the keyspace and takes a QUORUM write and read
	# before the numbers mean anything (the definition travels through
	# Raft, so a node may need a moment).
	local port
	for i in $(seq 1 "$NODES"); do
		port=$((SPECTRA_BASE + i - 1))
		for _ in $(seq 1 50); do
			got=$(redis-cli -p "$port" LEVEL quorum SET "ev:sanity:$i" "v$i" 2>&1) || true
			[ "$got" = OK ] && break
			sleep 0.2
		done
		[ "$got" = OK ] || die "node $i (port $port) refused LEVEL quorum SET: $got"
		got=$(redis-cli -p "$port" LEVEL quorum GET "ev:sanity:$i" 2>&1) || true
		[ "$got" = "v$i" ] || die "node $i (port $port) LEVEL quorum GET gave '$got', wanted 'v$i'"
	done
}

# ---- redis: a primary and 4 replicas -------------------------------------

start_redis() {
	# shellcheck disable=SC2086 # REDIS_FLAGS is words on purpose
	sys_redis "$REPLICAS" $REDIS_FLAGS
	local got
	got=$(redis-cli -p "$REDIS_BASE" SET k:sanity v) || true
	[ "$got" = OK ] || die "redis primary refused SET: $got"
	got=$(redis-cli -p "$REDIS_BASE" WAIT "$REPLICAS" 5000) || true
	[ "$got" = "$REPLICAS" ] || die "redis: WAIT $REPLICAS gave '$got'"
}

# ---- rows ------------------------------------------------------------------

ROWS_FILE=$TMP/rows.jsonl
: >"$ROWS_FILE"

# json_num LINE FIELD: a number field of a compact JSON object line.
json_num() {
	local v
	v=$(printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p")
	echo "${v:-0}"
}

# json_errors LINE: the sum of the "errors" object's counts.
json_errors() {
	printf '%s\n' "$1" | sed -n 's/.*"errors":{\([^}]*\)}.*/\1/p' |
		awk -F, '{ for (i = 1; i <= NF; i++) { n = split($i, kv, ":"); s += kv[n] } }
			END { print s + 0 }'
}

declare -A RESULT # "<system>/<workload>/<clients>" -> "ops p50 p95 p99 errors"

# preload SYSTEM HOSTS TEMPLATE: one write to every key, not recorded.
preload() {
	local system=$1 hosts=$2 tmpl=$3 rc=0 out=$TMP/preload-$1 line errors
	timeout --kill-after=10 "$PRELOAD_LIMIT" \
		"$SPECTRA" bench --hosts "$hosts" --clients 100 --requests "$KEYS" --warmup 0 \
		--dist seq --keys "$KEYS" --value-size "$VALUE_SIZE" --op "1:$tmpl" \
		--json "$out.json" --quiet >"$out.out" 2>"$out.err" || rc=$?
	{ [ "$rc" -eq 0 ] && [ -s "$out.json" ]; } ||
		die "$system: the write pass failed: $(tail -n 5 "$out.out" "$out.err")"
	line=$(tail -n 1 "$out.json")
	errors=$(json_errors "$line")
	[ "$errors" -eq 0 ] ||
		die "$system: $errors writes of the write pass failed: $(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$line")"
	printf 'eventual: %s: wrote %s keys in %.1f s\n' "$system" "$KEYS" "$(json_num "$line" seconds)"
}

# run_row SYSTEM WORKLOAD CLIENTS HOSTS TEMPLATE: one `spectra bench`.
run_row() {
	local system=$1 workload=$2 clients=$3 hosts=$4 tmpl=$5 rc=0 out line
	out=$TMP/$system-$workload-$clients
	timeout --kill-after=10 "$ROW_LIMIT" \
		"$SPECTRA" bench --hosts "$hosts" --clients "$clients" --duration "$SECONDS_PER_ROW" \
		--warmup "$WARMUP" --keys "$KEYS" --value-size "$VALUE_SIZE" --op "1:$tmpl" \
		--name "$system/$workload" --json "$out.json" --quiet >"$out.out" 2>"$out.err" || rc=$?
	{ [ "$rc" -eq 0 ] && [ -s "$out.json" ]; } ||
		die "$system $workload with $clients clients failed (exit $rc): $(tail -n 5 "$out.out" "$out.err")"
	line=$(tail -n 1 "$out.json")
	local ops p50 p95 p99 errors
	ops=$(json_num "$line" ops_per_s)
	p50=$(json_num "$line" p50_us)
	p95=$(json_num "$line" p95_us)
	p99=$(json_num "$line" p99_us)
	errors=$(json_errors "$line")
	RESULT["$system/$workload/$clients"]="$ops $p50 $p95 $p99 $errors"
	printf '{"system":"%s","workload":"%s",%s\n' "$system" "$workload" "${line#\{}" \
		>>"$ROWS_FILE"
	printf '  %-8s %-14s %6d clients %10.0f ops/s  p50 %7.3f  p95 %7.3f  p99 %7.3f ms%s\n' \
		"$system" "$workload" "$clients" "$ops" "$(ms "$p50")" "$(ms "$p95")" "$(ms "$p99")" \
		"$([ "$errors" -gt 0 ] && echo "  ($errors errors)")"
	if [ "$errors" -gt 0 ]; then
		echo "eventual: WARNING: $system $workload: $(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$line")" >&2
	fi
}

ms() {
	awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'
}

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

# ---- main --------------------------------------------------------------

mkdir -p "$RESULTS_DIR"
SPECTRA_VERSION=$("$SPECTRAD" --version 2>&1 | head -n 1 || true)
REDIS_VERSION=$(redis-server --version 2>/dev/null | head -n 1 || true)

has_system spectra && start_spectra
has_system redis && start_redis

echo "eventual: $(nproc) cores; $SECONDS_PER_ROW s per row after $WARMUP s warm-up," \
	"$VALUE_SIZE-byte values, $KEYS keys, closed loop"
has_system spectra && echo "  spectra: $NODES nodes, keyspace ev MODE eventual RF $RF ($SPECTRA_HOSTS); $SPECTRA_VERSION"
has_system redis && echo "  redis:   primary $REDIS_PRIMARY + $REPLICAS replicas ($REDIS_ALL); $REDIS_VERSION"

has_system spectra && preload spectra "$SPECTRA_HOSTS" "LEVEL $PRELOAD_LEVEL SET ev:{key} {value}"
if has_system redis; then
	preload redis "$REDIS_PRIMARY" "SET k:{key} {value}"
	got=$(redis-cli -p "$REDIS_BASE" WAIT "$REPLICAS" 60000) || true
	[ "$got" = "$REPLICAS" ] || die "redis: replicas did not catch up with the write pass (WAIT gave '$got')"
fi
echo

for c in $CLIENTS; do
	if has_system spectra; then
		run_row spectra write_quorum "$c" "$SPECTRA_HOSTS" "LEVEL quorum SET ev:{key} {value}"
	fi
	if has_system redis; then
		run_row redis set_wait2 "$c" "$REDIS_PRIMARY" "SET k:{key} {value};WAIT 2 0"
		run_row redis set "$c" "$REDIS_PRIMARY" "SET k:{key} {value}"
	fi
	if has_system spectra; then
		run_row spectra read_one "$c" "$SPECTRA_HOSTS" "LEVEL one GET ev:{key}"
	fi
	if has_system redis; then
		run_row redis get "$c" "$REDIS_ALL" "GET k:{key}"
	fi
	if has_system spectra; then
		run_row spectra read_quorum "$c" "$SPECTRA_HOSTS" "LEVEL quorum GET ev:{key}"
	fi
done

# ---- the summary --------------------------------------------------------

# cell SYSTEM WORKLOAD CLIENTS: "ops p50 p95 p99" for the table, or dashes.
cell() {
	local r=${RESULT["$1/$2/$3"]:-}
	if [ -z "$r" ]; then
		printf '%10s %8s %8s %8s' - - - -
		return
	fi
	local ops p50 p95 p99 errors
	read -r ops p50 p95 p99 errors <<<"$r"
	printf '%10.0f %8s %8s %8s' "$ops" "$(ms "$p50")" "$(ms "$p95")" "$(ms "$p99")"
}

ratio() {
	local a=${RESULT["spectra/$1/$3"]:-} b=${RESULT["redis/$2/$3"]:-}
	if [ -z "$a" ] || [ -z "$b" ]; then
		echo -
		return
	fi
	awk -v a="${a%% *}" -v b="${b%% *}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

PAIRS=()
echo
printf '%7s | %-13s %10s %8s %8s %8s | %-12s %10s %8s %8s %8s | %6s\n' clients spectra "ops/s" \
	"p50 ms" "p95 ms" "p99 ms" redis "ops/s" "p50 ms" "p95 ms" "p99 ms" ratio
printf '%s\n' "$(printf '%.0s-' $(seq 1 118))"
for c in $CLIENTS; do
	# spectra workload, its label, the Redis workload beside it, its label
	for pair in "write_quorum:QUORUM write:set_wait2:SET+WAIT 2" "read_one:ONE read:get:GET" \
		"read_quorum:QUORUM read::" ":-:set:SET"; do
		IFS=: read -r sw slabel rw rlabel <<<"$pair"
		r=-
		[ -n "$sw" ] && [ -n "$rw" ] && r=$(ratio "$sw" "$rw" "$c")
		printf '%7s | %-13s %s | %-12s %s | %6s\n' "$c" "$slabel" "$(cell spectra "$sw" "$c")" \
			"${rlabel:--}" "$(cell redis "$rw" "$c")" "$r"
		if [ -n "$sw" ] && [ -n "$rw" ]; then
			PAIRS+=("$(printf '{"clients": %s, "spectra": "%s", "redis": "%s", "ratio": %s}' \
				"$c" "$sw" "$rw" "$([ "$r" = - ] && echo null || echo "$r")")")
		fi
	done
done
echo "ratio: spectra ops/s / Redis ops/s (QUORUM write vs SET + WAIT 2; ONE read vs GET)"

{
	printf '{\n'
	printf '  "benchmark": "eventual",\n'
	printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf '  "host": {"cores": %s, "kernel": "%s"},\n' "$(nproc)" "$(json_escape "$(uname -sr)")"
	printf '  "spectrad": "%s",\n' "$(json_escape "$SPECTRA_VERSION")"
	printf '  "redis": "%s",\n' "$(json_escape "$REDIS_VERSION")"
	printf '  "systems": "%s",\n' "$(json_escape "$SYSTEMS")"
	printf '  "spectra_cluster": {"nodes": %s, "keyspace": "ev", "mode": "eventual", "rf": %s, "hosts": "%s", "spectrad_flags": "%s", "preload_level": "%s"},\n' \
		"$NODES" "$RF" "$SPECTRA_HOSTS" "$(json_escape "--loglevel warn $SPECTRAD_FLAGS")" "$PRELOAD_LEVEL"
	printf '  "redis_topology": {"primary": "%s", "replicas": %s, "hosts": "%s", "flags": "%s"},\n' \
		"$REDIS_PRIMARY" "$REPLICAS" "$REDIS_ALL" "$(json_escape "--save '' --appendonly no $REDIS_FLAGS")"
	printf '  "params": {"seconds": %s, "warmup_s": %s, "keys": %s, "value_size": %s, "clients": [%s], "loop": "closed", "pipeline": 1},\n' \
		"$SECONDS_PER_ROW" "$WARMUP" "$KEYS" "$VALUE_SIZE" "$(echo "$CLIENTS" | tr -s ' ' ',')"
	printf '  "pairs": [\n'
	for i in "${!PAIRS[@]}"; do
		printf '    %s%s\n' "${PAIRS[$i]}" "$([ "$i" -lt $((${#PAIRS[@]} - 1)) ] && echo ,)"
	done
	printf '  ],\n'
	printf '  "rows": [\n'
	sed '$!s/$/,/; s/^/    /' "$ROWS_FILE"
	printf '  ]\n}\n'
} >"$JSON_OUT"
echo
echo "wrote $JSON_OUT"
