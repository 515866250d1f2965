#!/usr/bin/env bash
# sampler: what the stale-read sampler costs in read throughput, off beside
# its default rate and a heavy one, in one run on this machine
# (make bench-sampler).
#
# The sampler checks one weak read in `stale-sample-every` (a spectrad
# setting, default 100, 0 turns it off) against a stronger read issued at
# the same moment: an eventual GET at ONE gets an extra QUORUM read, a
# strong GET at level stale a ReadIndex round. The claim checked here: at
# its default rate it costs under 5% of read throughput.
#
# Three 3-node clusters, each made fresh with `spectra cluster up --nodes 3
# ... -- --stale-sample-every N` on its own free 127.0.0.1 ports, each with
# an eventual keyspace, `KEYSPACE CREATE feat MODE eventual RF 3`, and
# strong keys s:*, and a write pass over every key of both (--dist seq;
# feat: at QUORUM, s: through Raft). All three stay up; `spectra bench`
# drives one at a time, all three of its nodes, 50 clients, pipeline 1,
# with two rows:
#
#   eventual ONE   LEVEL one GET feat:{key}
#   strong stale   LEVEL stale GET s:{key}
#
# each a closed loop of BENCH_SECONDS (4) after BENCH_WARMUP (1) second of
# warm-up. Beside ops/s and latency, each row has the CPU time the
# cluster's three nodes used per read (from /proc/<pid>/stat, from the end
# of the warm-up to half a second before the end), which shows what the
# sampler costs the servers even where the throughput hides it.
#
# The schedule. This 2-core virtual machine's speed moves by tens of
# percent from one half-minute to the next (its host and its cores are
# shared; every cluster speeds up or slows down at once), far more than
# the effect, and two clusters started alike were seen to differ by
# several percent for as long as they ran. So a setting is compared only
# with off measured seconds away, many times over, and no setting keeps a
# cluster or a place in the order. There are SAMPLER_ROUNDS (6) rounds;
# each measures one workload on the three clusters back to back (three
# rows within about 16 s), then the other workload (which goes first
# alternates). Settings are assigned to clusters three ways in turn
# (cluster c runs setting c + a), two rounds each, the first taking the
# clusters in order and the second in reverse; between assignments every
# cluster is restarted (`cluster down`, `cluster up` on its directory:
# same data) with its next setting. So each setting runs on each cluster
# and twice at each place in the order. A round gives each setting's
# change against off in that round; the figure reported is the mean of
# the rounds' changes, which is what cancels the clusters' and places'
# own differences (a median would keep some), with its standard error.
# Short rows, many rounds: the 10 s rows first tried here gave three
# pairs in four minutes, and one slow-down of the machine falling between
# a setting and its off row decided the verdict.
#
# Before each restart and at the end, node 1 of each cluster says on
# /metrics how many reads it served and how many of them the sampler
# checked (spectra_stale_reads_sampled_total; the counters start at zero
# with each restart). It prints each row as it finishes, then a table
# (workload, setting, ops/s, p50/p95/p99 ms, CPU us per read, the changes
# vs off), the rounds one by one, node 1's sampler counts per setting and,
# per workload, the verdict
#
#   sampler at default rate (1 in 100), <workload>: -X.X% throughput (limit 5%)
#
# with the rounds' changes and the change in CPU per read under it, and a
# warning when the limit lies within two standard errors of the figure
# (then the machine was too noisy for the verdict to mean much, though it
# still decides the exit status). It writes
# bench/results/sampler-<UTC timestamp>.json (every row as `spectra bench`
# reported it with its round, setting, cluster and CPU per read; node 1's
# counts; the summary). Exit status: 0 the default rate costs less than
# the limit on both workloads and the sampler ran exactly when it should
# (node 1 checked reads at the default and heavy rates, none when off); 1
# otherwise, or when the benchmark itself failed. It runs copies of
# spectra and spectrad taken at its start (bin/ may be rebuilt meanwhile),
# and stops everything it started on exit.
#
# Environment: SPECTRA (default bin/spectra), SPECTRAD (bin/spectrad),
# BENCH_SECONDS (4), BENCH_WARMUP (1), SAMPLER_RATES ("0 100 10": the
# settings, one cluster each; it must hold 0 and SAMPLER_DEFAULT),
# SAMPLER_DEFAULT (100: the rate the verdict is about), SAMPLER_ROUNDS
# (6; a multiple of the number of settings), SAMPLER_LIMIT (5: the most the
# default rate may cost, in percent), SAMPLER_CLIENTS (50), SAMPLER_KEYS
# (10000), SAMPLER_VALUE_SIZE (64), SAMPLER_WORKLOADS ("eventual_one
# strong_stale"; one alone runs only its rows), SAMPLER_SPECTRAD_FLAGS
# (more spectrad flags), SAMPLER_RESULTS_DIR (bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."

