#!/usr/bin/env bash
# test_recipes: the design's CRDT recipes for an ML platform, as the
# README writes them, on a 5-node cluster with an eventual keyspace (RF 3).
#
#  1. G-Set of model versions: jobs on every node register versions at
#     once, and two more are registered on opposite sides of a partition
#     (node 1 cut off from the rest); after the heal every node reads the
#     whole set at level ALL, and a version never leaves it.
#  2. PN-Counter of training-job completions: 10 jobs, each on its own
#     node in turn, count 30 completions at QUORUM and retract 5 at
#     QUORUM, all at the same time; the counter reads exactly
#     10 x (30 - 5) on every node at ALL.
#  3. OR-Set of feature flags: a flag removed on one side of a partition
#     while re-added on the other is present after the heal (add wins); a
#     removal that saw every add removes it for good; flags nobody touched
#     stay.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both) and
# redis-cli.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"
# shellcheck source=tests/lib/cluster.sh
source "$root/tests/lib/cluster.sh"
cluster_test recipes

base=$(free_base 5)
taken="$taken $base $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)) "
pbase=$(free_base 5)
"$SPECTRA" cluster up --nodes 5 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	--http-base-port 0 -- --admin-commands yes >"$work/up.out" 2>&1 ||
	{ cat "$work/up.out"; fail "cluster up"; }
expect OK 1 keyspace create ml mode eventual rf 3
for i in 1 2 3 4 5; do
	for _ in $(seq 1 50); do
		[ "$(cli "$i" level quorum gset.add ml:probe "n$i")" = 1 ] && break
		sleep 0.1
	done
done

# on_node1 NAME: NAME, or NAME:<n>, whichever first has node 1 among its
# replicas (node 1 is the one cut off below, and alone it can write only
# the keys it holds).
on_node1() {
	local k=$1 n=0
	until cli 1 eventual replicas "$k" | grep -qx 1; do
		n=$((n + 1))
		k=$1:$n
		[ "$n" -lt 200 ] || fail "no key like $1 on node 1"
	done
	echo "$k"
}

# sorted ID ARGS...: a command's multi-line reply, sorted, on one line.
sorted() { cli "$@" | sort | tr '\n' ' '; }

# everywhere WANT READ ARGS...: on every node, `READ ID ARGS...` (cli or
# sorted) gives WANT within 10 s.
everywhere() {
	local want=$1 read=$2 i got
	shift 2
	for i in 1 2 3 4 5; do
		for _ in $(seq 1 100); do
			got=$("$read" "$i" "$@")
			[ "$got" = "$want" ] && break
			sleep 0.1
		done
		[ "$got" = "$want" ] || fail "node $i: $*: '$got', want '$want'"
	done
}

partition_node1() {
	expect OK 1 debug net partition 2 3 4 5
	for i in 2 3 4 5; do expect OK "$i" debug net partition 1; done
}
heal() { for i in 1 2 3 4 5; do expect OK "$i" debug net heal; done; }

# ---- 1. G-Set of model versions -----------------------------------------------

models=$(on_node1 ml:models:resnet50)
flags=$(on_node1 ml:flags)

for i in 1 2 3 4 5; do
	cli "$i" level quorum gset.add "$models" "v$i" >"$work/gset-$i" &
done
wait
for i in 1 2 3 4 5; do [ "$(cat "$work/gset-$i")" = 1 ] || fail "GSET.ADD v$i on node $i: $(cat "$work/gset-$i")"; done
partition_node1
# Node 1 alone reaches at most one replica of the key: it writes at ONE.
expect 1 1 level one gset.add "$models" v6
expect 1 3 level quorum gset.add "$models" v7
heal
everywhere "v1 v2 v3 v4 v5 v6 v7 " sorted level all gset.members "$models"
expect 1 2 level all gset.contains "$models" v6
ok "G-Set of model versions: 7 versions from 5 nodes and both sides of a partition, on every node"

# ---- 2. PN-Counter of training-job completions ------------------------------------

job() { # N: a job that reports 30 completions and retracts 5, node by node
	local n=$1 k node
	for k in $(seq 1 30); do
		node=$(((n + k) % 5 + 1))
		[ "$(cli "$node" level quorum counter.incr ml:jobs:completed)" -ge 1 ] ||
			echo "incr $n/$k failed" >>"$work/counter.err"
	done
	for k in $(seq 1 5); do
		node=$(((n + k) % 5 + 1))
		cli "$node" level quorum counter.decr ml:jobs:completed >/dev/null ||
			echo "decr $n/$k failed" >>"$work/counter.err"
	done
}
for n in $(seq 1 10); do job "$n" & done
wait
[ ! -s "$work/counter.err" ] || fail "counter ops failed: $(head -3 "$work/counter.err")"
everywhere 250 cli level all counter.get ml:jobs:completed
ok "PN-Counter of job completions: 10 jobs x (30 - 5) = 250 on every node"

# ---- 3. OR-Set of feature flags ---------------------------------------------------

expect 3 1 level quorum orset.add "$flags" new_ranker dark_mode fp16_serving
partition_node1
# One side turns new_ranker off while the other turns it on again.
expect 1 1 level one orset.rem "$flags" new_ranker
expect 0 2 level quorum orset.add "$flags" new_ranker # present here: not new, but a fresh dot
heal
everywhere "dark_mode fp16_serving new_ranker " sorted level all orset.members "$flags"
# A removal that has seen every add wins.
expect 1 4 level all orset.rem "$flags" new_ranker
for i in 1 2 3 4 5; do
	expect 0 "$i" level all orset.contains "$flags" new_ranker
done
got=$(sorted 5 level all orset.members "$flags")
[ "$got" = "dark_mode fp16_serving " ] || fail "flags after the removal: '$got'"
ok "OR-Set of feature flags: add wins over a concurrent remove; a remove that saw the adds sticks"
echo "all recipe tests passed"
