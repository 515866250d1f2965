#!/usr/bin/env bash
# test_metrics: a node's HTTP metrics (/metrics, /status), on a 3-node
# cluster of real spectrad processes started by `spectra cluster up` with
# admin commands on and every weak read sampled (--stale-sample-every 1).
#
#  1. every node's /metrics is Prometheus text 0.0.4 (its Content-Type) that
#     prometheus_client's parser reads, every family with a HELP text;
#  2. counters move under load: 200 SETs and 200 GETs through node 1 at
#     strong linearizable, then at eventual quorum / one, raise
#     spectra_requests_total and spectra_request_duration_seconds_count of
#     their class, mode and level by at least 200 each on node 1, and
#     spectra_commands_total by at least 400; one node has
#     spectra_raft_is_leader 1, and it has spectra_raft_match_index for both
#     peers;
#  3. /status is JSON: 3 members, one leader, a levels list with a
#     strong/linearizable write entry whose total is over 0;
#  4. eventual ONE reads through node 2 of keys written at QUORUM through
#     node 1 are counted stale while node 1 delays every frame to node 2 by
#     300 ms, and no more once the delay is removed (node 2's /status shows
#     the stale entry too);
#  5. the same for strong `stale` reads on a follower while the leader
#     delays its frames to it, with a 250 ms gap between write and read once
#     the delay is removed (a follower learns the commit index with the
#     next heartbeat, every 100 ms);
#  6. HTTP edge cases: 404 for an unknown path, 405 for POST, 200 for HEAD;
#  7. a spectrad whose HTTP port is taken exits with an error (not a crash
#     or a sanitizer abort) and names that port in its output.
# Every node and the listener of check 7 are stopped on exit, pass or fail.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both),
# redis-cli, curl, and Debian's python3-prometheus-client for /usr/bin/python3.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD
PY=/usr/bin/python3

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-metrics.XXXXXX")
dir=$work/c
listener_pid=

cleanup() {
	if [ -n "$listener_pid" ]; then kill -9 "$listener_pid" 2>/dev/null || true; fi
	cluster_kill "$dir"
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	node_logs "$dir"
	exit 1
}

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"
# shellcheck source=tests/lib/cluster.sh
source "$root/tests/lib/cluster.sh"

command -v curl >/dev/null || fail "curl is not installed (scripts/deps.sh installs it)"
$PY -c 'import prometheus_client.parser' 2>/dev/null ||
	fail "$PY cannot import prometheus_client (Debian package python3-prometheus-client)"

# prom.py: the Prometheus side, on a saved /metrics body.
#   prom.py check FILE         parses FILE; every family must have a HELP
#                              text; prints the number of families
#   prom.py get FILE 'NAME [LABEL=VALUE...]'...
#                              for each query, prints (one a line) the value
#                              of the one sample named NAME whose labels
#                              include those given ('absent' if the query
#                              ends with ' ?' and there is none); exits 3
#                              if there is none, 4 if there are several
cat >"$work/prom.py" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families


def families(path):
    with open(path, encoding="utf-8") as f:
        return list(text_string_to_metric_families(f.read()))


def main():
    op, path = sys.argv[1], sys.argv[2]
    fams = families(path)
    if op == "check":
        bad = [f.name for f in fams if not f.documentation.strip()]
        if bad:
            print("families with no HELP text: %s" % " ".join(bad))
            return 1
        if not fams:
            print("no metric families")
            return 1
        print(len(fams))
        return 0
    out = []
    for q in sys.argv[3:]:
        name, *labels = q.split()
        optional = labels[-1:] == ["?"]
        labels = labels[:-1] if optional else labels
        want = dict(a.split("=", 1) for a in labels)
        found = [s for f in fams for s in f.samples
                 if s.name == name and all(s.labels.get(k) == v for k, v in want.items())]
        if not found and optional:
            out.append("absent")
            continue
        if not found:
            print("no sample %s%s" % (name, want))
            return 3
        if len(found) > 1:
            print("%d samples match %s%s" % (len(found), name, want))
            return 4
        v = found[0].value
        out.append(str(int(v) if v == int(v) else v))
    print("\n".join(out))
    return 0


sys.exit(main())
EOF

