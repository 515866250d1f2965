#!/usr/bin/env bash
# test_eventual_catchup: a replica down for a minute under writes catches
# up through hinted handoff and anti-entropy.
#
# Five nodes, rf 3. Node 3 is stopped (kill -9); for CATCHUP_SECONDS
# (default 60) the other four take QUORUM writes through every survivor:
# a batch of unique keys and a counter increment each second. Node 3 is
# started again, and the test measures how long until every node's Merkle
# digests agree, then requires, from node 3's own store (LEVEL one at a
# replica answers from the local copy first), every acknowledged key it
# replicates with its value, and the counter at its full count at ALL.
# The hints delivered and keys repaired by anti-entropy are printed.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both), and
# redis-cli.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD
seconds=${CATCHUP_SECONDS:-60}
batch=100

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-catchup.XXXXXX")
dir=$work/c

cleanup() {
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
# shellcheck source=tests/lib/eventual.sh
source "$root/tests/lib/eventual.sh"

base=$(free_base 5)
pbase=$(free_base 5)
"$SPECTRA" cluster up --nodes 5 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	-- --election-timeout-ms 500 --heartbeat-ms 50 >"$work/up.out" 2>&1 ||
	{ cat "$work/up.out"; fail "cluster up"; }
for _ in $(seq 1 50); do
	[ "$(cli 1 keyspace create ev mode eventual rf 3)" = OK ] && break
	sleep 0.2
done
for i in 1 2 4 5; do
	for _ in $(seq 1 50); do
		[ "$(cli "$i" keyspace describe ev | sed -n 4p)" = eventual ] && break
		sleep 0.1
	done
done

"$SPECTRA" cluster stop --dir "$dir" --id 3 --kill >/dev/null
t_end=$((SECONDS + seconds))
round=0
incs=0
survivors=(1 2 4 5)
while [ $SECONDS -lt $t_end ]; do
	id=${survivors[$((round % 4))]}
	{
		for j in $(seq 1 $batch); do
			echo "LEVEL quorum SET ev:r$round-$j v$round-$j"
		done
		echo "LEVEL quorum COUNTER.INCR ev:count"
	} | redis-cli -p "$(port "$id")" | tr -d '\r' >"$work/replies.$round"
	# Keys acknowledged this round: the lines that say OK, by position.
	awk -v r="$round" 'NR <= '"$batch"' && $0 == "OK" {print "ev:r" r "-" NR, "v" r "-" NR}' \
		"$work/replies.$round" >>"$work/acked"
	tail -n 1 "$work/replies.$round" | grep -qE '^[0-9]+$' && incs=$((incs + 1))
	round=$((round + 1))
	sleep 0.5
done
acked=$(wc -l <"$work/acked")
[ "$acked" -gt 0 ] || fail "no write was acknowledged with node 3 down"
pending=0
for i in 1 2 4 5; do pending=$((pending + $(info_field "$i" ev_hints_pending))); done
echo "node 3 down ${seconds} s: $acked keys and $incs increments acknowledged, $pending hints held"

"$SPECTRA" cluster start --dir "$dir" --id 3 >/dev/null
ms=$(wait_converged 30 1 2 3 4 5) || fail "digests still differ 30 s after node 3 returned"

# Node 3's own copies of the keys it replicates.
cut -d' ' -f1 "$work/acked" | sed 's/^/EVENTUAL REPLICAS /' | redis-cli -p "$(port 1)" |
	tr -d '\r' | paste -d' ' - - - >"$work/replicas"
paste -d' ' "$work/acked" "$work/replicas" | awk '$3 == 3 || $4 == 3 || $5 == 3 {print $1, $2}' \
	>"$work/on3"
mine=$(wc -l <"$work/on3")
cut -d' ' -f1 "$work/on3" | sed 's/^/LEVEL one GET /' | redis-cli -p "$(port 3)" | tr -d '\r' \
	>"$work/read3"
missing=$(paste -d' ' "$work/on3" "$work/read3" | awk '$2 != $3' | wc -l)
[ "$missing" = 0 ] || fail "node 3 lacks $missing of its $mine acknowledged keys: $(paste -d' ' "$work/on3" "$work/read3" | awk '$2 != $3' | head -3 | tr '\n' ';')"
count=$(cli 3 level all counter.get ev:count)
[ "$count" -ge "$incs" ] || fail "counter $count < $incs acknowledged increments"
delivered=0 repaired=0
for i in 1 2 4 5; do
	delivered=$((delivered + $(info_field "$i" ev_hints_delivered)))
	repaired=$((repaired + $(info_field "$i" ev_ae_keys_repaired)))
done
repaired=$((repaired + $(info_field 3 ev_ae_keys_repaired)))
echo "ok - node 3 caught up in $ms ms: all $mine of its acknowledged keys present, counter $count >= $incs; $delivered hints delivered, $repaired keys repaired by anti-entropy"
