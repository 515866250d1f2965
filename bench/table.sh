#!/usr/bin/env bash
# table: the design's consistency table at 1,000 and 10,000 clients, with
# etcd and Redis beside spectra, in one run on this machine
# (make bench-table).
#
# Three systems, one at a time, each on free 127.0.0.1 ports:
#
#   spectra  5 nodes (`spectra cluster up`, spectrad defaults: fsync
#            always), keyspaces cz (MODE causal) and ev (MODE eventual RF 3);
#            plain keys are strong
#   etcd     5 members (Debian's etcd-server), driven through its v3 JSON
#            gateway over HTTP/1.1
#   redis    a primary and 4 replicas (no persistence)
#
# `spectra bench` runs every row: a closed loop (each connection one request
# in flight) of TABLE_SECONDS (8) after TABLE_WARMUP (3) s of warm-up, at
# each of TABLE_CLIENTS ("1000 10000") connections spread over every node
# (Redis writes: the primary), TABLE_KEYS (20000) keys written once before
# the rows, 64-byte values:
#
#   spectra  strong write        SET s:{key} {value}
#            strong read         GET s:{key}                (linearizable)
#            strong stale read   LEVEL stale GET s:{key}    (local, like serializable)
#            causal write/read   SET/GET cz:{key}           (each connection a session)
#            eventual write      LEVEL quorum SET ev:{key} {value}
#            eventual ONE write  LEVEL one SET ev:{key} {value}
#            eventual read       LEVEL one GET ev:{key}
#   etcd     put                 PUT e:{key} {value}
#            range               GET e:{key}                (linearizable)
#            serializable range  GET e:{key} SERIALIZABLE
#   redis    SET, SET + WAIT 2 (SET then WAIT 2 0), GET (primary + replicas)
#
# and, for spectra, open loops with 10,000 connections at the design
# table's own throughput (writes) and at five times it (writes and reads:
# the benchmark issue's goal of 5x the throughput at a fifth of the p95;
# latency counts from each request's scheduled start), and the
# availability runs: an open loop at the design table's throughput for the
# level (strong and etcd 2,500 ops/s, causal 8,200, eventual and Redis
# 25,000) over TABLE_FAULT_CLIENTS (1000) connections for
# TABLE_FAULT_SECONDS (15) s with --timeout 2000 --failover, and one node
# killed with SIGKILL TABLE_FAULT_AT (5) s in: the Raft leader for spectra
# strong and etcd, node 2 for spectra's leaderless modes, the primary for
# Redis writes (nothing promotes a replica without Sentinel) and a replica
# for Redis reads. The killed node is restarted after its row.
#
# Environment (for a quicker or smaller run; the defaults are the table):
# TABLE_CLIENTS ("1000 10000"), TABLE_SECONDS (8), TABLE_WARMUP (3),
# TABLE_KEYS (20000), TABLE_SYSTEMS ("spectra etcd redis"),
# TABLE_OPEN_CLIENTS (10000, the open loops' connections), TABLE_RATE_SCALE
# (1; scales every open loop's rate), TABLE_FAULT_CLIENTS (1000),
# TABLE_FAULT_SECONDS (15), TABLE_FAULT_AT (5), TABLE_FAULTS (yes),
# TABLE_RESULTS_DIR (bench/results), SPECTRA, SPECTRAD.
#
# bench/table.py then prints the table in the design's format, every row
# with a ratio against its peer, the availability runs and the goals of
# the benchmark issue met or missed; writes bench/results/table-<UTC>.json
# and bench/results/table-<UTC>.svg (latency against throughput per row).
# Everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SPECTRA=${SPECTRA:-$PWD/bin/spectra}
export SPECTRAD=${SPECTRAD:-$PWD/bin/spectrad}
SECS=${TABLE_SECONDS:-8}
WARMUP=${TABLE_WARMUP:-3}
CLIENTS=${TABLE_CLIENTS:-"1000 10000"}
KEYS=${TABLE_KEYS:-20000}
SYSTEMS=${TABLE_SYSTEMS:-"spectra etcd redis"}
OPEN_CLIENTS=${TABLE_OPEN_CLIENTS:-10000}
RATE_SCALE=${TABLE_RATE_SCALE:-1}
FAULT_CLIENTS=${TABLE_FAULT_CLIENTS:-1000}
FAULT_SECS=${TABLE_FAULT_SECONDS:-15}
FAULT_AT=${TABLE_FAULT_AT:-5}
FAULTS=${TABLE_FAULTS:-yes}
RESULTS_DIR=${TABLE_RESULTS_DIR:-bench/results}
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-bench-table-XXXXXX")
ROWS=$TMP/rows.jsonl
ROW_LIMIT=$(awk -v s="$SECS" -v w="$WARMUP" 'BEGIN { printf "%d", s + w + 90 }')

