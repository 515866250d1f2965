#!/usr/bin/env bash
# causal: causal keyspaces beside eventual ONE, in one run on this machine
# (make bench-causal).
#
# One 5-node spectra cluster with two keyspaces, `cz` (MODE causal) and
# `ev` (MODE eventual RF 3), and `spectra bench` over all five nodes:
#
#   causal write     SET cz:{key} {value}             (the session's level: causal)
#   causal read      GET cz:{key}
#   eventual write   LEVEL one SET ev:{key} {value}
#   eventual read    LEVEL one GET ev:{key}
#
# at 100 and 1000 clients (each connection is one session), each row a
# closed loop of BENCH_SECONDS (10) after BENCH_WARMUP (2) s, rows
# alternating between the modes, after a write pass over every key of
# each. After each causal write row the script waits until every node has
# applied every write (the rows after it must not pay for its
# replication; a causal write is acknowledged before it reaches the other
# nodes, so a row's ops/s is what nodes accept, and replication follows). Prints a table with the ratio causal / eventual ONE (the aim is at
# least 0.8) and writes bench/results/causal-<UTC timestamp>.json (one
# `spectra bench` JSON line per row). Everything is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SPECTRA=${SPECTRA:-$PWD/bin/spectra}
export SPECTRAD=${SPECTRAD:-$PWD/bin/spectrad}
SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CLIENTS=${CAUSAL_CLIENTS:-"100 1000"}
KEYS=${CAUSAL_KEYS:-100000}
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
JSON=bench/results/causal-$STAMP.json
TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-bench-causal-XXXXXX")

cleanup() {
	"$SPECTRA" cluster down --dir "$TMP/cluster" --timeout 10 >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=tests/lib/ports.sh
source tests/lib/ports.sh
base=$(free_base 5)
peer=$(free_base 5)
"$SPECTRA" cluster up --nodes 5 --dir "$TMP/cluster" --base-port "$base" --peer-base-port "$peer" \
	>"$TMP/up.out" 2>&1 || { cat "$TMP/up.out"; exit 1; }
hosts=$(for i in 0 1 2 3 4; do printf '127.0.0.1:%d,' $((base + i)); done)
hosts=${hosts%,}
for ks in "cz mode causal" "ev mode eventual rf 3"; do
	for _ in $(seq 1 50); do
		# shellcheck disable=SC2086 # words on purpose
		[ "$(redis-cli -p "$base" keyspace create $ks | tr -d '\r')" = OK ] && break
		sleep 0.2
	done
done
sleep 1

bench() { # NAME CLIENTS OP [more spectra bench flags]
	local name=$1 clients=$2 op=$3
	shift 3
	timeout $((SECS + WARMUP + 120)) "$SPECTRA" bench --hosts "$hosts" --clients "$clients" \
		--keys "$KEYS" --op "1:$op" --name "$name" --json "$TMP/rows.json" --quiet "$@"
}

# settle waits until every node has applied every causal write (the rows
# after a causal write row must not pay for its replication backlog).
settle() {
	local i a same
	for _ in $(seq 1 600); do
		same=1
		a=$(redis-cli -p "$base" info causal | tr -d '\r' | sed -n 's/^causal_applied://p')
		for i in 1 2 3 4; do
			[ "$(redis-cli -p $((base + i)) info causal | tr -d '\r' | sed -n 's/^causal_applied://p')" = "$a" ] || same=0
		done
		[ "$same" = 1 ] && return 0
		sleep 0.1
	done
	echo "causal: nodes did not settle in 60 s" >&2
}

echo "causal: preloading $KEYS keys in each keyspace"
bench preload-cz 100 'SET cz:{key} {value}' --dist seq --requests "$KEYS" --warmup 0 >/dev/null
bench preload-ev 100 'LEVEL one SET ev:{key} {value}' --dist seq --requests "$KEYS" --warmup 0 >/dev/null
settle
: >"$TMP/rows.json"

for c in $CLIENTS; do
	bench causal_write "$c" 'SET cz:{key} {value}' --duration "$SECS" --warmup "$WARMUP" >/dev/null
	settle
	bench eventual_one_write "$c" 'LEVEL one SET ev:{key} {value}' --duration "$SECS" --warmup "$WARMUP" >/dev/null
	bench causal_read "$c" 'GET cz:{key}' --duration "$SECS" --warmup "$WARMUP" >/dev/null
	bench eventual_one_read "$c" 'LEVEL one GET ev:{key}' --duration "$SECS" --warmup "$WARMUP" >/dev/null
done
mkdir -p bench/results
cp "$TMP/rows.json" "$JSON"

python3 - "$JSON" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["name"], r["clients"]): r for r in rows}
print("clients | row                 ops/s   p50 ms   p95 ms   p99 ms | ratio to eventual ONE")
for c in sorted({r["clients"] for r in rows}):
    for kind in ("write", "read"):
        cz, ev = by.get(("causal_" + kind, c)), by.get(("eventual_one_" + kind, c))
        for name, r in (("causal " + kind, cz), ("eventual ONE " + kind, ev)):
            if not r:
                continue
            ratio = "%.2f" % (cz["ops_per_s"] / ev["ops_per_s"]) if (name.startswith("causal") and ev) else ""
            print("%7d | %-17s %8.0f %8.3f %8.3f %8.3f | %s" % (c, name, r["ops_per_s"], r["p50_us"] / 1000,
                  r["p95_us"] / 1000, r["p99_us"] / 1000, ratio))
PY
echo "wrote $JSON"