base=$(free_base 3)
pbase=$(free_base 3)
hbase=$(free_base 3)
hport() { echo $(($1 + hbase - 1)); }
url() { echo "http://127.0.0.1:$(hport "$1")$2"; }

# values ID 'NAME [LABEL=VALUE...]'...: one scrape of node ID's /metrics;
# prints each query's value, one a line (fails the test if the node does
# not answer or has no such sample).
values() {
	local id=$1 f=$work/metrics.$1 v
	shift
	curl -fsS --max-time 5 -o "$f" "$(url "$id" /metrics)" 2>"$work/curl.err" ||
		fail "node $id: GET /metrics: $(cat "$work/curl.err")"
	v=$($PY "$work/prom.py" get "$f" "$@") || fail "node $id: $v"
	echo "$v"
}

# status ID: node ID's /status, saved in $work/status.ID
status() {
	curl -fsS --max-time 5 -o "$work/status.$1" "$(url "$1" /status)" 2>"$work/curl.err" ||
		fail "node $1: GET /status: $(cat "$work/curl.err")"
}

# settle ID MODE LEVEL: waits (at most 10 s) until node ID's sampler has a
# verdict for every weak read it served at MODE/LEVEL (with
# --stale-sample-every 1 every one is sampled, and the stronger read behind
# a verdict may itself be slowed by an injected delay); then sets SAMPLED,
# STALE and VBEHIND (spectra_stale_read_versions_behind_count) from the
# same scrape. (Each scrape runs the parser: few of them keep the test fast.)
settle() {
	local id=$1 mode=$2 level=$3 out vals reads done_
	for _ in $(seq 1 50); do
		out=$(values "$id" "spectra_requests_total class=read mode=$mode level=$level" \
			"spectra_stale_reads_sampled_total mode=$mode level=$level" \
			"spectra_stale_read_checks_failed_total mode=$mode level=$level" \
			"spectra_stale_reads_total mode=$mode level=$level" \
			"spectra_stale_read_versions_behind_count mode=$mode level=$level")
		mapfile -t vals <<<"$out"
		reads=${vals[0]} done_=$((vals[1] + vals[2]))
		if [ "$done_" -ge "$reads" ]; then
			SAMPLED=${vals[1]} STALE=${vals[3]} VBEHIND=${vals[4]}
			return 0
		fi
		sleep 0.2
	done
	fail "node $id: $done_ sampler verdicts for $reads $mode/$level reads after 10 s"
}

# rw_load WPORT RPORT PREFIX KEYS SECONDS WLEVEL RLEVEL GAP_MS: prints the
# load's summary; fails on any error reply.
rw_load() {
	local out
	out=$(timeout 60 $PY "$root/tests/lib/rw_load.py" "$@" 2>&1) || fail "rw_load $*: $out"
	[[ "$out" == *" errors 0" ]] || fail "rw_load $*: $out"
	echo "$out"
}

# Heartbeat and election timeout as the defaults, spelled out: check 5's
# gap relies on the 100 ms heartbeat.
"$SPECTRA" cluster up --nodes 3 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	--http-base-port "$hbase" -- --admin-commands yes --stale-sample-every 1 \
	--heartbeat-ms 100 --election-timeout-ms 1000 \
	>"$work/up.out" 2>&1 || { cat "$work/up.out"; fail "cluster up"; }

# 1. every node's /metrics parses
for i in 1 2 3; do
	for _ in $(seq 1 50); do
		curl -fsS --max-time 2 -o /dev/null "$(url "$i" /metrics)" 2>/dev/null && break
		sleep 0.1
	done
	ctype=$(curl -fsS --max-time 5 -o "$work/metrics.$i" -w '%{content_type}' "$(url "$i" /metrics)") ||
		fail "node $i: GET /metrics"
	[[ "$ctype" == "text/plain; version=0.0.4"* ]] ||
		fail "node $i: /metrics has Content-Type '$ctype', want text/plain; version=0.0.4..."
	n=$($PY "$work/prom.py" check "$work/metrics.$i" 2>&1) ||
		fail "node $i: /metrics does not parse: $(tail -n 3 <<<"$n")"
	ok "node $i: /metrics ($ctype) parses: $n families, each with a HELP text"
done

