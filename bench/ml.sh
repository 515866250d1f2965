#!/usr/bin/env bash
# ml: the ML layer (the feature store and the model registry) beside its
# natural peers, in one run on this machine (make bench-ml).
#
# Three systems, one at a time, each on free 127.0.0.1 ports:
#
#   spectra  5 nodes (`spectra cluster up`, spectrad defaults: fsync
#            always); feature views `user` (KEYSPACE CREATE user MODE causal
#            FEATURES yes) and `euser` (MODE eventual RF 3 FEATURES yes),
#            and the strong keyspace `models`
#   redis    a primary and 4 replicas (no persistence): hashes as features
#   etcd     5 members (Debian's etcd-server), driven through its v3 JSON
#            gateway over HTTP/1.1: one key per model
#
# `spectra bench` runs every row: a closed loop (each connection one
# request in flight) of ML_SECONDS (8) after ML_WARMUP (2) s of warm-up, at
# each of ML_CLIENTS ("100 1000") connections, keys uniform over ML_KEYS
# (100000), 64-byte {value}s. Rows, and the peer each is compared with:
#
#   feature write   spectra FEATURE.SET user:{key} {rand} clicks {value} country se
#                           (causal view, every node)
#                   redis   HSET user:{key} clicks {value} country se (primary)
#   feature read    spectra FEATURE.GET user:{key} FIELDS clicks country
#                           (causal view, every node)
#                   redis   HMGET user:{key} clicks country (primary + replicas)
#   feature batch   spectra MULTI; FEATURE.SET user:{key}a ...; FEATURE.SET
#                           user:{key}b ...; EXEC (one causal batch, every node)
#                   redis   MULTI; HSET ...a; HSET ...b; EXEC (primary)
#   eventual view   spectra FEATURE.SET / FEATURE.GET on euser (QUORUM, the
#                           default; every node)
#                   redis   HSET ...; WAIT 2 0 (primary) / the HMGET row above
#   model read      spectra MODEL.GET models:fraud ALIAS production
#                           (linearizable) and LEVEL stale MODEL.GET ...
#                           (every node; ML_VERSIONS (20) versions registered)
#                   etcd    GET models/fraud (linearizable) and GET
#                           models/fraud SERIALIZABLE (every member)
#   model write     spectra MODEL.REGISTER models:m{key} s3://bucket/model/{rand}
#                   etcd    PUT models/m{key} {value} (every member)
#
# etcd's values are as large as the bytes (field names and values) of
# spectra's MODEL.GET reply for the same model, measured before etcd
# starts. Before the rows, every feature key is written once (--dist seq)
# so reads hit; Redis then waits until its replicas have it all.
#
# bench/ml.py prints the table (every row with ops/s, p50/p95/p99, errors
# and its ratio to its peer in ops/s and p99) and writes
# bench/results/ml-<UTC>.json. Everything started is stopped on exit,
# whether the run succeeds or not.
#
# Environment: ML_CLIENTS ("100 1000"), ML_SECONDS (8), ML_WARMUP (2),
# ML_KEYS (100000), ML_VERSIONS (20), ML_SYSTEMS ("spectra redis etcd"),
# ML_RESULTS_DIR (bench/results), SPECTRA, SPECTRAD.
set -euo pipefail
cd "$(dirname "$0")/.."

SPECTRA=${SPECTRA:-$PWD/bin/spectra}
export SPECTRAD=${SPECTRAD:-$PWD/bin/spectrad}
SECS=${ML_SECONDS:-8}
WARMUP=${ML_WARMUP:-2}
CLIENTS=${ML_CLIENTS:-"100 1000"}
KEYS=${ML_KEYS:-100000}
VERSIONS=${ML_VERSIONS:-20}
SYSTEMS=${ML_SYSTEMS:-"spectra redis etcd"}
RESULTS_DIR=${ML_RESULTS_DIR:-bench/results}
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-bench-ml-XXXXXX")
ROWS=$TMP/rows.jsonl
# A row that outlives this was stuck: it fails the run.
ROW_LIMIT=$(awk -v s="$SECS" -v w="$WARMUP" 'BEGIN { printf "%d", s + w + 60 }')
BENCH_PID=