cleanup() {
	local rc=$?
	sys_stop_all
	if [ "$rc" -ne 0 ]; then
		sys_tail_logs 10 "$TMP"/spectra-*/node-*/spectrad.log "$TMP"/redis-*/redis.log \
			"$TMP"/etcd-*/etcd.log "$TMP"/*.err
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "table: $*" >&2
	exit 1
}

has_system() { [[ " $SYSTEMS " == *" $1 "* ]]; }

[ -x "$SPECTRA" ] || die "no spectra at $SPECTRA (run make)"
[ -x "$SPECTRAD" ] || die "no spectrad at $SPECTRAD (run make)"
for c in $CLIENTS $OPEN_CLIENTS $FAULT_CLIENTS; do
	[ "$c" -le 10000 ] || die "TABLE_*CLIENTS: at most 10000"
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 20000 ] ||
	die "10,000 clients need 20,000 open files (ulimit -Hn is $(ulimit -Hn))"

# shellcheck source=tests/lib/ports.sh
source tests/lib/ports.sh
# shellcheck source=bench/lib/systems.sh
source bench/lib/systems.sh

: >"$ROWS"

# bench SYSTEM SCENARIO CLIENTS HOSTS TEMPLATE [spectra bench flags...]:
# one row, its JSON line tagged with the system and scenario.
bench() {
	local system=$1 scenario=$2 clients=$3 hosts=$4 tmpl=$5 rc=0 out
	shift 5
	out=$TMP/$system-$scenario-$clients
	timeout --kill-after=10 "$ROW_LIMIT" "$SPECTRA" bench --hosts "$hosts" \
		--clients "$clients" --keys "$KEYS" --op "1:$tmpl" --name "$system/$scenario" \
		--json "$out.json" --quiet "$@" >"$out.out" 2>"$out.err" || rc=$?
	{ [ "$rc" -eq 0 ] && [ -s "$out.json" ]; } ||
		die "$system $scenario at $clients clients failed (exit $rc): $(tail -n 5 "$out.out" "$out.err")"
	/usr/bin/python3 - "$system" "$scenario" "$out.json" >>"$ROWS" <<'PY'
import json, sys
for line in open(sys.argv[3]):
    r = json.loads(line)
    r["system"], r["scenario"] = sys.argv[1], sys.argv[2]
    print(json.dumps(r))
PY
	tail -n 1 "$ROWS" | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
errs = sum(r["errors"].values())
extra = ""
if r.get("fault"):
    extra = "  availability %.3f%%, longest gap %.0f ms" % (100 * r["availability"], r["max_gap_ms"])
print("  %-8s %-22s %6d clients %9.0f ops/s  p50 %8.3f  p95 %8.3f  p99 %8.3f ms%s%s" % (
    r["system"], r["scenario"], r["clients"], r["ops_per_s"], r["p50_us"] / 1000,
    r["p95_us"] / 1000, r["p99_us"] / 1000, "  (%d errors)" % errs if errs else "", extra))'
}

row() { # SYSTEM SCENARIO CLIENTS HOSTS TEMPLATE [flags...]
	local a=$1 b=$2 c=$3 d=$4 e=$5
	shift 5
	bench "$a" "$b" "$c" "$d" "$e" --duration "$SECS" --warmup "$WARMUP" "$@"
}

preload() { # SYSTEM HOSTS TEMPLATE [flags...]
	local system=$1 hosts=$2 tmpl=$3 out=$TMP/preload-$1
	shift 3
	timeout --kill-after=10 600 "$SPECTRA" bench --hosts "$hosts" --clients 200 \
		--requests "$KEYS" --warmup 0 --dist seq --keys "$KEYS" --op "1:$tmpl" \
		--json "$out.json" --quiet "$@" >"$out.out" 2>"$out.err" ||
		die "$system: the write pass failed: $(tail -n 5 "$out.out" "$out.err")"
	grep -q '"errors":{}' "$out.json" ||
		die "$system: writes of the write pass failed: $(cat "$out.json")"
}

# rate OPS: OPS scaled by TABLE_RATE_SCALE (a miniature run for tests).
rate() { awk -v r="$1" -v s="$RATE_SCALE" 'BEGIN { printf "%d", r * s < 1 ? 1 : r * s }'; }

# fault_row SYSTEM SCENARIO HOSTS RATE TEMPLATE FAULT_CMD [flags...]: an open
# loop at RATE ops/s, so an outage fails the requests scheduled during it
# (a closed loop would simply send fewer).
fault_row() {
	local a=$1 b=$2 d=$3 rate=$4 e=$5 cmd=$6
	shift 6
	bench "$a" "$b" "$FAULT_CLIENTS" "$d" "$e" --duration "$FAULT_SECS" --warmup "$WARMUP" \
		--rate "$(rate "$rate")" --timeout 2000 --failover --fault "$cmd" --fault-at "$FAULT_AT" "$@"
}

# settle_causal waits until every spectra node has applied every causal
# write, so no row pays for the one before it.
settle_causal() {
	local i a same
	for _ in $(seq 1 900); do
		same=1
		a=$(redis-cli -p "$SPECTRA_BASE" info causal | tr -d '\r' | sed -n 's/^causal_applied://p')
		for i in 1 2 3 4; do
			[ "$(redis-cli -p $((SPECTRA_BASE + i)) info causal | tr -d '\r' |
				sed -n 's/^causal_applied://p')" = "$a" ] || same=0
		done
		[ "$same" = 1 ] && return 0
		sleep 0.1
	done
	echo "table: spectra's nodes did not settle their causal writes in 90 s" >&2
}

spectra_node_restart() { # ID
	"$SPECTRA" cluster start --dir "$SPECTRA_DIR" --id "$1" --wait 60 >/dev/null 2>&1 ||
		die "spectra: node $1 did not come back"
	sleep 2
}

# ---- spectra ---------------------------------------------------------------

run_spectra() {
	echo "table: spectra, 5 nodes"
	sys_spectra table 5
	local ks got
	for ks in "cz MODE causal" "ev MODE eventual RF 3"; do
		for _ in $(seq 1 50); do
			# shellcheck disable=SC2086 # words on purpose
			got=$(redis-cli -p "$SPECTRA_BASE" KEYSPACE CREATE $ks 2>&1 | tr -d '\r')
			[ "$got" = OK ] && break
			sleep 0.2
		done
		[ "$got" = OK ] || die "spectra: KEYSPACE CREATE $ks gave '$got'"
	done
	sleep 1
	preload spectra "$SPECTRA_HOSTS" 'SET s:{key} {value}'
	preload spectra "$SPECTRA_HOSTS" 'SET cz:{key} {value}'
	preload spectra "$SPECTRA_HOSTS" 'LEVEL quorum SET ev:{key} {value}'
	settle_causal
	local c
	for c in $CLIENTS; do
		row spectra strong_write "$c" "$SPECTRA_HOSTS" 'SET s:{key} {value}'
		row spectra strong_read "$c" "$SPECTRA_HOSTS" 'GET s:{key}'
		row spectra strong_stale_read "$c" "$SPECTRA_HOSTS" 'LEVEL stale GET s:{key}'
		row spectra causal_write "$c" "$SPECTRA_HOSTS" 'SET cz:{key} {value}'
		settle_causal
		row spectra causal_read "$c" "$SPECTRA_HOSTS" 'GET cz:{key}'
		row spectra eventual_quorum_write "$c" "$SPECTRA_HOSTS" 'LEVEL quorum SET ev:{key} {value}'
		row spectra eventual_one_write "$c" "$SPECTRA_HOSTS" 'LEVEL one SET ev:{key} {value}'
		row spectra eventual_one_read "$c" "$SPECTRA_HOSTS" 'LEVEL one GET ev:{key}'
	done
	# The design table's own load, and five times it (the benchmark
	# issue's goal), 10,000 connections, open loop.
	local o=$OPEN_CLIENTS h=$SPECTRA_HOSTS
	row spectra design_strong_write "$o" "$h" 'SET s:{key} {value}' --rate "$(rate 2500)"
	row spectra design_causal_write "$o" "$h" 'SET cz:{key} {value}' --rate "$(rate 8200)"
	settle_causal
	row spectra design_eventual_write "$o" "$h" 'LEVEL quorum SET ev:{key} {value}' \
		--rate "$(rate 25000)"
	row spectra x5_strong_write "$o" "$h" 'SET s:{key} {value}' --rate "$(rate 12500)"
	row spectra x5_strong_read "$o" "$h" 'GET s:{key}' --rate "$(rate 12500)"
	row spectra x5_causal_write "$o" "$h" 'SET cz:{key} {value}' --rate "$(rate 41000)"
	settle_causal
	row spectra x5_causal_read "$o" "$h" 'GET cz:{key}' --rate "$(rate 41000)"
	row spectra x5_eventual_write "$o" "$h" 'LEVEL quorum SET ev:{key} {value}' \
		--rate "$(rate 125000)"
	row spectra x5_eventual_read "$o" "$h" 'LEVEL one GET ev:{key}' --rate "$(rate 125000)"
	if [ "$FAULTS" = yes ]; then
		local leader
		leader=$(sys_spectra_leader)
		[ -n "$leader" ] || die "spectra: no leader before the fault rows"
		fault_row spectra strong_write_kill_leader "$SPECTRA_HOSTS" 2500 'SET s:{key} {value}' \
			"'$SPECTRA' cluster stop --dir '$SPECTRA_DIR' --id $leader --kill"
		spectra_node_restart "$leader"
		leader=$(sys_spectra_leader)
		[ -n "$leader" ] || die "spectra: no leader after the restart"
		fault_row spectra strong_read_kill_leader "$SPECTRA_HOSTS" 2500 'GET s:{key}' \
			"'$SPECTRA' cluster stop --dir '$SPECTRA_DIR' --id $leader --kill"
		spectra_node_restart "$leader"
		fault_row spectra causal_write_kill_node "$SPECTRA_HOSTS" 8200 'SET cz:{key} {value}' \
			"'$SPECTRA' cluster stop --dir '$SPECTRA_DIR' --id 2 --kill"
		spectra_node_restart 2
		settle_causal
		fault_row spectra eventual_quorum_write_kill_node "$SPECTRA_HOSTS" 25000 \
			'LEVEL quorum SET ev:{key} {value}' \
			"'$SPECTRA' cluster stop --dir '$SPECTRA_DIR' --id 2 --kill"
	fi
	sys_stop_all
}

# ---- etcd ------------------------------------------------------------------

run_etcd() {
	echo "table: etcd, 5 members ($(etcd --version 2>/dev/null | head -n 1))"
	sys_etcd 5
	preload etcd "$ETCD_HOSTS" 'PUT e:{key} {value}' --driver etcd
	local c s
	for c in $CLIENTS; do
		for s in "put:PUT e:{key} {value}" "range:GET e:{key}" \
			"serializable_range:GET e:{key} SERIALIZABLE"; do
			# Every row starts from a healthy cluster: a member may still
			# be working off the row before.
			sys_etcd_healthy 60 || echo "  (etcd was not healthy after 60 s)"
			row etcd "${s%%:*}" "$c" "$ETCD_HOSTS" "${s#*:}" --driver etcd
			sys_etcd_check || echo "  (an etcd member exited during etcd ${s%%:*} at $c clients)"
		done
	done
	if [ "$FAULTS" = yes ]; then
		local leader
		sys_etcd_healthy 60 || true
		leader=$(sys_etcd_leader)
		[ -n "$leader" ] || die "etcd: no leader before the fault rows"
		fault_row etcd put_kill_leader "$ETCD_HOSTS" 2500 'PUT e:{key} {value}' \
			"kill -9 ${ETCD_PIDS[$leader]}" --driver etcd
		sys_etcd_check || true
		leader=$(sys_etcd_leader)
		[ -n "$leader" ] || die "etcd: no leader after the restart"
		fault_row etcd range_kill_leader "$ETCD_HOSTS" 2500 'GET e:{key}' \
			"kill -9 ${ETCD_PIDS[$leader]}" --driver etcd
	fi
	sys_stop_all
}

# ---- redis -----------------------------------------------------------------

run_redis() {
	echo "table: redis, a primary and 4 replicas ($(redis-server --version | head -n 1))"
	sys_redis 4 --maxclients 15000
	preload redis "$REDIS_PRIMARY" 'SET r:{key} {value}'
	local c
	for c in $CLIENTS; do
		row redis set "$c" "$REDIS_PRIMARY" 'SET r:{key} {value}'
		row redis set_wait2 "$c" "$REDIS_PRIMARY" 'SET r:{key} {value};WAIT 2 0'
		row redis get "$c" "$REDIS_ALL" 'GET r:{key}'
	done
	if [ "$FAULTS" = yes ]; then
		fault_row redis get_kill_replica "$REDIS_ALL" 25000 'GET r:{key}' "kill -9 ${REDIS_PIDS[1]}"
		fault_row redis set_wait2_kill_primary "$REDIS_PRIMARY" 25000 'SET r:{key} {value};WAIT 2 0' \
			"kill -9 ${REDIS_PIDS[0]}"
	fi
	sys_stop_all
}

T0=$(date +%s)
echo "table: $(nproc) cores; $SECS s per row after $WARMUP s warm-up; clients: $CLIENTS;" \
	"$KEYS keys, 64-byte values"
has_system spectra && run_spectra
has_system etcd && run_etcd
has_system redis && run_redis
ELAPSED=$(($(date +%s) - T0))

mkdir -p "$RESULTS_DIR"
/usr/bin/python3 bench/table.py --rows "$ROWS" --elapsed "$ELAPSED" \
	--json "$RESULTS_DIR/table-$STAMP.json" --svg "$RESULTS_DIR/table-$STAMP.svg" \
	--spectrad "$("$SPECTRAD" --version 2>&1 | head -n 1)" \
	--etcd "$(etcd --version 2>/dev/null | head -n 1)" \
	--redis "$(redis-server --version 2>/dev/null | head -n 1)"