# 2. counters move under load
# The eventual keyspace for 2 and 4, known to every node before use.
for _ in $(seq 1 50); do
	[ "$(cli 1 keyspace create feat mode eventual rf 3)" = OK ] && break
	sleep 0.2
done
for i in 1 2 3; do
	for _ in $(seq 1 50); do
		[ "$(cli "$i" keyspace describe feat | sed -n 4p)" = eventual ] && break
		sleep 0.1
	done
	[ "$(cli "$i" keyspace describe feat | sed -n 4p)" = eventual ] ||
		fail "node $i does not know keyspace feat: $(cli "$i" keyspace describe feat | tr '\n' ' ')"
done

# load MODE WLEVEL RLEVEL PREFIX: 200 SETs and 200 GETs through node 1 at
# those levels; every request counter of theirs on node 1 must grow by 200,
# spectra_commands_total by 400.
load() {
	local mode=$1 wl=$2 rl=$3 prefix=$4 i n before after
	local qs=("spectra_requests_total class=write mode=$mode level=$wl"
		"spectra_requests_total class=read mode=$mode level=$rl"
		"spectra_request_duration_seconds_count class=write mode=$mode level=$wl"
		"spectra_request_duration_seconds_count class=read mode=$mode level=$rl"
		"spectra_commands_total")
	local want=(200 200 200 200 400)
	before=$(values 1 "${qs[@]}")
	mapfile -t before <<<"$before"
	for i in $(seq 1 200); do
		echo "LEVEL $wl SET $prefix$i v$i"
		echo "LEVEL $rl GET $prefix$i"
	done | timeout 60 redis-cli -p "$(port 1)" >"$work/load.out" 2>&1 ||
		fail "redis-cli load: $(tail -n 3 "$work/load.out")"
	n=$(grep -c '^OK' "$work/load.out" || true)
	[ "$n" = 200 ] || fail "$n of 200 $mode SETs answered OK: $(grep -v '^OK\|^v' "$work/load.out" | head -n 3)"
	n=$(grep -c '^v' "$work/load.out" || true)
	[ "$n" = 200 ] || fail "$n of 200 $mode GETs answered a value: $(grep -v '^OK\|^v' "$work/load.out" | head -n 3)"
	after=$(values 1 "${qs[@]}")
	mapfile -t after <<<"$after"
	for i in "${!qs[@]}"; do
		[ $((after[i] - before[i])) -ge "${want[i]}" ] ||
			fail "node 1: ${qs[i]} went ${before[i]} -> ${after[i]} over ${want[i]} commands"
	done
}
load strong linearizable linearizable s:m
ok "200 strong SETs and GETs through node 1 raise its linearizable write/read requests and duration counts by 200, commands by 400"
load eventual quorum one feat:m
ok "200 eventual SETs at QUORUM and GETs at ONE through node 1 raise its counters of those levels by 200, commands by 400"
sb=$(values 2 "spectra_read_siblings_count mode=eventual")
[ "$(cli 1 mvreg.set feat:mv a)" = OK ] || fail "MVREG.SET"
[ "$(cli 2 mvreg.get feat:mv)" = a ] || fail "MVREG.GET"
sa=$(values 2 "spectra_read_siblings_count mode=eventual")
[ "$sa" -eq $((sb + 1)) ] || fail "node 2: spectra_read_siblings_count went $sb -> $sa over one MVREG.GET"
ok "an MVREG.GET is counted in spectra_read_siblings"

leaders=() mis=()
for _ in $(seq 1 50); do
	leaders=()
	for i in 1 2 3; do
		out=$(values "$i" spectra_raft_is_leader "spectra_raft_match_index peer=$((i % 3 + 1)) ?" \
			"spectra_raft_match_index peer=$(((i + 1) % 3 + 1)) ?")
		mapfile -t vals <<<"$out"
		if [ "${vals[0]}" = 1 ]; then
			leaders+=("$i")
			mis=("$((i % 3 + 1)):${vals[1]}" "$(((i + 1) % 3 + 1)):${vals[2]}")
		fi
	done
	[ "${#leaders[@]}" = 1 ] && break
	sleep 0.1