cleanup() {
	local rc=$?
	trap - INT TERM
	if [ -n "$BENCH_PID" ]; then
		kill -TERM "$BENCH_PID" 2>/dev/null || true
		wait "$BENCH_PID" 2>/dev/null || true
	fi
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
	echo "ml: $*" >&2
	exit 1
}

has_system() { [[ " $SYSTEMS " == *" $1 "* ]]; }

[ -x "$SPECTRA" ] || die "no spectra at $SPECTRA (run make)"
command -v redis-cli >/dev/null || die "redis-cli not installed (make deps)"
for s in $SYSTEMS; do
	case $s in
	spectra) [ -x "$SPECTRAD" ] || die "no spectrad at $SPECTRAD (run make)" ;;
	redis) command -v redis-server >/dev/null || die "redis-server not installed (make deps)" ;;
	etcd) { command -v etcd && command -v etcdctl; } >/dev/null ||
		die "etcd and etcdctl not installed (make deps)" ;;
	*) die "ML_SYSTEMS: unknown system '$s' (spectra, redis, etcd)" ;;
	esac
done
for c in $CLIENTS; do
	if ! [[ "$c" =~ ^[0-9]+$ ]] || ((c < 1 || c > 10000)); then
		die "ML_CLIENTS: whole numbers, 1 to 10000 each"
	fi
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# shellcheck source=tests/lib/ports.sh
source tests/lib/ports.sh
# shellcheck source=bench/lib/systems.sh
source bench/lib/systems.sh

: >"$ROWS"

# run_bench OUT LIMIT ARGS...: `spectra bench ARGS` in the background (so
# a signal ends the run at once and cleanup stops it), bounded by LIMIT s.
run_bench() {
	local out=$1 limit=$2 rc=0
	shift 2
	timeout --kill-after=10 "$limit" "$SPECTRA" bench "$@" --json "$out.json" --quiet \
		>"$out.out" 2>"$out.err" &
	BENCH_PID=$!
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=
	return "$rc"
}

# row SYSTEM SCENARIO CLIENTS HOSTS TEMPLATE [spectra bench flags...]: one
# row, its JSON line tagged with the system and scenario, printed.
row() {
	local system=$1 scenario=$2 clients=$3 hosts=$4 tmpl=$5 rc=0 out
	shift 5
	out=$TMP/$system-$scenario-$clients
	run_bench "$out" "$ROW_LIMIT" --hosts "$hosts" --clients "$clients" --duration "$SECS" \
		--warmup "$WARMUP" --keys "$KEYS" --op "1:$tmpl" --name "$system/$scenario" "$@" || rc=$?
	{ [ "$rc" -eq 0 ] && [ -s "$out.json" ]; } ||
		die "$system $scenario at $clients clients failed (exit $rc): $(tail -n 5 "$out.out" "$out.err")"
	/usr/bin/python3 - "$system" "$scenario" "$out.json" "$ROWS" <<'PY'
import json, sys
system, scenario, path, rows = sys.argv[1:5]
with open(path) as f:
    r = json.loads(f.readlines()[-1])
r["system"], r["scenario"] = system, scenario
with open(rows, "a") as f:
    f.write(json.dumps(r) + "\n")
errs = sum(r["errors"].values())
print("  %-8s %-24s %5d clients %9.0f ops/s  p50 %7.3f  p95 %7.3f  p99 %7.3f ms%s" % (
    system, scenario, r["clients"], r["ops_per_s"], r["p50_us"] / 1000, r["p95_us"] / 1000,
    r["p99_us"] / 1000, "  (%d errors: %s)" % (errs, r["errors"]) if errs else ""))
PY
}