SPECTRA=${SPECTRA:-$PWD/bin/spectra}
SPECTRAD=${SPECTRAD:-$PWD/bin/spectrad}
SECONDS_PER_ROW=${BENCH_SECONDS:-4}
WARMUP=${BENCH_WARMUP:-1}
read -r -a RATES <<<"${SAMPLER_RATES:-"0 100 10"}"
DEFAULT_EVERY=${SAMPLER_DEFAULT:-100}
ROUNDS=${SAMPLER_ROUNDS:-$((2 * ${#RATES[@]}))}
WORKLOADS=${SAMPLER_WORKLOADS:-"eventual_one strong_stale"}
LIMIT=${SAMPLER_LIMIT:-5}
CLIENTS=${SAMPLER_CLIENTS:-50}
KEYS=${SAMPLER_KEYS:-10000}
VALUE_SIZE=${SAMPLER_VALUE_SIZE:-64}
SPECTRAD_FLAGS=${SAMPLER_SPECTRAD_FLAGS:-}
RESULTS_DIR=${SAMPLER_RESULTS_DIR:-bench/results}
# A run that outlives these was stuck: it fails the benchmark.
ROW_LIMIT=$(awk -v s="$SECONDS_PER_ROW" -v w="$WARMUP" 'BEGIN { printf "%d", s + w + 60 }')
PRELOAD_LIMIT=300
# The nodes' CPU is read from the end of the warm-up for this long.
CPU_WINDOW=$(awk -v s="$SECONDS_PER_ROW" 'BEGIN { printf "%.2f", (s > 1 ? s - 0.5 : s / 2) }')
CLK_TCK=$(getconf CLK_TCK)
NODES=3
RF=3
NCLUSTERS=${#RATES[@]}
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
JSON_OUT="$RESULTS_DIR/sampler-$STAMP.json"
START_TIME=$(date +%s)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-bench-sampler-XXXXXX")
DIED=0
BENCH_PID= # the `spectra bench` running in the background, if any

# shellcheck source=tests/lib/ports.sh
source tests/lib/ports.sh
# shellcheck source=bench/lib/systems.sh
source bench/lib/systems.sh

cleanup() {
	local rc=$? dir pidfile pid log
	[ -z "$BENCH_PID" ] || sys_stop_pid "$BENCH_PID"
	for dir in "$TMP"/cluster-*; do
		[ -f "$dir/cluster.conf" ] || continue
		"$SPECTRA" cluster down --dir "$dir" --timeout 10 >/dev/null 2>&1 || true
		# Whatever `cluster down` left running (it failed, or was cut short).
		for pidfile in "$dir"/node-*/spectrad.pid; do
			[ -s "$pidfile" ] || continue
			pid=$(cat "$pidfile")
			alive "$pid" && sys_stop_pid "$pid"
		done
	done
	if [ "$DIED" = 1 ]; then
		sys_tail_logs 20 "$TMP"/cluster-*/node-*/spectrad.log "$TMP"/*.err
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "sampler: $*" >&2
	DIED=1
	exit 1
}

[ -x "$SPECTRA" ] || die "no spectra at $SPECTRA (run make)"
[ -x "$SPECTRAD" ] || die "no spectrad at $SPECTRAD (run make)"
command -v redis-cli >/dev/null || die "redis-cli not installed (make deps)"
command -v curl >/dev/null || die "curl not installed"
command -v python3 >/dev/null || die "python3 not installed"
[ "$NCLUSTERS" -ge 2 ] || die "SAMPLER_RATES: at least 0 and $DEFAULT_EVERY"
for n in "${RATES[@]}"; do
	[[ "$n" =~ ^[0-9]+$ ]] || die "SAMPLER_RATES: '$n' is not a stale-sample-every"
done
[ "$(printf '%s\n' "${RATES[@]}" | sort -u | wc -l)" -eq "$NCLUSTERS" ] ||
	die "SAMPLER_RATES: a setting appears twice"
[[ " ${RATES[*]} " == *" 0 "* ]] || die "SAMPLER_RATES: no setting with the sampler off (0)"
[[ " ${RATES[*]} " == *" $DEFAULT_EVERY "* ]] ||
	die "SAMPLER_RATES: no setting at the default rate ($DEFAULT_EVERY)"
{ [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] && [ $((ROUNDS % NCLUSTERS)) -eq 0 ]; } ||
	die "SAMPLER_ROUNDS: '$ROUNDS' is not a multiple of the $NCLUSTERS settings"
for w in $WORKLOADS; do
	case $w in
	eventual_one | strong_stale) ;;
	*) die "SAMPLER_WORKLOADS: unknown workload '$w' (eventual_one, strong_stale)" ;;
	esac
done

# Every row runs the same binaries: copies taken now, so a rebuild during
# the run (bin/ is shared) neither breaks a row nor changes what later rows
# measure.
mkdir -p "$TMP/bin"
{ cp "$SPECTRA" "$TMP/bin/spectra" && cp "$SPECTRAD" "$TMP/bin/spectrad"; } ||
	die "could not copy $SPECTRA and $SPECTRAD"
SPECTRA=$TMP/bin/spectra
SPECTRAD=$TMP/bin/spectrad
export SPECTRAD
{ "$SPECTRA" bench --help >/dev/null 2>&1 && "$SPECTRAD" --version >/dev/null 2>&1; } ||
	die "the copies of spectra and spectrad do not run (a build in progress? run make, retry)"

# ---- the clusters ------------------------------------------------------------

BASE=()  # cluster -> node 1's client port
HTTP=()  # cluster -> node 1's HTTP port
HOSTS=() # cluster -> its nodes' client addresses
EVERY=() # cluster -> its stale-sample-every (this assignment)

# redis_at PORT ARGS...: one command, its reply without the CR.
redis_at() {
	local port=$1
	shift
	redis-cli -p "$port" "$@" 2>&1 | tr -d '\r'
}

label() {
	if [ "$1" -eq 0 ]; then
		echo off
	elif [ "$1" -eq "$DEFAULT_EVERY" ]; then
		echo default
	elif [ "$1" -lt "$DEFAULT_EVERY" ]; then
		echo heavy
	else
		echo light
	fi
}

# create_cluster C EVERY: cluster C, new, with --stale-sample-every EVERY.
create_cluster() {
	local c=$1 every=$2 dir=$TMP/cluster-$1 rc base peer http i got
	for _ in 1 2 3; do
		base=$(free_base "$NODES")
		peer=$(free_base "$NODES")
		http=$(free_base "$NODES")
		rc=0
		# shellcheck disable=SC2086 # SPECTRAD_FLAGS is words on purpose
		"$SPECTRA" cluster up --nodes "$NODES" --dir "$dir" --base-port "$base" \
			--peer-base-port "$peer" --http-base-port "$http" --name "bench-sampler-$c" \
			--wait 60 -- --loglevel warn --stale-sample-every "$every" $SPECTRAD_FLAGS \
			>"$TMP/up-$c.out" 2>"$TMP/up-$c.err" || rc=$?
		[ "$rc" -eq 0 ] && break
		if grep -q "already answers" "$TMP/up-$c.err"; then
			"$SPECTRA" cluster down --dir "$dir" >/dev/null 2>&1 || true
			rm -rf "$dir"
			continue
		fi
		cat "$TMP/up-$c.out" "$TMP/up-$c.err" >&2
		die "spectra cluster up (cluster $c, --stale-sample-every $every) failed"
	done
	[ "$rc" -eq 0 ] || die "no free ports for cluster $c after 3 attempts"
	BASE[c]=$base
	HTTP[c]=$http
	EVERY[c]=$every
	HOSTS[c]=$(for i in $(seq 0 $((NODES - 1))); do printf '127.0.0.1:%d,' $((base + i)); done)
	HOSTS[c]=${HOSTS[c]%,}
	got=$(redis_at "$base" KEYSPACE CREATE feat MODE eventual RF "$RF") || true
	[ "$got" = OK ] || die "cluster $c: KEYSPACE CREATE feat MODE eventual RF $RF on node 1 gave '$got'"
	got=$(redis_at "$base" SET s:sanity ok) || true
	[ "$got" = OK ] || die "cluster $c: node 1 refused SET s:sanity: $got"
	# Every node knows the keyspace (the definition travels through Raft,
	# so a node may need a moment).
	for i in $(seq 1 "$NODES"); do
		for _ in $(seq 1 50); do
			got=$(redis_at $((base + i - 1)) LEVEL quorum SET "feat:sanity:$i" "v$i") || true
			[ "$got" = OK ] && break
			sleep 0.2
		done
		[ "$got" = OK ] || die "cluster $c: node $i refused LEVEL quorum SET: $got"
	done
	ready "$c"
}

# restart_clusters: every cluster down, then up again on its directory (same
# data, same ports) with its EVERY, all at once.
restart_clusters() {
	local c rc pids=()
	for c in $(seq 0 $((NCLUSTERS - 1))); do
		"$SPECTRA" cluster down --dir "$TMP/cluster-$c" --timeout 10 >"$TMP/down-$c.out" 2>&1 ||
			die "spectra cluster down (cluster $c) failed: $(cat "$TMP/down-$c.out")"
	done
	for c in $(seq 0 $((NCLUSTERS - 1))); do
		# shellcheck disable=SC2086 # SPECTRAD_FLAGS is words on purpose
		"$SPECTRA" cluster up --dir "$TMP/cluster-$c" --wait 60 \
			-- --loglevel warn --stale-sample-every "${EVERY[c]}" $SPECTRAD_FLAGS \
			>"$TMP/up-$c.out" 2>"$TMP/up-$c.err" &
		pids+=($!)
	done
	for c in $(seq 0 $((NCLUSTERS - 1))); do
		rc=0
		wait "${pids[c]}" || rc=$?
		[ "$rc" -eq 0 ] ||
			die "spectra cluster up (cluster $c, --stale-sample-every ${EVERY[c]}) failed: $(cat "$TMP/up-$c.out" "$TMP/up-$c.err")"
	done
	for c in $(seq 0 $((NCLUSTERS - 1))); do
		ready "$c"
	done
}

# ready C: every node of cluster C serves both kinds of read with the data
# (an eventual QUORUM read, a strong stale read) and node 1 /metrics.
ready() {
	local c=$1 i port got
	for i in $(seq 1 "$NODES"); do
		port=$((BASE[c] + i - 1))
		for _ in $(seq 1 100); do
			got=$(redis_at "$port" LEVEL quorum GET "feat:sanity:$i") || true
			[ "$got" = "v$i" ] && break
			sleep 0.1
		done
		[ "$got" = "v$i" ] ||
			die "cluster $c: node $i LEVEL quorum GET feat:sanity:$i gave '$got', wanted 'v$i'"
		for _ in $(seq 1 100); do
			got=$(redis_at "$port" LEVEL stale GET s:sanity) || true
			[ "$got" = ok ] && break
			sleep 0.1
		done
		[ "$got" = ok ] || die "cluster $c: node $i LEVEL stale GET s:sanity gave '$got', wanted 'ok'"
	done
	curl -fsS "http://127.0.0.1:${HTTP[c]}/metrics" >/dev/null ||
		die "cluster $c: node 1 serves no /metrics on 127.0.0.1:${HTTP[c]}"
}

# ---- rows ------------------------------------------------------------------

ROWS_FILE=$TMP/rows.jsonl
COUNTS_FILE=$TMP/counts.jsonl
: >"$ROWS_FILE"
: >"$COUNTS_FILE"

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

ms() {
	awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'
}

# preload C TEMPLATE: one write to every key of cluster C, not recorded; its
# time in PRELOAD_SECS.
PRELOAD_SECS=
preload() {
	local c=$1 tmpl=$2 rc=0 out=$TMP/preload line errors
	timeout --kill-after=10 "$PRELOAD_LIMIT" \
		"$SPECTRA" bench --hosts "${HOSTS[c]}" --clients "$CLIENTS" --requests "$KEYS" \
		--warmup 0 --dist seq --keys "$KEYS" --value-size "$VALUE_SIZE" --op "1:$tmpl" \
		--json "$out.json" --quiet >"$out.out" 2>"$out.err" || rc=$?
	{ [ "$rc" -eq 0 ] && [ -s "$out.json" ]; } ||
		die "cluster $c: the write pass '$tmpl' failed: $(tail -n 5 "$out.out" "$out.err")"
	line=$(tail -n 1 "$out.json")
	errors=$(json_errors "$line")
	[ "$errors" -eq 0 ] ||
		die "cluster $c: $errors writes of '$tmpl' failed: $(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$line")"
	PRELOAD_SECS=$(json_num "$line" seconds)
}

# cpu_ticks PID...: the CPU time (user + system, in clock ticks) the
# processes have used.
cpu_ticks() {
	local pid t=0 v
	for pid in "$@"; do
		v=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || return 1
		t=$((t + v))
	done
	echo "$t"
}

# run_row ROUND C WORKLOAD TEMPLATE: one `spectra bench` on cluster C, and
# the CPU its three nodes use per op from the end of the warm-up to just
# before the end of the run.
run_row() {
	local round=$1 c=$2 workload=$3 tmpl=$4 every=${EVERY[$2]} rc=0 out line pid pids=()
	for pid in "$TMP/cluster-$c"/node-*/spectrad.pid; do
		pids+=("$(cat "$pid")")
	done
	out=$TMP/$round-$c-$workload
	timeout --kill-after=10 "$ROW_LIMIT" \
		"$SPECTRA" bench --hosts "${HOSTS[c]}" --clients "$CLIENTS" --pipeline 1 \
		--duration "$SECONDS_PER_ROW" --warmup "$WARMUP" --keys "$KEYS" \
		--value-size "$VALUE_SIZE" --op "1:$tmpl" --name "$workload" \
		--json "$out.json" --quiet >"$out.out" 2>"$out.err" &
	BENCH_PID=$!
	local tick0 tick1 ns0 ns1
	sleep "$WARMUP"
	tick0=$(cpu_ticks "${pids[@]}") || die "cluster $c: a node is gone (round $round)"
	ns0=$(date +%s%N)
	sleep "$CPU_WINDOW"
	tick1=$(cpu_ticks "${pids[@]}") || die "cluster $c: a node is gone (round $round)"
	ns1=$(date +%s%N)
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=
	{ [ "$rc" -eq 0 ] && [ -s "$out.json" ]; } ||
		die "round $round, $workload, cluster $c (--stale-sample-every $every) failed (exit $rc): $(tail -n 5 "$out.out" "$out.err")"
	line=$(tail -n 1 "$out.json")
	local ops p50 p95 p99 errors cpu
	ops=$(json_num "$line" ops_per_s)
	p50=$(json_num "$line" p50_us)
	p95=$(json_num "$line" p95_us)
	p99=$(json_num "$line" p99_us)
	errors=$(json_errors "$line")
	# Errors would make the rates incomparable (an error reply is cheap).
	[ "$errors" -eq 0 ] ||
		die "round $round, $workload, cluster $c (--stale-sample-every $every): $errors errors: $(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$line")"
	cpu=$(awk -v t=$((tick1 - tick0)) -v hz="$CLK_TCK" -v ns=$((ns1 - ns0)) -v ops="$ops" \
		'BEGIN { printf "%.2f", (ops > 0 ? t / hz * 1e6 / (ops * ns / 1e9) : 0) }')
	printf '{"round":%s,"every":%s,"cluster":%s,"workload":"%s","server_cpu_us_per_op":%s,%s\n' \
		"$round" "$every" "$c" "$workload" "$cpu" "${line#\{}" >>"$ROWS_FILE"
	printf '  round %d  %-13s %-8s %-7s cluster %d %8.0f ops/s  p50 %6.3f  p95 %6.3f  p99 %6.3f ms  %5.1f us CPU/op\n' \
		"$round" "$workload" "$(label "$every")" "($every)" "$c" "$ops" "$(ms "$p50")" \
		"$(ms "$p95")" "$(ms "$p99")" "$cpu"
}

# counts A C: node 1 of cluster C, since its start (assignment A): reads
# served and reads sampled, per workload.
counts() {
	local a=$1 c=$2 m
	m=$(curl -fsS "http://127.0.0.1:${HTTP[c]}/metrics") ||
		die "cluster $c: node 1 serves no /metrics after assignment $a"
	# metric NAME LABELS: the value of one series (0 when absent).
	metric() {
		local v
		v=$(printf '%s\n' "$m" | awk -v k="$1{$2}" '$1 == k { print $2; exit }')
		printf '%.0f' "${v:-0}"
	}
	local pair l key
	printf '{"assignment":%s,"every":%s,"cluster":%s' "$a" "${EVERY[c]}" "$c" >>"$COUNTS_FILE"
	for pair in 'ev mode="eventual",level="one"' 'st mode="strong",level="stale"'; do
		l=${pair%% *}
		key=${pair#* }
		printf ',"%s_reads":%s,"%s_sampled":%s,"%s_stale":%s,"%s_failed":%s' \
			"$l" "$(metric spectra_requests_total "class=\"read\",$key")" \
			"$l" "$(metric spectra_stale_reads_sampled_total "$key")" \
			"$l" "$(metric spectra_stale_reads_total "$key")" \
			"$l" "$(metric spectra_stale_read_checks_failed_total "$key")" >>"$COUNTS_FILE"
	done
	printf '}\n' >>"$COUNTS_FILE"
}

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

# ---- main ------------------------------------------------------------------

mkdir -p "$RESULTS_DIR"
SPECTRA_VERSION=$("$SPECTRAD" --version 2>&1 | head -n 1 || true)

echo "sampler: $(nproc) cores; $NCLUSTERS clusters of $NODES nodes, stale-sample-every" \
	"${RATES[*]}; $SPECTRA_VERSION"
echo "  $CLIENTS clients, pipeline 1, $SECONDS_PER_ROW s per row after $WARMUP s warm-up," \
	"$KEYS keys, $VALUE_SIZE-byte values, $ROUNDS rounds"
for c in $(seq 0 $((NCLUSTERS - 1))); do
	create_cluster "$c" "${RATES[c]}"
	preload "$c" "LEVEL quorum SET feat:{key} {value}"
	t1=$PRELOAD_SECS
	preload "$c" "SET s:{key} {value}"
	t2=$PRELOAD_SECS
	printf '  cluster %d  %s; /metrics of node 1 on 127.0.0.1:%s; write pass %.1f s (feat:) + %.1f s (s:)\n' \
		"$c" "${HOSTS[c]}" "${HTTP[c]}" "$t1" "$t2"
done

PER=$((ROUNDS / NCLUSTERS)) # rounds per assignment of settings to clusters
for round in $(seq 1 "$ROUNDS"); do
	# Assignment a (0, 1, ...) puts setting c + a on cluster c: over n
	# assignments, each setting on each cluster once. Its rounds go over
	# the clusters in order, then in reverse, and so on.
	a=$(((round - 1) / PER))
	order=$(seq 0 $((NCLUSTERS - 1)))
	[ $(((round - 1) % PER % 2)) -eq 0 ] || order=$(seq $((NCLUSTERS - 1)) -1 0)
	echo
	if [ $(((round - 1) % PER)) -eq 0 ]; then
		for c in $(seq 0 $((NCLUSTERS - 1))); do
			EVERY[c]=${RATES[$(((c + a) % NCLUSTERS))]}
		done
		settings=
		for c in $(seq 0 $((NCLUSTERS - 1))); do
			settings="$settings${settings:+, }cluster $c $(label "${EVERY[c]}") (${EVERY[c]})"
		done
		if [ "$round" -gt 1 ]; then
			restart_clusters
			echo "round $round at $(($(date +%s) - START_TIME)) s, restarted: $settings"
		else
			echo "round $round at $(($(date +%s) - START_TIME)) s: $settings"
		fi
	else
		echo "round $round at $(($(date +%s) - START_TIME)) s, the same clusters in reverse order"
	fi
	workloads=$WORKLOADS
	# shellcheck disable=SC2086 # WORKLOADS is words on purpose
	[ $((round % 2)) -eq 1 ] || workloads=$(printf '%s\n' $WORKLOADS | tac | xargs)
	for w in $workloads; do
		for c in $order; do
			case $w in
			eventual_one) run_row "$round" "$c" "$w" "LEVEL one GET feat:{key}" ;;
			strong_stale) run_row "$round" "$c" "$w" "LEVEL stale GET s:{key}" ;;
			esac
		done
	done
	# The counters start at zero with each restart: read them before one.
	if [ $((round % PER)) -eq 0 ]; then
		for c in $(seq 0 $((NCLUSTERS - 1))); do
			counts "$a" "$c"
		done
	fi
done

# ---- the summary -----------------------------------------------------------

rc=0
python3 - "$ROWS_FILE" "$COUNTS_FILE" "$DEFAULT_EVERY" "$LIMIT" "$TMP/summary.json" <<'PY' || rc=$?
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
counts = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
default, limit, out = int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
workloads = [w for w in (("eventual_one", "eventual ONE", "ev"), ("strong_stale", "strong stale", "st"))
             if any(r["workload"] == w[0] for r in rows)]
# off first, then the rates from light to heavy
everys = sorted({r["every"] for r in rows}, key=lambda e: (e != 0, -e))
rounds = sorted({r["round"] for r in rows})

def label(e):
    if e == 0:
        return "off"
    return ("default" if e == default else "heavy" if e < default else "light") + " (1 in %d)" % e

def pct(a, b):
    return (a / b - 1) * 100

def mean_se(xs):
    """The mean and its standard error (None with one value)."""
    xs = list(xs)
    return statistics.mean(xs), (statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else None)

def pm(change, se):
    return "%+.1f%%" % change + ("" if se is None else " ±%.1f" % se)

failed = []
summary = {"workloads": {}, "sampler": {}, "verdicts": []}
print()
print("%-13s %-19s %9s %13s %7s %7s %7s %9s %13s" % (
    "workload", "configuration", "ops/s", "vs off", "p50 ms", "p95 ms", "p99 ms", "CPU us/op",
    "vs off"))
print("-" * 105)
rounds_lines = []
for w, wname, _ in workloads:
    by = {(r["every"], r["round"]): r for r in rows if r["workload"] == w}
    summary["workloads"][w] = {}
    for e in everys:
        ks = [k for k in rounds if (e, k) in by]
        if not ks:
            continue
        ops = statistics.mean(by[e, k]["ops_per_s"] for k in ks)
        cpu = statistics.mean(by[e, k]["server_cpu_us_per_op"] for k in ks)
        p = {q: statistics.median(by[e, k][q] for k in ks) / 1000 for q in ("p50_us", "p95_us", "p99_us")}
        # The changes in each round: against off in the same round.
        paired = [k for k in ks if (0, k) in by and by[0, k]["ops_per_s"] > 0
                  and by[0, k]["server_cpu_us_per_op"] > 0]
        changes = {k: pct(by[e, k]["ops_per_s"], by[0, k]["ops_per_s"]) for k in paired}
        cpu_changes = {k: pct(by[e, k]["server_cpu_us_per_op"], by[0, k]["server_cpu_us_per_op"])
                       for k in paired}
        change, se = mean_se(changes.values()) if e != 0 and changes else (None, None)
        cpu_change, cpu_se = mean_se(cpu_changes.values()) if e != 0 and changes else (None, None)
        print("%-13s %-19s %9.0f %13s %7.3f %7.3f %7.3f %9.1f %13s" % (
            wname, label(e), ops, "-" if change is None else pm(change, se),
            p["p50_us"], p["p95_us"], p["p99_us"], cpu,
            "-" if cpu_change is None else pm(cpu_change, cpu_se)))
        rounds_lines.append("%-13s %-19s | %s | %s" % (
            wname, label(e), "  ".join("%6.0f" % by[e, k]["ops_per_s"] for k in ks),
            "-" if e == 0 else "  ".join("%+6.1f%%" % changes[k] for k in paired)))
        summary["workloads"][w][str(e)] = {
            "ops_per_s_mean": ops, "ops_per_s_rounds": [by[e, k]["ops_per_s"] for k in ks],
            "clusters": [by[e, k]["cluster"] for k in ks],
            "p50_ms": p["p50_us"], "p95_ms": p["p95_us"], "p99_ms": p["p99_us"],
            "change_vs_off_pct_rounds": None if e == 0 else [changes.get(k) for k in ks],
            "change_vs_off_pct": change, "change_vs_off_se": se,
            "server_cpu_us_per_op_mean": cpu,
            "server_cpu_us_per_op_rounds": [by[e, k]["server_cpu_us_per_op"] for k in ks],
            "server_cpu_change_vs_off_pct": cpu_change, "server_cpu_change_vs_off_se": cpu_se}
    off = [by[0, k]["ops_per_s"] for k in rounds if (0, k) in by]
    if len(off) > 1:
        summary["workloads"][w]["off_spread_pct"] = (max(off) - min(off)) / statistics.mean(off) * 100
print("ops/s, CPU us/op (the three nodes' CPU time per read) and their changes vs off: means "
      "over the rounds,")
print("a change ± its standard error (each round's against off in that round); "
      "p50/p95/p99: medians")
print()
print("%-13s %-19s | %s | %s" % ("round by round", "", "ops/s", "change vs off in the same round"))
for l in rounds_lines:
    print(l)

print()
print("node 1's /metrics, summed over the rounds (sampled: spectra_stale_reads_sampled_total)")
print("%-19s | %-13s %9s %8s %9s %6s %7s" % (
    "configuration", "reads", "served", "sampled", "1 in", "stale", "failed"))
print("-" * 81)
for e in everys:
    cs = [c for c in counts if c["every"] == e]
    summary["sampler"][str(e)] = {}
    for w, wname, k in workloads:
        served = sum(c[k + "_reads"] for c in cs)
        sampled = sum(c[k + "_sampled"] for c in cs)
        stale = sum(c[k + "_stale"] for c in cs)
        bad = sum(c[k + "_failed"] for c in cs)
        rate = "%.1f" % (served / sampled) if sampled else "-"
        print("%-19s | %-13s %9d %8d %9s %6d %7d" % (label(e), wname, served, sampled, rate, stale, bad))
        summary["sampler"][str(e)][w] = {"served": served, "sampled": sampled, "stale": stale,
                                         "checks_failed": bad}
        if e == 0 and sampled:
            failed.append("%s: the sampler checked %d reads while off" % (wname, sampled))
        if e != 0 and not sampled:
            failed.append("%s: the sampler checked no read at 1 in %d" % (wname, e))

print()
for w, wname, _ in workloads:
    d = summary["workloads"][w].get(str(default), {})
    change, se = d.get("change_vs_off_pct"), d.get("change_vs_off_se")
    if change is None:
        failed.append("%s: no change to report at the default rate" % wname)
        continue
    # A cost is a drop; a rise (noise) costs nothing.
    ok = -change < limit
    print("sampler at default rate (1 in %d), %s: %+.1f%% throughput (limit %g%%)%s" % (
        default, wname, change, limit, "" if ok else "  FAIL"))
    print("  rounds %s%s; the nodes' CPU per read %s" % (
        " ".join("%+.1f%%" % x for x in d["change_vs_off_pct_rounds"] if x is not None),
        "" if se is None else " (standard error ±%.1f)" % se,
        pm(d["server_cpu_change_vs_off_pct"], d["server_cpu_change_vs_off_se"])))
    # The verdict means little when the limit lies within two standard
    # errors of the figure: say so (the figure decides all the same).
    noisy = se is not None and abs(change + limit) < 2 * se
    if noisy:
        print("  warning: the limit is within two standard errors of the figure: this verdict is "
              "noise as much as measurement; rerun on a quieter machine")
    summary["verdicts"].append({"workload": w, "change_pct": change, "se_pct": se,
                                "limit_pct": limit, "ok": ok, "within_noise": noisy})
    if not ok:
        failed.append("%s: the default rate costs %.1f%% of throughput, the limit is %g%%" % (
            wname, -change, limit))
summary["ok"] = not failed
for f in failed:
    print("sampler: FAIL: " + f)
json.dump(summary, open(out, "w"))
sys.exit(3 if failed else 0)
PY
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || die "the summary failed (python3 exit $rc)"

{
	printf '{\n'
	printf '  "benchmark": "sampler",\n'
	printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf '  "host": {"cores": %s, "kernel": "%s"},\n' "$(nproc)" "$(json_escape "$(uname -sr)")"
	printf '  "spectrad": "%s",\n' "$(json_escape "$SPECTRA_VERSION")"
	printf '  "clusters": {"count": %s, "nodes": %s, "keyspace": "feat", "mode": "eventual", "rf": %s, "strong_prefix": "s:", "spectrad_flags": "%s", "hosts": [' \
		"$NCLUSTERS" "$NODES" "$RF" "$(json_escape "--loglevel warn --stale-sample-every N $SPECTRAD_FLAGS")"
	for c in $(seq 0 $((NCLUSTERS - 1))); do
		printf '%s"%s"' "$([ "$c" -gt 0 ] && echo ", ")" "${HOSTS[c]}"
	done
	printf ']},\n'
	printf '  "params": {"seconds": %s, "warmup_s": %s, "keys": %s, "value_size": %s, "clients": %s, "pipeline": 1, "loop": "closed", "rates": [%s], "rounds": %s, "default_every": %s, "limit_pct": %s},\n' \
		"$SECONDS_PER_ROW" "$WARMUP" "$KEYS" "$VALUE_SIZE" "$CLIENTS" \
		"$(IFS=,; echo "${RATES[*]}")" "$ROUNDS" "$DEFAULT_EVERY" "$LIMIT"
	printf '  "summary": %s,\n' "$(cat "$TMP/summary.json")"
	printf '  "node1_counts": [\n'
	sed '$!s/$/,/; s/^/    /' "$COUNTS_FILE"
	printf '  ],\n'
	printf '  "rows": [\n'
	sed '$!s/$/,/; s/^/    /' "$ROWS_FILE"
	printf '  ]\n}\n'
} >"$JSON_OUT"
echo
echo "wrote $JSON_OUT ($(($(date +%s) - START_TIME)) s)"
[ "$rc" -eq 0 ] || exit 1