done
[ "${#leaders[@]}" = 1 ] || fail "spectra_raft_is_leader is 1 on nodes '${leaders[*]}', want exactly one"
leader=${leaders[0]}
for v in "${mis[@]}"; do
	if ! [[ "${v#*:}" =~ ^[0-9]+$ ]] || [ "${v#*:}" -le 0 ]; then
		fail "node $leader: spectra_raft_match_index{peer=\"${v%%:*}\"} is ${v#*:}"
	fi
done
ok "spectra_raft_is_leader is 1 on node $leader only, which has spectra_raft_match_index for both peers (${mis[*]})"

# 3. /status
for i in 1 2 3; do status "$i"; done
v=$($PY - "$work"/status.{1,2,3} <<'EOF' 2>&1
import json, sys
leaders = set()
for i, path in enumerate(sys.argv[1:], 1):
    with open(path, encoding="utf-8") as f:
        s = json.load(f)
    m = s["members"]
    assert len(m) == 3, "node %d: %d members" % (i, len(m))
    lead = [x["id"] for x in m if x["leader"] is True]
    assert len(lead) == 1, "node %d: members with leader=true: %s" % (i, lead)
    leaders.add(lead[0])
    assert s["levels"], "node %d: empty levels list" % i
    if i == 1:
        e = [x for x in s["levels"]
             if (x["mode"], x["level"], x["kind"]) == ("strong", "linearizable", "write")]
        assert e, "node 1: no strong/linearizable/write entry in levels"
        total = e[0]["total"]
        assert total > 0, "node 1: strong/linearizable/write total is %s" % total
assert len(leaders) == 1, "the nodes name different leaders: %s" % leaders
print(leaders.pop(), total)
EOF
) || fail "/status: $(tail -n 1 <<<"$v")"
[ "${v% *}" = "$leader" ] || fail "/status names leader ${v% *}, the metrics node $leader"
ok "every node's /status is JSON with 3 members, one leader (node $leader) and a levels list; node 1's strong/linearizable writes total ${v#* }"

# stale_phase WRITER READER PREFIX MODE WLEVEL RLEVEL GAP: with WRITER
# delaying its frames to READER by 300 ms, reads at RLEVEL through READER
# of keys written at WLEVEL through WRITER are stale; with the delay
# removed and GAP ms between write and read, none are.
stale_phase() {
	local w=$1 r=$2 prefix=$3 mode=$4 wl=$5 rl=$6 gap=$7 out t0 s0 rate S1 T1 S2 T2
	settle "$r" "$mode" "$rl"
	s0=$SAMPLED t0=$STALE
	expect OK "$w" debug net faults 0 0 0 300 0 to "$r"
	out=$(rw_load "$(port "$w")" "$(port "$r")" "$prefix" 50 3 "$wl" "$rl" 20)
	settle "$r" "$mode" "$rl"
	S1=$SAMPLED T1=$STALE
	[ "$S1" -gt "$s0" ] || fail "node $r: no $mode/$rl read sampled under the delay ($out)"
	[ "$T1" -gt "$t0" ] || fail "node $r: no stale $mode/$rl read of $((S1 - s0)) sampled under a 300 ms delay ($out)"
	rate=$(awk -v t=$((T1 - t0)) -v s=$((S1 - s0)) 'BEGIN { printf "%.2f", t / s }')
	ok "node $w delays frames to node $r by 300 ms: $((T1 - t0)) of $((S1 - s0)) sampled $mode/$rl reads on node $r stale (rate $rate; $out)"

	expect OK "$w" debug net faults 0 0 0 0 0 to "$r"
	sleep 1 # frames sent under the delay land
	settle "$r" "$mode" "$rl"
	S1=$SAMPLED T1=$STALE
	out=$(rw_load "$(port "$w")" "$(port "$r")" "$prefix" 50 3 "$wl" "$rl" "$gap")
	settle "$r" "$mode" "$rl"
	S2=$SAMPLED T2=$STALE
	[ "$S2" -gt "$S1" ] || fail "node $r: no $mode/$rl read sampled after the delay was removed ($out)"
	[ "$T2" = "$T1" ] ||
		fail "node $r: $((T2 - T1)) of $((S2 - S1)) sampled $mode/$rl reads stale after the delay was removed, gap $gap ms ($out)"
	ok "delay removed: $((S2 - S1)) more $mode/$rl reads sampled on node $r (gap $gap ms), none stale ($out)"
}