# preload SYSTEM HOSTS TEMPLATE [flags...]: TEMPLATE once for every key
# (--dist seq), not recorded; every write must succeed.
preload() {
	local system=$1 hosts=$2 tmpl=$3 out rc=0
	out=$TMP/preload-$system-$(printf '%s' "$tmpl" | cksum | cut -d' ' -f1)
	shift 3
	run_bench "$out" 600 --hosts "$hosts" --clients 100 --requests "$KEYS" --warmup 0 \
		--dist seq --keys "$KEYS" --op "1:$tmpl" "$@" || rc=$?
	{ [ "$rc" -eq 0 ] && [ -s "$out.json" ]; } ||
		die "$system: the write pass '$tmpl' failed (exit $rc): $(tail -n 5 "$out.out" "$out.err")"
	grep -q '"errors":{}' "$out.json" ||
		die "$system: writes of the write pass '$tmpl' failed: $(cat "$out.json")"
	/usr/bin/python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).readlines()[-1])
print("ml: %s: %s, %d keys in %.1f s" % (sys.argv[2], sys.argv[3], r["ok"], r["seconds"]))' \
		"$out.json" "$system" "$tmpl"
}

# cli PORT ARGS...: one command, its reply without carriage returns.
cli() {
	local port=$1
	shift
	{ redis-cli -p "$port" "$@" 2>&1 || true; } | tr -d '\r'
}

# until_ok PORT ARGS...: retry a command (up to 10 s) until it answers OK.
until_ok() {
	local got=
	for _ in $(seq 1 50); do
		got=$(cli "$@")
		[ "$got" = OK ] && return 0
		sleep 0.2
	done
	die "'${*:2}' on port $1 gave '$got'"
}

# settle_causal waits until every spectra node has applied every causal
# write, so no row pays for the one before it.
settle_causal() {
	local i a same
	for _ in $(seq 1 900); do
		same=1
		a=$(cli "$SPECTRA_BASE" info causal | sed -n 's/^causal_applied://p')
		for i in 1 2 3 4; do
			[ "$(cli $((SPECTRA_BASE + i)) info causal | sed -n 's/^causal_applied://p')" = "$a" ] ||
				same=0
		done
		[ "$same" = 1 ] && return 0
		sleep 0.1
	done
	echo "ml: spectra's nodes did not settle their causal writes in 90 s" >&2
}

# reply_bytes PORT ARGS...: the bytes of a reply's strings (field names
# and values), the size etcd's value gets for the same record.
reply_bytes() {
	{ redis-cli --raw -p "$@" 2>/dev/null || true; } | tr -d '\r\n' | wc -c
}

# Sizes of etcd's values: spectra measures them; without spectra in the
# run, a reply of MODEL.GET for these records measured on this repository.
MODEL_BYTES=96
REGISTER_BYTES=68
MODEL_RECORD_BYTES=

# ---- spectra ---------------------------------------------------------------

