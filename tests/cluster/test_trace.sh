#!/usr/bin/env bash
# test_trace: `spectra trace merge` and `spectra trace graph` on the trace
# logs of a real 3-node cluster started with --trace-file.
#
#  1. writes and reads on a causal keyspace through every node, with one
#     session carried from node 1 to node 2 to node 3 by SESSION TOKEN /
#     SESSION RESUME;
#  2. merge: every event of the three files appears, each with a clock
#     naming its own node; the hopping session's events appear; every
#     apply's clock is at least its write's (write -> apply respected);
#  3. graph: a well-formed SVG with one lane per node.
# Every node is stopped on exit, pass or fail.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-trace.XXXXXX")
dir=$work/c

cleanup() {
	cluster_kill "$dir"
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"
# shellcheck source=tests/lib/cluster.sh
source "$root/tests/lib/cluster.sh"
applied() { cli "$1" info causal | sed -n 's/^causal_applied://p'; }
wait_same() {
	local a
	for _ in $(seq 1 100); do
		a=$(applied 1)
		[ -n "$a" ] && [ "$(applied 2)" = "$a" ] && [ "$(applied 3)" = "$a" ] && return 0
		sleep 0.1
	done
	return 1
}

base=$(free_base 3)
pbase=$(free_base 3)
"$SPECTRA" cluster up --nodes 3 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	-- --trace-file trace.jsonl --election-timeout-ms 500 --heartbeat-ms 50 \
	>"$work/up.out" 2>&1 || { cat "$work/up.out"; fail "cluster up"; }
for _ in $(seq 1 50); do
	[ "$(cli 1 keyspace create cz mode causal)" = OK ] && break
	sleep 0.2
done
for i in 1 2 3; do
	for _ in $(seq 1 50); do
		[ "$(cli "$i" keyspace describe cz | sed -n 4p)" = causal ] && break
		sleep 0.1
	done
done

# 1. plain writes and reads through every node
for i in 1 2 3; do
	[ "$(cli "$i" set "cz:k$i" "v$i")" = OK ] || fail "set through node $i"
done
wait_same || fail "nodes did not apply the same updates"
for i in 1 2 3; do cli "$i" get cz:k1 >/dev/null; done
# ... and a session hopping 1 -> 2 -> 3
tok=$(printf 'SET cz:hop a\r\nSESSION TOKEN\r\n' | redis-cli -p "$(port 1)" | tr -d '\r' | tail -1)
[ -n "$tok" ] && [[ "$tok" != ERR* ]] || fail "SESSION TOKEN on node 1: '$tok'"
wait_same || fail "nodes did not apply the same updates"
tok=$(printf 'SESSION RESUME %s\r\nGET cz:hop\r\nSET cz:hop2 b\r\nSESSION TOKEN\r\n' "$tok" |
	redis-cli -p "$(port 2)" | tr -d '\r' | tail -1)
[ -n "$tok" ] && [[ "$tok" != ERR* ]] || fail "SESSION TOKEN on node 2: '$tok'"
wait_same || fail "nodes did not apply the same updates"
out=$(printf 'SESSION RESUME %s\r\nGET cz:hop2\r\nGET cz:hop\r\n' "$tok" | redis-cli -p "$(port 3)" | tr -d '\r')
[ "$(echo "$out" | sed -n 2,3p | tr '\n' ' ')" = "b a " ] || fail "the session on node 3: $out"
ok "writes and reads through every node, a session hopping 1 -> 2 -> 3"
"$SPECTRA" cluster down --dir "$dir" --timeout 5 >/dev/null || fail "cluster down"

files=("$dir"/node-1/trace.jsonl "$dir"/node-2/trace.jsonl "$dir"/node-3/trace.jsonl)
for f in "${files[@]}"; do [ -s "$f" ] || fail "no trace at $f"; done
nevents=$(cat "${files[@]}" | grep -c .)

# 2. merge
"$SPECTRA" trace merge "${files[@]}" -o "$work/merged.log" 2>"$work/merge.err" ||
	{ cat "$work/merge.err" >&2; fail "trace merge"; }
python3 - "$work/merged.log" "$nevents" <<'PY' || fail "the merged log"
import json, re, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l and not l.startswith("#")]
want = int(sys.argv[2])
assert len(lines) == 2 * want, f"{len(lines)} lines for {want} events"
events = []
for desc, clock in zip(lines[0::2], lines[1::2]):
    m = re.fullmatch(r"(\S*) (\{.*\})", clock)
    assert m, f"no clock line after {desc!r}: {clock!r}"
    host, vc = m.group(1), json.loads(m.group(2))
    assert desc.startswith(host + " "), (desc, host)
    assert vc.get(host, 0) >= 1, (desc, vc)
    f = dict(kv.split("=", 1) for kv in desc.split()[3:])
    events.append((host, desc.split()[1], f, vc))
writes = {(f["origin"], f["seq"]): (h, vc) for h, kind, f, vc in events if kind == "write"}
applies = 0
for h, kind, f, vc in events:
    if kind == "write":
        continue
    w = writes.get((f["origin"], f["seq"]))
    if w is None or w[0] == h:
        continue
    for node, c in w[1].items():
        assert vc.get(node, 0) >= c, f"{h} {kind} {f} does not follow its write: {vc} vs {w[1]}"
    applies += kind == "apply"
assert applies >= 6, f"only {applies} applies of other nodes' writes"
sessions = {}
for h, kind, f, vc in events:
    if "session" in f:
        sessions.setdefault(f["session"], set()).add(h)
assert any(len(s) == 3 for s in sessions.values()), f"no session on three nodes: {sessions}"
# an order consistent with happens-before: no event's clock is above a later one's
for i in range(len(events)):
    for j in range(i):
        a, b = events[j][3], events[i][3]
        assert not all(b.get(k, 0) <= a.get(k, 0) for k in set(a) | set(b)) or a == b, \
            f"event {i} is before event {j} but written after it"
PY
ok "trace merge: $nevents events, each with a clock, write -> apply/read respected, a session on three nodes"

# 3. graph
"$SPECTRA" trace graph "${files[@]}" -o "$work/g.svg" 2>"$work/graph.err" ||
	{ cat "$work/graph.err" >&2; fail "trace graph"; }
python3 -c 'import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])' "$work/g.svg" ||
	fail "the SVG is not well-formed XML"
for i in 1 2 3; do
	grep -q "id=\"lane-node$i\"" "$work/g.svg" || fail "no lane for node $i"
done
[ "$(grep -c 'class="lane"' "$work/g.svg")" = 3 ] || fail "not three lanes"
[ "$(grep -c 'class="event"' "$work/g.svg")" = "$nevents" ] || fail "not one dot per event"
"$SPECTRA" trace graph "${files[@]}" --max-events 5 -o "$work/g5.svg" 2>/dev/null || fail "--max-events"
[ "$(grep -c 'class="event"' "$work/g5.svg")" = 5 ] || fail "--max-events 5 drew other than 5"
set +e
"$SPECTRA" trace graph "${files[@]}" --max-events x >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 64 ] || fail "a bad --max-events exited $rc, not 64"
ok "trace graph: a well-formed SVG with one lane per node and one dot per event"
