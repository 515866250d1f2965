#!/usr/bin/env bash
# redis_compare: spectrad against redis-server, side by side (make bench).
#
# For each durability mode it starts one spectrad and one redis-server, each
# on its own free 127.0.0.1 port with its own temporary directory, and runs
# redis-benchmark against them in turn, row by row (spectrad, then Redis, for
# every test and pipeline depth) so that drift in the machine's state hits
# both alike:
#
#   mode "off":    spectrad --fsync off     vs  redis --save '' --appendonly no
#   mode "always": spectrad --fsync always  vs  redis --save '' --appendonly yes
#                                                     --appendfsync always
#
#   redis-benchmark -t <test> -c 50 -d 64 -n $BENCH_N -P <1|16> -r 100000 --csv
#
# Each row runs BENCH_REPEAT times (default 3), alternating spectrad and
# Redis, and reports each server's median run (by requests per second),
# so one noisy run on a shared 2-core machine does not decide a ratio.
#
# It prints a table (mode, test, pipeline, requests per second of each and
# their ratio, p50/p95/p99 latency of each) and writes the same rows as JSON
# to bench/results/redis-compare-<date>.json. Both servers are killed on
# exit. Note: on a 2-core machine redis-benchmark competes with the server
# for CPU; the ratio is the number to read, not the absolute rates.
#
# Environment: SPECTRAD (default bin/spectrad), BENCH_N (requests per run,
# default 200000), BENCH_CLIENTS (50), BENCH_DATA (value bytes, 64),
# BENCH_PIPELINES ("1 16"), BENCH_MODES ("off always"), BENCH_TESTS
# ("set get"), BENCH_REPEAT (3), BENCH_EXTRA (more redis-benchmark flags;
# default "-r 100000": random keys from a 100,000-key space, not one key).
set -euo pipefail
cd "$(dirname "$0")/.."

SPECTRAD=${SPECTRAD:-$PWD/bin/spectrad}
N=${BENCH_N:-200000}
CLIENTS=${BENCH_CLIENTS:-50}
DATA=${BENCH_DATA:-64}
PIPELINES=${BENCH_PIPELINES:-"1 16"}
MODES=${BENCH_MODES:-"off always"}
TESTS=${BENCH_TESTS:-"set get"}
EXTRA=${BENCH_EXTRA--r 100000}
REPEAT=${BENCH_REPEAT:-3}
RESULTS_DIR=bench/results
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
JSON_OUT="$RESULTS_DIR/redis-compare-$STAMP.json"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-bench-XXXXXX")
SPECTRA_PID= SPECTRA_PORT=
REDIS_PID= REDIS_PORT=

stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	local i
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	stop_pid "$SPECTRA_PID"
	stop_pid "$REDIS_PID"
	if [ "$rc" -ne 0 ]; then
		for log in "$TMP"/*.log; do
			[ -f "$log" ] || continue
			echo "---- last 20 lines of $(basename "$log") ----"
			tail -n 20 "$log"
		done
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "redis_compare: $*" >&2
	exit 1
}

[ -x "$SPECTRAD" ] || die "no spectrad at $SPECTRAD (run make)"
command -v redis-server >/dev/null || die "redis-server not installed (make deps)"
command -v redis-benchmark >/dev/null || die "redis-benchmark not installed (make deps)"

# start_server NAME ARGS...: start NAME (spectrad|redis) on a free port with
# a fresh directory; sets <NAME>_PID and <NAME>_PORT. Retries if the port
# turns out to be taken.
start_server() {
	local name=$1 attempt port pid dir log
	shift
	for attempt in 1 2 3 4 5; do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		redis-cli -h 127.0.0.1 -p "$port" PING >/dev/null 2>&1 && continue
		dir="$TMP/$name-data"
		log="$TMP/$name.log"
		rm -rf "$dir"
		mkdir -p "$dir"
		if [ "$name" = spectra ]; then
			"$SPECTRAD" --bind 127.0.0.1 --port "$port" --dir "$dir" \
				--pidfile "$TMP/$name.pid" --loglevel warn "$@" >"$log" 2>&1 &
		else
			redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
				--pidfile "$TMP/$name.pid" --databases 1 "$@" >"$log" 2>&1 &
		fi
		pid=$!
		local i up=0
		for i in $(seq 1 400); do
			kill -0 "$pid" 2>/dev/null || break
			if [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = PONG ]; then
				up=1
				break
			fi
			sleep 0.05
		done
		if [ "$up" = 1 ]; then
			if [ "$name" = spectra ]; then
				SPECTRA_PID=$pid SPECTRA_PORT=$port
			else
				REDIS_PID=$pid REDIS_PORT=$port
			fi
			return 0
		fi
		stop_pid "$pid"
		grep -qi "in use" "$log" || die "$name did not start: $(tail -n 5 "$log")"
	done
	die "$name: no free port after 5 attempts"
}

# run_bench PORT TEST PIPELINE: one redis-benchmark run; prints
# "rps avg min p50 p95 p99 max" from its CSV row.
run_bench() {
	local port=$1 test=$2 pipeline=$3 out row
	# shellcheck disable=SC2086
	if ! out=$(redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" -c "$CLIENTS" -d "$DATA" \
		-n "$N" -P "$pipeline" --csv $EXTRA 2>&1); then
		echo "$out" | tail -n 5 >&2
		die "redis-benchmark -t $test -P $pipeline against port $port failed"
	fi
	local upper
	upper=$(echo "$test" | tr '[:lower:]' '[:upper:]')
	row=$(echo "$out" | tr -d '\r' | grep "^\"$upper\"," | head -n 1) ||
		die "no CSV row for $upper in: $out"
	echo "$row" | tr -d '"' | awk -F, '{ print $2, $3, $4, $5, $6, $7, $8 }'
}

# median_row ROWS...: of the result rows ("rps avg min p50 p95 p99 max"), the one with
# the median requests per second.
median_row() {
	printf '%s\n' "$@" | sort -n -k1,1 | sed -n "$(( ($# + 1) / 2 ))p"
}

mkdir -p "$RESULTS_DIR"
ROWS=()
SPECTRA_VERSION=$("$SPECTRAD" --version 2>&1 | head -n 1 || true)
REDIS_VERSION=$(redis-server --version | head -n 1)

echo "spectrad vs redis-server: redis-benchmark -c $CLIENTS -d $DATA -n $N ${EXTRA:+$EXTRA }($(nproc) cores, median of $REPEAT)"
echo "  spectrad: $SPECTRA_VERSION"
echo "  redis:    $REDIS_VERSION"
echo
printf '%-6s %-4s %3s | %10s %10s %6s | %-23s | %-23s\n' mode test P "spectra/s" "redis/s" ratio \
	"spectra p50/p95/p99 ms" "redis p50/p95/p99 ms"
printf '%s\n' "$(printf '%.0s-' $(seq 1 101))"

for mode in $MODES; do
	case $mode in
	off)
		start_server spectra --fsync off
		start_server redis --save '' --appendonly no
		;;
	always)
		start_server spectra --fsync always
		start_server redis --save '' --appendonly yes --appendfsync always
		;;
	*) die "unknown mode $mode (off or always)" ;;
	esac
	for test in $TESTS; do
		for p in $PIPELINES; do
			s_runs=() r_runs=()
			for _ in $(seq 1 "$REPEAT"); do
				s_runs+=("$(run_bench "$SPECTRA_PORT" "$test" "$p")")
				r_runs+=("$(run_bench "$REDIS_PORT" "$test" "$p")")
			done
			s_row=$(median_row "${s_runs[@]}")
			r_row=$(median_row "${r_runs[@]}")
			read -r s_rps s_avg s_min s_p50 s_p95 s_p99 s_max <<<"$s_row"
			read -r r_rps r_avg r_min r_p50 r_p95 r_p99 r_max <<<"$r_row"
			ratio=$(awk -v a="$s_rps" -v b="$r_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
			printf '%-6s %-4s %3s | %10.0f %10.0f %6s | %7s %7s %7s | %7s %7s %7s\n' \
				"$mode" "$test" "$p" "$s_rps" "$r_rps" "$ratio" \
				"$s_p50" "$s_p95" "$s_p99" "$r_p50" "$r_p95" "$r_p99"
			ROWS+=("$(printf '{"mode": "%s", "test": "%s", "pipeline": %s, "ratio": %s, "spectra": {"rps": %s, "avg_ms": %s, "min_ms": %s, "p50_ms": %s, "p95_ms": %s, "p99_ms": %s, "max_ms": %s}, "redis": {"rps": %s, "avg_ms": %s, "min_ms": %s, "p50_ms": %s, "p95_ms": %s, "p99_ms": %s, "max_ms": %s}}' \
				"$mode" "$test" "$p" "$ratio" \
				"$s_rps" "$s_avg" "$s_min" "$s_p50" "$s_p95" "$s_p99" "$s_max" \
				"$r_rps" "$r_avg" "$r_min" "$r_p50" "$r_p95" "$r_p99" "$r_max")")
		done
	done
	stop_pid "$SPECTRA_PID"
	stop_pid "$REDIS_PID"
	SPECTRA_PID= REDIS_PID=
done

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
{
	printf '{\n'
	printf '  "benchmark": "redis-compare",\n'
	printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf '  "host": {"cores": %s, "kernel": "%s"},\n' "$(nproc)" "$(json_escape "$(uname -sr)")"
	printf '  "spectrad": "%s",\n' "$(json_escape "$SPECTRA_VERSION")"
	printf '  "redis": "%s",\n' "$(json_escape "$REDIS_VERSION")"
	printf '  "params": {"requests": %s, "clients": %s, "data_bytes": %s, "repeat": %s, "extra": "%s"},\n' \
		"$N" "$CLIENTS" "$DATA" "$REPEAT" "$(json_escape "$EXTRA")"
	printf '  "modes": {"off": {"spectra": "--fsync off", "redis": "--save \\"\\" --appendonly no"}, '
	printf '"always": {"spectra": "--fsync always", "redis": "--save \\"\\" --appendonly yes --appendfsync always"}},\n'
	printf '  "rows": [\n'
	for i in "${!ROWS[@]}"; do
		printf '    %s%s\n' "${ROWS[$i]}" "$([ "$i" -lt $((${#ROWS[@]} - 1)) ] && echo ,)"
	done
	printf '  ]\n}\n'
} >"$JSON_OUT"
echo
echo "wrote $JSON_OUT"