run_spectra() {
	echo "ml: spectra, 5 nodes ($("$SPECTRAD" --version 2>&1 | head -n 1))"
	sys_spectra ml 5
	local p=$SPECTRA_BASE h=$SPECTRA_HOSTS i c v got
	until_ok "$p" KEYSPACE CREATE user MODE causal FEATURES yes
	until_ok "$p" KEYSPACE CREATE euser MODE eventual RF 3 FEATURES yes
	until_ok "$p" KEYSPACE CREATE models MODE strong
	# Every node knows the views (definitions travel through Raft).
	for i in 0 1 2 3 4; do
		for _ in $(seq 1 50); do
			got=$(cli $((p + i)) FEATURE.SET "euser:sanity$i" 1 clicks 1)
			[ "$got" = 1 ] && got=$(cli $((p + i)) FEATURE.SET "user:sanity$i" 1 clicks 1)
			[ "$got" = 1 ] && break
			sleep 0.2
		done
		[ "$got" = 1 ] || die "spectra: node $((i + 1)) refused FEATURE.SET: '$got'"
	done
	# The model: VERSIONS versions, production on the latest.
	for i in $(seq 1 "$VERSIONS"); do
		got=$(cli "$p" MODEL.REGISTER models:fraud "s3://bucket/model/fraud/$i" \
			META "{\"auc\":0.9$((i % 10))}" SCHEMA 3)
		[ "$got" = "$i" ] || die "spectra: MODEL.REGISTER gave '$got', wanted $i"
	done
	got=$(cli "$p" MODEL.ALIAS models:fraud production "$VERSIONS" IFNONE)
	[ "$got" = 1 ] || die "spectra: MODEL.ALIAS gave '$got'"
	MODEL_BYTES=$(reply_bytes "$p" MODEL.GET models:fraud ALIAS production)
	MODEL_RECORD_BYTES=$(($(reply_bytes "$p" MODEL.VERSIONS models:fraud) +
		$(reply_bytes "$p" MODEL.ALIASES models:fraud)))
	got=$(cli "$p" MODEL.REGISTER models:probe "s3://bucket/model/$RANDOM$RANDOM")
	[ "$got" = 1 ] || die "spectra: MODEL.REGISTER models:probe gave '$got'"
	REGISTER_BYTES=$(reply_bytes "$p" MODEL.GET models:probe)
	echo "ml: models:fraud: $VERSIONS versions; MODEL.GET's reply $MODEL_BYTES bytes," \
		"the record's $MODEL_RECORD_BYTES; a one-version model's reply $REGISTER_BYTES"
	for i in 0 1 2 3 4; do
		got=$(cli $((p + i)) LEVEL stale MODEL.GET models:fraud ALIAS production | sed -n 2p)
		for _ in $(seq 1 50); do
			[ "$got" = "$VERSIONS" ] && break
			sleep 0.2
			got=$(cli $((p + i)) LEVEL stale MODEL.GET models:fraud ALIAS production | sed -n 2p)
		done
		[ "$got" = "$VERSIONS" ] || die "spectra: node $((i + 1)) reads production as '$got'"
	done
	preload spectra "$h" 'FEATURE.SET user:{key} {rand} clicks {value} country se'
	preload spectra "$h" 'FEATURE.SET euser:{key} {rand} clicks {value} country se'
	settle_causal
	# Reads hit: a preloaded entity read on every node, in both views.
	for i in 0 1 2 3 4; do
		for v in user euser; do
			got=$(cli $((p + i)) FEATURE.GET "$v:$((KEYS - 1 - i))" FIELDS country | tail -n 1)
			[ "$got" = se ] || die "spectra: FEATURE.GET $v:$((KEYS - 1 - i)) on node $((i + 1)) gave '$got'"
		done
	done
	for c in $CLIENTS; do
		row spectra feature_write "$c" "$h" 'FEATURE.SET user:{key} {rand} clicks {value} country se'
		row spectra feature_batch "$c" "$h" \
			'MULTI;FEATURE.SET user:{key}a {rand} clicks {value} country se;FEATURE.SET user:{key}b {rand} clicks {value} country se;EXEC'
		settle_causal
		row spectra feature_read "$c" "$h" 'FEATURE.GET user:{key} FIELDS clicks country'
		row spectra eventual_feature_write "$c" "$h" \
			'FEATURE.SET euser:{key} {rand} clicks {value} country se'
		row spectra eventual_feature_read "$c" "$h" 'FEATURE.GET euser:{key} FIELDS clicks country'
		row spectra model_read "$c" "$h" 'MODEL.GET models:fraud ALIAS production'
		row spectra model_stale_read "$c" "$h" 'LEVEL stale MODEL.GET models:fraud ALIAS production'
		row spectra model_register "$c" "$h" 'MODEL.REGISTER models:m{key} s3://bucket/model/{rand}'
	done
	sys_stop_all
}

# ---- redis -----------------------------------------------------------------

