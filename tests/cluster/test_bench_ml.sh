#!/usr/bin/env bash
# test_bench_ml: `make bench-ml`'s whole pipeline, in miniature.
#
# bench/ml.sh runs with every system (spectra, Redis, etcd) and every row
# it has, but 4 clients, 1 s rows and 500 keys, so CI proves the script
# and bench/ml.py work end to end (the real run takes about six minutes
# and is not run here). Checks:
#
#  1. it exits 0 and prints the table, the machine and the JSON's path;
#  2. the JSON has every row (8 spectra, 4 Redis, 3 etcd), each with
#     ops/s > 0, no errors and every connection made, a ratio for each of
#     the 8 spectra rows, the host (cores, memory, kernel) and the value
#     sizes etcd was given;
#  3. nothing it started is left running.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both),
# redis-server, redis-cli, etcd, etcdctl and /usr/bin/python3.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRA SPECTRAD

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-bench-ml.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() {
	echo "FAIL: $*" >&2
	tail -n 40 "$work/out" >&2
	exit 1
}

rc=0
ML_CLIENTS=4 ML_SECONDS=1 ML_WARMUP=0.5 ML_KEYS=500 TMPDIR="$work" \
	ML_RESULTS_DIR="$work/results" timeout 300 "$root/bench/ml.sh" >"$work/out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "bench/ml.sh exited $rc"
for want in "The ML layer beside its peers" "x ops" "The whole run took" "Machine: " \
	"wrote $work/results/ml-"; do
	grep -qF "$want" "$work/out" || fail "no '$want' in the output"
done
echo "ok - bench/ml.sh ran every system and printed the table"

json=$(ls "$work"/results/ml-*.json)
/usr/bin/python3 - "$json" <<'PY' || fail "the JSON does not hold what it should"
import json, sys
d = json.load(open(sys.argv[1]))
want = {"spectra": {"feature_write", "feature_read", "feature_batch", "eventual_feature_write",
                    "eventual_feature_read", "model_read", "model_stale_read",
                    "model_register"},
        "redis": {"hset", "hmget", "multi_hset", "hset_wait2"},
        "etcd": {"get", "get_serializable", "put"}}
rows = d["rows"]
for system, scen in want.items():
    got = [r["scenario"] for r in rows if r["system"] == system]
    assert sorted(got) == sorted(scen), (system, sorted(got))
for r in rows:
    assert r["clients"] == 4 and r["mode"] == "closed", r
    assert r["ok"] > 0 and r["ops_per_s"] > 0, r
    assert r["errors"] == {}, (r["system"], r["scenario"], r["errors"])
    assert r["connects"] == r["clients"] and r["drops"] == 0, r
    assert 0 < r["p50_us"] <= r["p95_us"] <= r["p99_us"], r
assert len(d["pairs"]) == 8, d["pairs"]
for p in d["pairs"]:
    assert p["ops"] > 0 and p["p99"] > 0, p
h = d["host"]
assert h["cores"] >= 1 and h["memory_gib"] > 0 and h["kernel"], h
pr = d["params"]
assert pr["etcd_model_value_bytes"] > 50 and pr["etcd_put_value_bytes"] > 30, pr
assert pr["model_record_bytes"] > pr["etcd_model_value_bytes"], pr
print("ok - JSON: %d rows, %d pairs, every row with ops and no errors" % (len(rows), len(d["pairs"])))
PY

# Everything bench/ml.sh started ran from its scratch directory under
# $work: nothing may be left.
left=$(pgrep -f -- "$work/spectra-bench-ml" || true)
[ -z "$left" ] || fail "processes left running: $(ps -o pid,args -p "${left//$'\n'/,}")"
[ -z "$(ls -d "$work"/spectra-bench-ml-* 2>/dev/null)" ] || fail "the scratch directory was left"
echo "ok - nothing left running"
echo "all bench-ml tests passed"
