#!/usr/bin/env bash
# test_bench_table: `make bench-table`'s whole pipeline, in miniature.
#
# bench/table.sh runs with every system (spectra, etcd, Redis) and every
# row and availability run it has, but 50 clients, 1 s rows, 500 keys and
# a tenth of the open loops' rates, so CI proves the script, the fault
# runs and bench/table.py work end to end (the real table takes about ten
# minutes and is not run here). Checks:
#
#  1. it exits 0 and prints the design-format table, every row, the
#     availability runs and the goals;
#  2. the JSON has every closed-loop row for every system (14 scenarios),
#     the 9 open-loop rows, the 8 availability runs (each with its fault
#     run, exit status 0), a ratio for every paired row and a verdict for
#     every goal;
#  3. the SVG is well-formed XML with one point per closed-loop row.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both),
# redis-server, redis-cli, etcd, etcdctl and /usr/bin/python3.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRA SPECTRAD

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-bench-table.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() {
	echo "FAIL: $*" >&2
	tail -n 40 "$work/out" >&2
	exit 1
}

rc=0
TABLE_CLIENTS=50 TABLE_SECONDS=1 TABLE_WARMUP=0.5 TABLE_KEYS=500 TABLE_OPEN_CLIENTS=100 \
	TABLE_RATE_SCALE=0.1 TABLE_FAULT_CLIENTS=50 TABLE_FAULT_SECONDS=3 TABLE_FAULT_AT=1 \
	TABLE_RESULTS_DIR="$work/results" timeout 900 "$root/bench/table.sh" >"$work/out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "bench/table.sh exited $rc"
for want in "The design's table, measured" "Every row" "Availability: one node killed" \
	"Goals (benchmark issue)" "The whole run took"; do
	grep -qF "$want" "$work/out" || fail "no '$want' in the output"
done
echo "ok - bench/table.sh ran every system and printed every section"

json=$(ls "$work"/results/table-*.json)
svg=$(ls "$work"/results/table-*.svg)
/usr/bin/python3 - "$json" "$svg" <<'PY' || fail "the results do not hold what they should"
import json, sys
import xml.etree.ElementTree as ET
d = json.load(open(sys.argv[1]))
rows = d["rows"]
closed = [r for r in rows if r.get("mode") == "closed" and not r.get("fault")]
want = {"spectra": {"strong_write", "strong_read", "strong_stale_read", "causal_write",
                    "causal_read", "eventual_quorum_write", "eventual_one_write",
                    "eventual_one_read"},
        "etcd": {"put", "range", "serializable_range"},
        "redis": {"set", "set_wait2", "get"}}
for system, scen in want.items():
    got = {r["scenario"] for r in closed if r["system"] == system}
    assert got == scen, (system, sorted(got))
for r in closed:
    assert r["ok"] > 0 and r["connects"] == r["clients"], r
opened = [r for r in rows if r.get("mode") == "open" and not r.get("fault")]
assert len(opened) == 9, len(opened)
faults = [r for r in rows if r.get("fault")]
assert len(faults) == 8, [r["scenario"] for r in faults]
for r in faults:
    assert r["fault_status"] == 0 and r["fault_ran_at_s"] is not None, r
    assert 0 < r["availability"] <= 1, r
assert len(d["availability"]) == 8
assert len(d["pairs"]) == 8, d["pairs"]
assert all(p["ops"] > 0 for p in d["pairs"])
assert len(d["goals"]) >= 10 and all(isinstance(g["met"], bool) for g in d["goals"])
root = ET.parse(sys.argv[2]).getroot()
ns = "{http://www.w3.org/2000/svg}"
points = root.findall(".//" + ns + "circle")
assert len(points) == len(closed), (len(points), len(closed))
print("ok - JSON: %d closed rows, %d open, %d availability runs, %d pairs, %d goals; SVG: %d points"
      % (len(closed), len(opened), len(faults), len(d["pairs"]), len(d["goals"]), len(points)))
PY
echo "all bench-table tests passed"
