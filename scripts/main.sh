#!/usr/bin/env bash
# The main job: install what is needed, build, start a local 5-node spectra
# cluster, and put it to real work: a model registry written and read
# through different nodes, a transaction that swaps a model alias and its
# feature schema together, conditional writes by revision, redis-benchmark
# spread over every node, the leader killed -9 under load, and a check
# that every acknowledged write survived. Then the eventual half: a feature
# keyspace (rf 3) with counters, sets and registers written through every
# node, a replica killed under QUORUM writes and brought back, and the
# replicas' Merkle digests compared until they agree. Then consistency
# made visible: the measured stale-read rate of feature reads at ONE with
# and without a replication delay injected on one link, a staleness
# receipt, bounded-staleness reads, and the nodes' /metrics and /status.
# Prints what it did, then stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
make -j2 >/dev/null

BASE=${BASE_PORT:-7379}
PEER_BASE=${PEER_BASE_PORT:-17379}
DIR=$(mktemp -d /tmp/spectra-main.XXXXXX)
cleanup() {
	bin/spectra cluster down --dir "$DIR" >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

cli() { redis-cli -p "$1" "${@:2}"; }
port_of() { echo $((BASE + $1 - 1)); }
leader_id() {
	for i in 1 2 3 4 5; do
		if cli "$(port_of "$i")" CLUSTER INFO 2>/dev/null | tr -d '\r' | grep -q '^role:leader'; then
			echo "$i"
			return
		fi
	done
	echo 0
}

echo "== starting a 5-node cluster in $DIR"
bin/spectra cluster up --nodes 5 --dir "$DIR" --base-port "$BASE" --peer-base-port "$PEER_BASE" \
	-- --election-timeout-ms 1000 --heartbeat-ms 100 --admin-commands yes
bin/spectra cluster status --dir "$DIR"

echo
echo "== a model registry: declared, written through one node, read through another"
cli "$(port_of 2)" KEYSPACE CREATE model MODE strong
cli "$(port_of 3)" KEYSPACE CREATE schema MODE strong READ linearizable
echo "keyspaces (asked of node 5): $(cli "$(port_of 5)" KEYSPACE LIST | tr '\n' ' ')"
cli "$(port_of 2)" SET model:resnet50:production v7 >/dev/null
cli "$(port_of 2)" SET schema:resnet50 features-v3 >/dev/null
echo "node 4 reads model:resnet50:production = $(cli "$(port_of 4)" GET model:resnet50:production)"
echo "GETREV through node 5: $(cli "$(port_of 5)" GETREV model:resnet50:production | tr '\n' ' ')"

echo
echo "== swap the model alias and its feature schema together (MULTI/EXEC: one Raft entry)"
printf 'MULTI\nSET model:resnet50:production v8\nSET schema:resnet50 features-v4\nEXEC\n' |
	cli "$(port_of 1)" | tr '\n' ' '
echo
echo "revisions: model $(cli "$(port_of 3)" GETREV model:resnet50:production | tail -1)," \
	"schema $(cli "$(port_of 3)" GETREV schema:resnet50 | tail -1) (equal: one entry)"

echo
echo "== conditional writes"
rev=$(cli "$(port_of 1)" GETREV model:resnet50:production | tail -1)
echo "SET ... IFREV $rev (current)  -> $(cli "$(port_of 4)" SET model:resnet50:production v9 IFREV "$rev")"
echo "SET ... IFREV $rev (now stale) -> '$(cli "$(port_of 4)" SET model:resnet50:production v10 IFREV "$rev")' (nil: refused)"
echo "CAS v9 -> v10: $(cli "$(port_of 2)" CAS model:resnet50:production v9 v10), CAS v9 -> v11: $(cli "$(port_of 2)" CAS model:resnet50:production v9 v11)"

echo
echo "== read levels on a follower"
f=$(( $(leader_id) % 5 + 1 ))
echo "node $f: linearizable $(cli "$(port_of "$f")" GET model:resnet50:production)," \
	"lease $(cli "$(port_of "$f")" LEVEL lease GET model:resnet50:production)," \
	"stale $(cli "$(port_of "$f")" LEVEL stale GET model:resnet50:production)"

echo
echo "== redis-benchmark: 100 clients over the 5 nodes, 64-byte values (SET, then linearizable GET)"
for t in set get; do
	tmp=$(mktemp -d)
	for i in 1 2 3 4 5; do
		redis-benchmark -p "$(port_of "$i")" -c 20 -n 20000 -d 64 -r 100000 -t "$t" --csv \
			>"$tmp/$i.csv" 2>/dev/null &
	done
	wait
	awk -F, -v t="$t" 'FNR > 1 { gsub(/"/, ""); rps += $2; if ($6 > p95) p95 = $6; if ($7 > p99) p99 = $7 }
		END { printf "  %-4s %9.0f req/s (sum of 5 nodes)   worst node p95 %.3f ms  p99 %.3f ms\n", toupper(t), rps, p95, p99 }' "$tmp"/*.csv
	rm -rf "$tmp"
done

echo
echo "== kill -9 the leader while writing; every acknowledged write must survive"
acked="$DIR/acked.txt"
: >"$acked"
(
	for n in $(seq 1 400); do
		p=$(port_of $((n % 5 + 1)))
		if [ "$(cli "$p" SET "job:$n" "done-$n" 2>/dev/null)" = OK ]; then
			echo "$n" >>"$acked"
		fi
	done
) &
writer=$!
sleep 1
old=$(leader_id)
echo "killing node $old (the leader)"
bin/spectra cluster stop --dir "$DIR" --id "$old" --kill >/dev/null
wait "$writer"
sleep 0.5
echo "new leader: node $(leader_id); acknowledged $(wc -l <"$acked") of 400 writes"
bin/spectra cluster start --dir "$DIR" --id "$old" >/dev/null
missing=0
while read -r n; do
	p=$(port_of $((n % 5 + 1)))
	[ "$(cli "$p" GET "job:$n")" = "done-$n" ] || missing=$((missing + 1))
done <"$acked"
echo "acknowledged writes missing after the kill and restart: $missing"
[ "$missing" -eq 0 ]

echo
echo "== an eventual keyspace: a feature store and job counters on rf 3 of the 5 nodes"
cli "$(port_of 1)" KEYSPACE CREATE feat MODE eventual RF 3 READ one WRITE quorum >/dev/null
sleep 0.5
for i in $(seq 1 50); do
	echo "COUNTER.INCR feat:jobs:completed"
	echo "ORSET.ADD feat:flags flag-$((i % 7))"
	echo "SET feat:user:$i:embedding_v v$i"
done | cli "$(port_of 2)" >/dev/null
cli "$(port_of 3)" ORSET.REM feat:flags flag-0 >/dev/null
echo "replicas of feat:jobs:completed: nodes $(cli "$(port_of 1)" EVENTUAL REPLICAS feat:jobs:completed | tr '\n' ' ')"
echo "COUNTER.GET through each node at ALL: $(for i in 1 2 3 4 5; do cli "$(port_of "$i")" LEVEL all COUNTER.GET feat:jobs:completed; done | tr '\n' ' ')"
echo "ORSET.MEMBERS feat:flags: $(cli "$(port_of 5)" ORSET.MEMBERS feat:flags | tr '\n' ' ')"
victim=$(cli "$(port_of 1)" EVENTUAL REPLICAS feat:jobs:completed | head -1)
echo "killing node $victim (a replica) and writing 1000 features at QUORUM through the others"
bin/spectra cluster stop --dir "$DIR" --id "$victim" --kill >/dev/null
sleep 1.2
others=$(for i in 1 2 3 4 5; do [ "$i" = "$victim" ] || echo "$i"; done)
for i in $(seq 1 1000); do echo "LEVEL quorum SET feat:item:$i f$i"; done |
	cli "$(port_of "$(echo "$others" | head -1)")" | sort | uniq -c | sed 's/^/  replies: /'
hints=0
for i in $others; do
	hints=$((hints + $(cli "$(port_of "$i")" INFO eventual | tr -d '\r' | sed -n 's/^ev_hints_pending://p')))
done
echo "hints held for node $victim: $hints"
bin/spectra cluster start --dir "$DIR" --id "$victim" >/dev/null
t0=$(date +%s%N)
digests_agree() {
	for i in 1 2 3 4 5; do
		cli "$(port_of "$i")" EVENTUAL DIGEST | tr -d '\r'
	done | awk '{k=$1" "$2; if (k in r && r[k] != $3) bad=1; r[k]=$3} END {exit bad}'
}
until digests_agree; do
	[ $(($(date +%s%N) - t0)) -lt 30000000000 ] || { echo "digests still differ after 30 s"; exit 1; }
	sleep 0.1
done
echo "node $victim is back; every replica's Merkle digests agree after $((($(date +%s%N) - t0) / 1000000)) ms"
echo "node $victim reads its own copy of feat:jobs:completed at ONE: $(cli "$(port_of "$victim")" LEVEL one COUNTER.GET feat:jobs:completed)"
echo "node 1's eventual counters:"
cli "$(port_of 1)" INFO eventual | tr -d '\r' |
	grep -E '^ev_(writes|reads|proxied|hints_queued|hints_delivered|read_repairs|ae_rounds|ae_keys_repaired):' | sed 's/^/  /'

echo
echo "== consistency you can see: the measured stale-read rate, receipts, bounded staleness"
http_of() { echo $((BASE + 2000 + $1 - 1)); }
echo "every node serves /metrics, /status and a dashboard; node 1's: http://127.0.0.1:$(http_of 1)/"
# stale_counts NODE: "sampled stale" of eventual ONE reads, from /status.
stale_counts() {
	curl -s "http://127.0.0.1:$(http_of "$1")/status" | python3 -c '
import json, sys
for s in json.load(sys.stdin)["stale"]:
    if s["mode"] == "eventual" and s["level"] == "one":
        print(s["sampled_total"], s["stale_total"]); break
else:
    print(0, 0)'
}
# phase NAME: 4 s of QUORUM writes through node 1 and ONE reads through
# node 2 on the same 1000 features, then the stale rate node 2 measured.
phase() {
	local before after
	read -r -a before <<<"$(stale_counts 2)"
	bin/spectra bench --hosts "127.0.0.1:$(port_of 1)" --clients 20 --duration 4 --warmup 0 \
		--keys 1000 --op '1:LEVEL quorum SET feat:f:{key} {value}' --quiet >/dev/null &
	bin/spectra bench --hosts "127.0.0.1:$(port_of 2)" --clients 20 --duration 4 --warmup 0 \
		--keys 1000 --op '1:LEVEL one GET feat:f:{key}' --quiet >/dev/null
	wait
	read -r -a after <<<"$(stale_counts 2)"
	local n=$((after[0] - before[0])) s=$((after[1] - before[1]))
	echo "  $1: node 2 sampled $n ONE reads (1 in 100), $s stale ($((n ? s * 1000 / n : 0)) per mille)"
}
phase "no injected delay"
cli "$(port_of 1)" DEBUG NET FAULTS 0 0 0 200 0 TO 2 >/dev/null
phase "200 ms injected on the link node 1 -> node 2"
cli "$(port_of 1)" DEBUG NET FAULTS 0 0 0 0 0 TO 2 >/dev/null
sleep 1
phase "delay removed"
f=$(( $(leader_id) % 5 + 1 ))
echo "a staleness receipt (RESP2: [reply, receipt]) for a bounded read on follower node $f:"
printf 'CLIENT RECEIPTS ON\nMAXSTALE 500 GET model:resnet50:production\n' | cli "$(port_of "$f")" |
	tail -n +2 | paste -sd' ' | sed 's/^/  /'
echo "node 1's /metrics: $(curl -s "http://127.0.0.1:$(http_of 1)/metrics" | grep -c '^spectra_') series, e.g.:"
curl -s "http://127.0.0.1:$(http_of 2)/metrics" |
	grep -E '^spectra_(stale_reads(_sampled)?_total\{mode="eventual",level="one"\}|requests_total\{class="read",mode="eventual",level="one"\})' |
	sed 's/^/  node 2: /'

echo
bin/spectra cluster status --dir "$DIR"
echo
echo "node 1's view (CLUSTER INFO):"
cli "$(port_of 1)" CLUSTER INFO | tr -d '\r' | grep -E '^(role|term|leader_id|commit_index|applied_index|members|snapshots_taken|read_rounds):' | sed 's/^/  /'