run_redis() {
	echo "ml: redis, a primary and 4 replicas ($(redis-server --version | head -n 1))"
	sys_redis 4
	preload redis "$REDIS_PRIMARY" 'HSET user:{key} clicks {value} country se'
	local got c
	got=$(cli "$REDIS_BASE" WAIT 4 60000)
	[ "$got" = 4 ] || die "redis: the replicas did not catch up with the write pass (WAIT gave '$got')"
	for c in $CLIENTS; do
		row redis hset "$c" "$REDIS_PRIMARY" 'HSET user:{key} clicks {value} country se'
		row redis multi_hset "$c" "$REDIS_PRIMARY" \
			'MULTI;HSET user:{key}a clicks {value} country se;HSET user:{key}b clicks {value} country se;EXEC'
		row redis hmget "$c" "$REDIS_ALL" 'HMGET user:{key} clicks country'
		row redis hset_wait2 "$c" "$REDIS_PRIMARY" 'HSET user:{key} clicks {value} country se;WAIT 2 0'
	done
	sys_stop_all
}

# ---- etcd ------------------------------------------------------------------

# etcd_row SCENARIO CLIENTS TEMPLATE VALUE_SIZE: every row starts from a
# healthy cluster (a member may still be working off the row before), and
# a member that exited is restarted (and said so).
etcd_row() {
	sys_etcd_healthy 60 || echo "  (etcd was not healthy after 60 s)"
	row etcd "$1" "$2" "$ETCD_HOSTS" "$3" --driver etcd --value-size "$4"
	sys_etcd_check || echo "  (an etcd member exited during etcd $1 at $2 clients)"
}

run_etcd() {
	echo "ml: etcd, 5 members ($(etcd --version 2>/dev/null | head -n 1))"
	sys_etcd 5
	local out=$TMP/preload-etcd rc=0 c
	run_bench "$out" 60 --hosts "${ETCD_HOSTS%%,*}" --clients 1 --requests 1 --warmup 0 \
		--driver etcd --value-size "$MODEL_BYTES" --op '1:PUT models/fraud {value}' || rc=$?
	{ [ "$rc" -eq 0 ] && grep -q '"errors":{}' "$out.json"; } ||
		die "etcd: PUT models/fraud failed: $(tail -n 5 "$out.out" "$out.err")"
	echo "ml: etcd: models/fraud holds $MODEL_BYTES bytes; PUTs write $REGISTER_BYTES"
	for c in $CLIENTS; do
		etcd_row get "$c" 'GET models/fraud' "$MODEL_BYTES"
		etcd_row get_serializable "$c" 'GET models/fraud SERIALIZABLE' "$MODEL_BYTES"
		etcd_row put "$c" 'PUT models/m{key} {value}' "$REGISTER_BYTES"
	done
	sys_stop_all
}

MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
T0=$(date +%s)
echo "ml: $(nproc) cores, $MEM, $(uname -sr); $SECS s per row after $WARMUP s warm-up;" \
	"clients: $CLIENTS; $KEYS keys, 64-byte values; closed loop"
has_system spectra && run_spectra
has_system redis && run_redis
has_system etcd && run_etcd
ELAPSED=$(($(date +%s) - T0))

mkdir -p "$RESULTS_DIR"
/usr/bin/python3 bench/ml.py --rows "$ROWS" --elapsed "$ELAPSED" \
	--json "$RESULTS_DIR/ml-$STAMP.json" --keys "$KEYS" --seconds "$SECS" --warmup "$WARMUP" \
	--versions "$VERSIONS" --model-bytes "$MODEL_BYTES" --register-bytes "$REGISTER_BYTES" \
	--model-record-bytes "${MODEL_RECORD_BYTES:-0}" \
	--spectrad "$("$SPECTRAD" --version 2>&1 | head -n 1)" \
	--etcd "$(etcd --version 2>/dev/null | head -n 1)" \
	--redis "$(redis-server --version 2>/dev/null | head -n 1)"