# 4. eventual ONE: writer node 1, reader node 2
stale_phase 1 2 feat:k eventual quorum one 20
status 2
v=$($PY - "$work/status.2" <<'EOF' 2>&1
import json, sys
s = json.load(open(sys.argv[1]))
e = [x for x in s["stale"] if (x["mode"], x["level"]) == ("eventual", "one")]
assert e, "no eventual/one entry in stale: %s" % s["stale"]
assert e[0]["stale_total"] > 0, "eventual/one stale_total is %s" % e[0]["stale_total"]
print("stale_total %d of sampled_total %d, rate %.3f" % (e[0]["stale_total"], e[0]["sampled_total"], e[0]["rate"]))
EOF
) || fail "node 2: /status: $(tail -n 1 <<<"$v")"
ok "node 2's /status stale entry for eventual/one: $v"

# 5. strong stale reads on a follower
leader=$(cli 1 cluster info | sed -n 's/^leader_id://p')
[[ "$leader" =~ ^[123]$ ]] || fail "CLUSTER INFO on node 1 names leader '$leader'"
follower=$((leader % 3 + 1))
stale_phase "$leader" "$follower" s:k strong linearizable stale 250
vb=$VBEHIND # from the phase's last scrape
[ "$vb" -gt 0 ] || fail "node $follower: spectra_stale_read_versions_behind_count{strong,stale} is $vb"
ok "node $follower: spectra_stale_read_versions_behind_count for strong/stale is $vb"

# 6. HTTP edge cases
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$(url 1 /nope)")
[ "$code" = 404 ] || fail "GET /nope: $code, want 404"
code=$(curl -s --max-time 5 -D "$work/post.hdr" -o /dev/null -w '%{http_code}' -X POST "$(url 1 /metrics)")
[ "$code" = 405 ] || fail "POST /metrics: $code, want 405"
grep -qi '^Allow: GET, HEAD' "$work/post.hdr" || fail "POST /metrics: no 'Allow: GET, HEAD' header: $(tr -d '\r' <"$work/post.hdr" | tr '\n' '|')"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -I "$(url 1 /metrics)")
[ "$code" = 200 ] || fail "HEAD /metrics: $code, want 200"
ok "GET /nope is 404, POST /metrics is 405 with Allow: GET, HEAD, HEAD /metrics is 200"

# 7. a node whose HTTP port is taken
q=$(free_base 3)
$PY -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(5)
time.sleep(120)
' $((q + 2)) &
listener_pid=$!
for _ in $(seq 1 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$((q + 2))") 2>/dev/null && break
	sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$((q + 2))") 2>/dev/null || fail "the listener on port $((q + 2)) did not start"
mkdir -p "$work/solo"
rc=0
timeout -k 2 10 "$SPECTRAD" --port "$q" --peer-port $((q + 1)) --http-port $((q + 2)) --dir "$work/solo" \
	>"$work/solo.out" 2>&1 || rc=$?
kill -9 "$listener_pid" 2>/dev/null || true
wait "$listener_pid" 2>/dev/null || true
listener_pid=
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then fail "spectrad with HTTP port $((q + 2)) taken was still running after 10 s"; fi
[ "$rc" != 0 ] || fail "spectrad with HTTP port $((q + 2)) taken exited 0: $(tail -n 5 "$work/solo.out")"
# A refusal to start is an orderly exit, not a crash or a sanitizer abort
# (134 under `make check`: a leak on the way out, say).
[ "$rc" -lt 124 ] ||
	fail "spectrad with HTTP port $((q + 2)) taken died with status $rc instead of exiting with an error: $(grep -v '^ *#[0-9]' "$work/solo.out" | tail -n 12)"
grep -i http "$work/solo.out" | grep -q "$((q + 2))" ||
	fail "spectrad's output names neither http nor port $((q + 2)) on one line: $(tail -n 5 "$work/solo.out")"
ok "spectrad with HTTP port $((q + 2)) taken exits $rc: $(grep -i http "$work/solo.out" | grep "$((q + 2))" | tail -n 1 | sed 's/^.*http: //')"

echo "test_metrics: ok"
