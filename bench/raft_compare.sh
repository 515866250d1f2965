#!/usr/bin/env bash
# raft_compare: spectra's Raft against libraft 0.15 (canonical/raft, from
# Debian's libraft-dev), side by side in one run (make bench-raft).
#
# Both sides are small node programs with one command line and one output
# format, described in bench/raft/README.md:
#   libraft: $BUILD/bench/libraft_node       (bench/raft/libraft_node.c)
#   spectra: $BUILD/bench/spectra_raft_node  (bench/raft/spectra_raft_node.c;
#            skipped with a message while it does not exist)
#
# Load: for 3 and 5 local nodes and 1, 16 and 256 proposals in flight, it
# starts a fresh cluster per implementation (fresh data directories under
# $BUILD/bench-raft-tmp, on the real disk, not tmpfs; fresh 127.0.0.1
# ports), waits for the leader's JSON line, kills every node and removes the
# directories. Cells are interleaved (libraft, then spectra, for the same
# cell) so that drift in the machine's state hits both alike. Each entry is
# fsync'd on a majority before it counts. Reported: committed entries per
# second and p50/p99 commit latency, and spectra/libraft as the ratio.
#
# Failover: for 3 and 5 nodes, BENCH_RAFT_FAILOVER_ROUNDS rounds (default 5)
# per implementation, each on a fresh cluster in --failover mode: wait for
# a leader whose entries commit and who has led for a settle time, kill -9
# it, and time (CLOCK_REALTIME, microseconds) until a survivor reports
# itself leader of a higher term (elected_ms) and until its first entry
# commits (failover_ms). Reported: median and max of each.
#
# The table goes to stdout; every row, with each node's own JSON line, to
# bench/results/raft-compare-<UTC timestamp>.json. All nodes are killed and
# all temporary directories removed on exit, also on error or ^C. The
# machine has 2 cores: with 5 nodes (and this script) they share them, so
# read the ratio rather than the absolute rates.
#
# Environment: BUILD (build), BENCH_RAFT_DURATION_MS (measured window per
# cell, 5000), BENCH_RAFT_WARMUP_MS (1000), BENCH_RAFT_VALUE_BYTES (64),
# BENCH_RAFT_NODES ("3 5"), BENCH_RAFT_INFLIGHT ("1 16 256"),
# BENCH_RAFT_ELECTION_MS (150), BENCH_RAFT_HEARTBEAT_MS (50),
# BENCH_RAFT_REPEAT (runs per cell, median by ops/s; 1),
# BENCH_RAFT_FAILOVER_ROUNDS (5), BENCH_RAFT_IMPLS ("libraft spectra"),
# BENCH_RAFT_SKIP_LOAD=1 / BENCH_RAFT_SKIP_FAILOVER=1 to run one half,
# LIBRAFT_NODE / SPECTRA_NODE to point at other binaries.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
case $BUILD in
/*) BUILD_ABS=$BUILD ;;
*) BUILD_ABS=$PWD/$BUILD ;;
esac
LIBRAFT_NODE=${LIBRAFT_NODE:-$BUILD_ABS/bench/libraft_node}
SPECTRA_NODE=${SPECTRA_NODE:-$BUILD_ABS/bench/spectra_raft_node}
DURATION_MS=${BENCH_RAFT_DURATION_MS:-5000}
WARMUP_MS=${BENCH_RAFT_WARMUP_MS:-1000}
VALUE_BYTES=${BENCH_RAFT_VALUE_BYTES:-64}
NODE_COUNTS=${BENCH_RAFT_NODES:-"3 5"}
INFLIGHTS=${BENCH_RAFT_INFLIGHT:-"1 16 256"}
ELECTION_MS=${BENCH_RAFT_ELECTION_MS:-150}
HEARTBEAT_MS=${BENCH_RAFT_HEARTBEAT_MS:-50}
REPEAT=${BENCH_RAFT_REPEAT:-1}
ROUNDS=${BENCH_RAFT_FAILOVER_ROUNDS:-5}
IMPLS=${BENCH_RAFT_IMPLS:-"libraft spectra"}
# A cell gets its warmup and window plus this long to elect, commit and
# report; a failover round this long to settle and this long to recover.
CELL_GRACE_S=${BENCH_RAFT_CELL_GRACE_S:-60}
SETTLE_MS=${BENCH_RAFT_SETTLE_MS:-1000}
RECOVER_TIMEOUT_S=${BENCH_RAFT_RECOVER_TIMEOUT_S:-15}
# Failover-mode nodes bound their own life with --duration-ms.
FAILOVER_LIFETIME_MS=120000

RESULTS_DIR=bench/results
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
JSON_OUT="$RESULTS_DIR/raft-compare-$STAMP.json"
TMP_ROOT=$BUILD_ABS/bench-raft-tmp
START_S=$SECONDS

PIDS=()     # pids of the running cluster's nodes, indexed by node id
CLUSTER=""  # its --cluster list
RUN_DIR=""  # its directory
TMP=""
FAILURES=0

die() {
	echo "raft_compare: $*" >&2
	exit 1
}

warn() {
	echo "raft_compare: $*" >&2
}

# stop_cluster: SIGKILL every node of the running cluster and reap it. The
# nodes keep nothing worth a clean shutdown: their directories go next.
stop_cluster() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_cluster
	if [ -n "$TMP" ]; then
		rm -rf "$TMP"
		rmdir "$TMP_ROOT" 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_us() { echo "${EPOCHREALTIME/./}"; }

# port_in_use PORT: true if a TCP socket on this machine has PORT as its
# local port (listening, connected or in TIME_WAIT), from /proc/net/tcp*.
port_in_use() {
	awk -v p="$(printf ':%04X' "$1")" 'substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# pick_cluster N: set CLUSTER to N consecutive free 127.0.0.1 ports.
pick_cluster() {
	local n=$1 attempt base i ok
	for attempt in $(seq 1 50); do
		base=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		ok=1
		for i in $(seq 0 $((n - 1))); do
			if port_in_use $((base + i)); then
				ok=0
				break
			fi
		done
		[ "$ok" = 1 ] || continue
		CLUSTER=""
		for i in $(seq 1 "$n"); do
			CLUSTER+="${CLUSTER:+,}$i=127.0.0.1:$((base + i - 1))"
		done
		return 0
	done
	die "no $n free consecutive ports after 50 attempts"
}

node_bin() {
	case $1 in
	libraft) echo "$LIBRAFT_NODE" ;;
	spectra) echo "$SPECTRA_NODE" ;;
	esac
}

# start_cluster IMPL N DIR ARGS...: start nodes 1..N of IMPL, each with
# its data in DIR/data-I, results in DIR/out-I and stdout+stderr in
# DIR/log-I, plus ARGS. Sets PIDS, CLUSTER and RUN_DIR.
start_cluster() {
	local impl=$1 n=$2 dir=$3 bin i
	shift 3
	bin=$(node_bin "$impl")
	pick_cluster "$n"
	rm -rf "$dir"
	mkdir -p "$dir"
	RUN_DIR=$dir
	PIDS=()
	for i in $(seq 1 "$n"); do
		"$bin" --id "$i" --cluster "$CLUSTER" --dir "$dir/data-$i" --out "$dir/out-$i" \
			--election-ms "$ELECTION_MS" --heartbeat-ms "$HEARTBEAT_MS" \
			--value-bytes "$VALUE_BYTES" "$@" >"$dir/log-$i" 2>&1 &
		PIDS[i]=$!
	done
}

# any_node_died: true (and says which) if a node of the cluster has exited.
any_node_died() {
	local i
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
			DEAD_NODE=$i
			return 0
		fi
	done
	return 1
}

show_logs() {
	local f
	for f in "$RUN_DIR"/log-*; do
		[ -f "$f" ] || continue
		echo "---- last 5 lines of $(basename "$f") ----" >&2
		tail -n 5 "$f" >&2
	done
}

# json_field LINE KEY: the number stored under KEY in a flat JSON line.
json_field() {
	sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" <<<"$1"
}

# run_load IMPL N K: one load cell on a fresh cluster; sets LOAD_RESULT to
# the leader's JSON line, or to "" if no node reported in time. (It runs in
# this shell, not in $(...), so that the EXIT trap sees the cluster.) A node that dies
# before the result (a port taken after all, say) gets the cell retried on
# new ports, twice at most.
run_load() {
	local impl=$1 n=$2 k=$3 attempt deadline i line=""
	LOAD_RESULT=""
	for attempt in 1 2 3; do
		start_cluster "$impl" "$n" "$TMP/$impl-n$n-k$k" --inflight "$k" \
			--warmup-ms "$WARMUP_MS" --duration-ms "$DURATION_MS"
		deadline=$((SECONDS + (WARMUP_MS + DURATION_MS) / 1000 + CELL_GRACE_S))
		while [ -z "$line" ] && [ "$SECONDS" -lt "$deadline" ]; do
			for i in "${!PIDS[@]}"; do
				if [ -s "$RUN_DIR/out-$i" ]; then
					line=$(head -n 1 "$RUN_DIR/out-$i")
					break
				fi
			done
			[ -n "$line" ] && break
			if any_node_died; then
				# The leader exits 0 right after renaming its result
				# into place: look once more before calling it a death.
				[ -s "$RUN_DIR/out-$DEAD_NODE" ] && continue
				warn "$impl n=$n k=$k: node $DEAD_NODE exited early (attempt $attempt)"
				show_logs
				break
			fi
			sleep 0.1
		done
		stop_cluster
		if [ -n "$line" ]; then
			rm -rf "$RUN_DIR"
			LOAD_RESULT=$line
			return 0
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			warn "$impl n=$n k=$k: no result within $((deadline - START_S)) s of the run's start"
			show_logs
			rm -rf "$RUN_DIR"
			return 0
		fi
		rm -rf "$RUN_DIR"
	done
}

# events DIR: every failover event line of a cluster, "kind id term ... us".
events() {
	cat "$1"/out-* 2>/dev/null || true
}

# earliest KIND FIELD TERM: of the event lines on stdin of KIND with a
# term above TERM, the one with the smallest timestamp (field FIELD), as
# "timestamp id term". Timestamps stay strings: awk would print a 16-digit
# number as 1.79e+15.
earliest() {
	awk -v kind="$1" -v f="$2" -v t="$3" \
		'$1 == kind && $3 + 0 > t + 0 && (m == "" || $f + 0 < m + 0) { m = $f; id = $2; tt = $3 }
		 END { if (m != "") print m, id, tt }'
}

# run_failover_round IMPL N: one failover round on a fresh cluster; sets
# FAILOVER_RESULT to "elected_ms failover_ms killed_id killed_term new_id
# new_term", or to "" on failure.
run_failover_round() {
	local impl=$1 n=$2 attempt deadline ev="" leader term led_at kill_us cur
	local elected_us failover_us new_leader new_term
	FAILOVER_RESULT=""
	for attempt in 1 2 3; do
		start_cluster "$impl" "$n" "$TMP/$impl-failover-n$n" --failover --inflight 1 \
			--duration-ms "$FAILOVER_LIFETIME_MS"
		deadline=$((SECONDS + CELL_GRACE_S))
		leader="" term="" led_at=""
		# Wait for a leader that has committed and then led, unchallenged,
		# for SETTLE_MS.
		while [ "$SECONDS" -lt "$deadline" ]; do
			if any_node_died; then
				warn "$impl failover n=$n: node $DEAD_NODE exited early (attempt $attempt)"
				show_logs
				break
			fi
			ev=$(events "$RUN_DIR")
			cur=$(awk '$1 == "leader" && $3 + 0 > t { t = $3 + 0; id = $2 } END { if (id) print id, t }' <<<"$ev")
			if [ -n "$cur" ] && [ "$cur" != "$leader $term" ]; then
				read -r leader term <<<"$cur"
				led_at=""
			fi
			if [ -n "$leader" ] && [ -z "$led_at" ] &&
				awk -v id="$leader" -v t="$term" '$1 == "commit" && $2 == id && $3 == t { f = 1 } END { exit !f }' <<<"$ev"; then
				led_at=$(now_us)
			fi
			if [ -n "$led_at" ] && [ $(($(now_us) - led_at)) -ge $((SETTLE_MS * 1000)) ]; then
				break
			fi
			sleep 0.05
		done
		if [ -z "$led_at" ] || ! kill -0 "${PIDS[$leader]}" 2>/dev/null; then
			stop_cluster
			rm -rf "$RUN_DIR"
			[ "$SECONDS" -ge "$deadline" ] && {
				warn "$impl failover n=$n: no steady leader within ${CELL_GRACE_S} s"
				return 0
			}
			continue
		fi

		kill_us=$(now_us)
		kill -KILL "${PIDS[$leader]}" 2>/dev/null || true
		wait "${PIDS[$leader]}" 2>/dev/null || true
		unset "PIDS[$leader]"

		deadline=$((SECONDS + RECOVER_TIMEOUT_S))
		failover_us=""
		while [ "$SECONDS" -lt "$deadline" ]; do
			ev=$(events "$RUN_DIR")
			read -r failover_us new_leader new_term <<<"$(earliest commit 5 "$term" <<<"$ev")" || true
			[ -n "$failover_us" ] && break
			sleep 0.05
		done
		read -r elected_us _ _ <<<"$(earliest leader 4 "$term" <<<"$ev")" || true
		stop_cluster
		rm -rf "$RUN_DIR"
		if [ -z "$failover_us" ]; then
			warn "$impl failover n=$n: no commit in a new term within ${RECOVER_TIMEOUT_S} s of killing node $leader"
			return 0
		fi
		if [ -z "$elected_us" ]; then
			warn "$impl failover n=$n: a commit of a new term but no leader line for it"
			return 0
		fi
		FAILOVER_RESULT="$(awk -v k="$kill_us" -v e="$elected_us" -v f="$failover_us" \
			'BEGIN { printf "%.1f %.1f", (e - k) / 1000, (f - k) / 1000 }') $leader $term $new_leader $new_term"
		return 0
	done
}

# median_max VALUES...: "median max" of numbers (the lower median for an
# even count).
median_max() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%s %s\n", v[int((NR + 1) / 2)], v[NR] }'
}

# median_line LINES...: of JSON result lines, the one with the median
# ops_per_s.
median_line() {
	local l
	for l in "$@"; do
		echo "$(json_field "$l" ops_per_s) $l"
	done | sort -g -k1,1 | sed -n "$((($# + 1) / 2))p" | cut -d' ' -f2-
}

# ---- preflight ----

[ -x "$LIBRAFT_NODE" ] || die "no libraft node at $LIBRAFT_NODE (run make bench-raft)"
ACTIVE=()
for impl in $IMPLS; do
	case $impl in
	libraft) hint="run make bench-raft" ;;
	spectra) hint="bench/raft/spectra_raft_node.c may not exist yet" ;;
	*) die "unknown implementation $impl (libraft or spectra)" ;;
	esac
	if [ -x "$(node_bin "$impl")" ]; then
		ACTIVE+=("$impl")
	else
		echo "raft_compare: skipping $impl: $(node_bin "$impl") is not built ($hint)"
	fi
done
[ ${#ACTIVE[@]} -gt 0 ] || die "nothing to run"
is_active() {
	local a
	for a in "${ACTIVE[@]}"; do [ "$a" = "$1" ] && return 0; done
	return 1
}

mkdir -p "$TMP_ROOT" "$RESULTS_DIR"
TMP=$(mktemp -d "$TMP_ROOT/run-XXXXXX")
FSTYPE=$(stat -f -c %T "$TMP")
case $FSTYPE in
tmpfs | ramfs) warn "$TMP is on $FSTYPE: fsync costs nothing there; set BUILD to a real disk" ;;
esac
LIBRAFT_VERSION=$(pkg-config --modversion raft 2>/dev/null ||
	dpkg-query -W -f='${Version}' libraft-dev 2>/dev/null || echo unknown)

echo "Raft: ${ACTIVE[*]} (libraft $LIBRAFT_VERSION); $VALUE_BYTES-byte entries, fsync'd on a majority;" \
	"election ${ELECTION_MS} ms, heartbeat ${HEARTBEAT_MS} ms"
echo "  load: ${WARMUP_MS} ms warmup + ${DURATION_MS} ms measured per cell, median of $REPEAT;" \
	"$(nproc) cores shared by all nodes; data on $FSTYPE under $TMP_ROOT"
echo

# ---- load ----

LOAD_ROWS=()
if [ "${BENCH_RAFT_SKIP_LOAD:-0}" != 1 ]; then
	printf '%5s %9s | %-31s | %-31s | %6s\n' nodes "in flight" \
		"libraft ops/s   p50 ms   p99 ms" "spectra ops/s   p50 ms   p99 ms" ratio
	printf '%s\n' "$(printf '%.0s-' $(seq 1 92))"
	for n in $NODE_COUNTS; do
		for k in $INFLIGHTS; do
			declare -A runs=()
			for _ in $(seq 1 "$REPEAT"); do
				for impl in libraft spectra; do
					is_active "$impl" || continue
					run_load "$impl" "$n" "$k"
					line=$LOAD_RESULT
					if [ -z "$line" ]; then
						FAILURES=$((FAILURES + 1))
						continue
					fi
					runs[$impl]+="${runs[$impl]:+$'\n'}$line"
				done
			done
			cells=() json_parts=()
			declare -A ops=()
			for impl in libraft spectra; do
				lines=()
				if [ -n "${runs[$impl]:-}" ]; then
					mapfile -t lines <<<"${runs[$impl]}"
				fi
				if [ ${#lines[@]} -eq 0 ]; then
					cells+=("$(printf '%13s %8s %8s' - - -)")
					json_parts+=("\"$impl\": null")
					ops[$impl]=""
					continue
				fi
				best=$(median_line "${lines[@]}")
				ops[$impl]=$(json_field "$best" ops_per_s)
				cells+=("$(printf '%13.0f %8.3f %8.3f' "${ops[$impl]}" \
					"$(json_field "$best" p50_ms)" "$(json_field "$best" p99_ms)")")
				all=$(printf '%s,' "${lines[@]}")
				json_parts+=("\"$impl\": $best, \"${impl}_runs\": [${all%,}]")
			done
			ratio=null
			if [ -n "${ops[libraft]}" ] && [ -n "${ops[spectra]}" ]; then
				ratio=$(awk -v a="${ops[spectra]}" -v b="${ops[libraft]}" \
					'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
			fi
			printf '%5s %9s | %s | %s | %6s\n' "$n" "$k" "${cells[0]}" "${cells[1]}" \
				"$([ "$ratio" = null ] && echo - || echo "$ratio")"
			LOAD_ROWS+=("{\"nodes\": $n, \"inflight\": $k, \"ratio\": $ratio, ${json_parts[0]}, ${json_parts[1]}}")
			unset runs ops
		done
	done
	echo
fi

# ---- failover ----

FAILOVER_ROWS=()
if [ "${BENCH_RAFT_SKIP_FAILOVER:-0}" != 1 ]; then
	echo "Failover after kill -9 of the leader ($ROUNDS rounds, fresh cluster each):" \
		"elected = a survivor leads a higher term, failover = its first entry commits"
	printf '%5s | %-37s | %-37s\n' nodes "libraft elected / failover ms (med max)" \
		"spectra elected / failover ms (med max)"
	printf '%s\n' "$(printf '%.0s-' $(seq 1 86))"
	for n in $NODE_COUNTS; do
		declare -A elected=() failover=() rounds_json=()
		for r in $(seq 1 "$ROUNDS"); do
			for impl in libraft spectra; do
				is_active "$impl" || continue
				run_failover_round "$impl" "$n"
				res=$FAILOVER_RESULT
				if [ -z "$res" ]; then
					FAILURES=$((FAILURES + 1))
					continue
				fi
				read -r e f killed kterm new_id new_term <<<"$res"
				elected[$impl]+=" $e"
				failover[$impl]+=" $f"
				rounds_json[$impl]+="${rounds_json[$impl]:+, }{\"round\": $r, \"killed_id\": $killed, \"killed_term\": $kterm, \"new_leader_id\": $new_id, \"new_term\": $new_term, \"elected_ms\": $e, \"failover_ms\": $f}"
			done
		done
		cells=()
		for impl in libraft spectra; do
			if [ -z "${failover[$impl]:-}" ]; then
				cells+=("$(printf '%37s' -)")
				is_active "$impl" &&
					FAILOVER_ROWS+=("{\"nodes\": $n, \"impl\": \"$impl\", \"rounds\": []}")
				continue
			fi
			# shellcheck disable=SC2086
			read -r e_med e_max <<<"$(median_max ${elected[$impl]})"
			# shellcheck disable=SC2086
			read -r f_med f_max <<<"$(median_max ${failover[$impl]})"
			cells+=("$(printf '%8s %8s / %8s %8s' "$e_med" "$e_max" "$f_med" "$f_max")")
			FAILOVER_ROWS+=("{\"nodes\": $n, \"impl\": \"$impl\", \"elected_ms\": {\"median\": $e_med, \"max\": $e_max}, \"failover_ms\": {\"median\": $f_med, \"max\": $f_max}, \"rounds\": [${rounds_json[$impl]}]}")
		done
		printf '%5s | %s | %s\n' "$n" "${cells[0]}" "${cells[1]}"
		unset elected failover rounds_json
	done
	echo
fi

# ---- results ----

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
json_list() {
	local i a=("$@")
	for i in "${!a[@]}"; do
		printf '    %s%s\n' "${a[$i]}" "$([ "$i" -lt $(($# - 1)) ] && echo ,)"
	done
}
ELAPSED=$((SECONDS - START_S))
{
	printf '{\n'
	printf '  "benchmark": "raft-compare",\n'
	printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf '  "host": {"cores": %s, "kernel": "%s", "data_fs": "%s"},\n' "$(nproc)" \
		"$(json_escape "$(uname -sr)")" "$(json_escape "$FSTYPE")"
	printf '  "impls": {"libraft": "%s", "spectra": %s},\n' "$(json_escape "libraft $LIBRAFT_VERSION")" \
		"$(is_active spectra && echo '"spectra_raft_node"' || echo null)"
	printf '  "params": {"value_bytes": %s, "warmup_ms": %s, "duration_ms": %s, "election_ms": %s, ' \
		"$VALUE_BYTES" "$WARMUP_MS" "$DURATION_MS" "$ELECTION_MS"
	printf '"heartbeat_ms": %s, "repeat": %s, "failover_rounds": %s, "settle_ms": %s},\n' \
		"$HEARTBEAT_MS" "$REPEAT" "$ROUNDS" "$SETTLE_MS"
	printf '  "elapsed_s": %s,\n' "$ELAPSED"
	printf '  "failures": %s,\n' "$FAILURES"
	printf '  "rows": [\n'
	[ ${#LOAD_ROWS[@]} -eq 0 ] || json_list "${LOAD_ROWS[@]}"
	printf '  ],\n'
	printf '  "failover": [\n'
	[ ${#FAILOVER_ROWS[@]} -eq 0 ] || json_list "${FAILOVER_ROWS[@]}"
	printf '  ]\n}\n'
} >"$JSON_OUT"
echo "wrote $JSON_OUT (run took ${ELAPSED} s)"
if [ "$FAILURES" -gt 0 ]; then
	die "$FAILURES cell(s) or round(s) produced no result (see above)"
fi
