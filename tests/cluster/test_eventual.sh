#!/usr/bin/env bash
# test_eventual: eventual keyspaces end to end, on two 5-node clusters of
# real spectrad processes started by `spectra cluster up`.
#
# Cluster A (anti-entropy off, so hints are the only background repair):
#  1. KEYSPACE CREATE ... MODE eventual and its refusals;
#  2. every command family through every node: registers, LWW with
#     timestamps, PN- and G-counters, G-Set, 2P-Set, OR-Set (add wins),
#     MV-Register, WRONGTYPE, level and option refusals;
#  3. levels under failure: with two of a key's three replicas stopped,
#     QUORUM and ALL writes and QUORUM reads are refused with TRYAGAIN
#     (nothing done), ONE succeeds;
#  4. hinted handoff: the stopped replicas get every write they missed
#     once they return (hints queued, then delivered, none pending), and
#     every node's Merkle digests agree.
# Cluster B (hints dropped at once):
#  5. blocking read repair, with anti-entropy off: a replica that missed a
#     write is repaired by a read at ALL before the answer;
#  6. anti-entropy alone (every node restarted with it on, every 1.5 s)
#     brings a replica that missed 300 writes back into agreement (digests
#     identical on every node) within 10 s.
# Every node is stopped on exit, pass or fail.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both), and
# redis-cli.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-eventual.XXXXXX")
dir=$work/a

cleanup() {
	cluster_kill "$work"/a
	cluster_kill "$work"/b
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

# start_cluster DIR FLAGS...: five nodes, admin commands on.
start_cluster() {
	local d=$1
	shift
	base=$(free_base 5)
	pbase=$(free_base 5)
	"$SPECTRA" cluster up --nodes 5 --dir "$d" --base-port "$base" --peer-base-port "$pbase" \
		-- --admin-commands yes --election-timeout-ms 500 --heartbeat-ms 50 "$@" \
		>"$work/up.out" 2>&1 || { cat "$work/up.out"; fail "cluster up"; }
	local i
	for i in $(seq 1 50); do
		[ "$(cli 1 keyspace create ev mode eventual rf 3)" = OK ] && break
		sleep 0.2
	done
	for i in 1 2 3 4 5; do
		for _ in $(seq 1 50); do
			[ "$(cli "$i" keyspace describe ev | sed -n 4p)" = eventual ] && break
			sleep 0.1
		done
	done
}

# key_on A B C [KEYSPACE]: prints a key KEYSPACE:kN (default ev) whose
# replicas are exactly nodes A B C in that order (A is the first).
key_on() {
	local i ks=${4:-ev}
	for i in $(seq 1 5000); do
		if [ "$(cli 1 eventual replicas "$ks:k$i" | tr '\n' ' ')" = "$1 $2 $3 " ]; then
			echo "$ks:k$i"
			return 0
		fi
	done
	return 1
}

# ---- cluster A ----
start_cluster "$dir" --anti-entropy-ms 0

# 1. keyspaces
[ "$(cli 2 keyspace describe ev | tr '\n' ' ')" = \
	"name ev mode eventual rf 3 read-level quorum write-level quorum sloppy-quorum no " ] ||
	fail "describe: $(cli 2 keyspace describe ev | tr '\n' ' ')"
expect_prefix "ERR RF must be 1..7" 1 keyspace create bad mode eventual rf 9
expect_prefix "ERR not an eventual level 'linearizable'" 1 keyspace create bad mode eventual read linearizable
expect_prefix "ERR unknown option 'sloppy' for a strong" 1 keyspace create bad mode strong sloppy yes
expect OK 1 keyspace create ev1 mode eventual rf 1 write one sloppy yes
expect OK 1 keyspace create evs mode eventual rf 3 sloppy yes
ok "eventual keyspaces are created and described; bad options are refused"

# 2. command families, each written through one node and read through others
expect OK 1 set ev:a hello
for i in 2 3 4 5; do expect hello "$i" get ev:a; done
ts=$(cli 2 lww.set ev:l v1)
[[ "$ts" =~ ^[0-9]+$ ]] || fail "LWW.SET returned '$ts'"
got=$(cli 4 lww.get ev:l | tr '\n' ' ')
[ "$got" = "v1 $ts 2 " ] || fail "LWW.GET: '$got', want 'v1 $ts 2 '"
for i in $(seq 1 50); do cli $((i % 5 + 1)) counter.incr ev:c >/dev/null; done
cli 3 counter.decr ev:c 8 >/dev/null
for i in 1 2 3 4 5; do expect 42 "$i" level all counter.get ev:c; done
expect 7 2 gcounter.incr ev:g 7
expect_prefix "ERR a G-Counter only grows" 2 gcounter.incr ev:g -1
expect 2 1 gset.add ev:gs a b
expect 1 3 gset.add ev:gs b c
[ "$(cli 5 gset.members ev:gs | tr '\n' ' ')" = "a b c " ] || fail "GSET.MEMBERS"
expect 1 4 gset.contains ev:gs c
expect 3 2 gset.card ev:gs
expect 2 1 tpset.add ev:tp x y
expect 1 2 tpset.rem ev:tp x
expect 0 3 tpset.add ev:tp x
[ "$(cli 4 tpset.members ev:tp | tr '\n' ' ')" = "y " ] || fail "TPSET: a removed member came back"
expect 2 1 orset.add ev:or x y
expect 1 2 orset.rem ev:or x
expect 1 3 orset.add ev:or x
[ "$(cli 5 orset.members ev:or | tr '\n' ' ')" = "x y " ] || fail "ORSET: re-add after remove"
expect OK 1 mvreg.set ev:mv one
expect OK 2 mvreg.set ev:mv two
[ "$(cli 3 mvreg.get ev:mv | tr '\n' ' ')" = "two " ] || fail "MVREG: a sequential set left siblings"
expect 1 4 del ev:a
expect "" 2 get ev:a
expect_prefix "WRONGTYPE" 3 get ev:c
expect_prefix "WRONGTYPE" 3 gset.add ev:c x
expect_prefix "ERR level linearizable is for strong keyspaces" 1 level linearizable get ev:l
expect_prefix "ERR level quorum is for eventual keyspaces" 1 level quorum get plain
expect_prefix "ERR SET options" 1 set ev:x 1 ex 10
expect_prefix "ERR DEL takes one key" 1 del ev:x ev:y
expect_prefix "ERR 'incr' is not available on eventual keyspace" 1 incr ev:x
expect_prefix "ERR 'gset.add' needs a key in an eventual keyspace" 1 gset.add plain x
expect_prefix "ERR the keys of one command" 1 mget ev:a plain
expect OK 1 consistency read one
[ "$(cli 1 consistency eventual | tr '\n' ' ')" = "default default " ] ||
	fail "CONSISTENCY EVENTUAL on a fresh connection"
[ "$(printf 'CONSISTENCY WRITE all\r\nCONSISTENCY EVENTUAL\r\n' | redis-cli -p "$(port 1)" | tr -d '\r' | tr '\n' ' ')" = \
	"OK default all " ] || fail "CONSISTENCY WRITE"
printf 'MULTI\r\nSET ev:a 1\r\n' | redis-cli -p "$(port 1)" |
	grep -q "^ERR MULTI/EXEC is for strong keyspaces; 'ev' is eventual" || fail "MULTI with an eventual key"
reps=$(cli 1 eventual replicas ev:a | sort -u | wc -l)
[ "$reps" = 3 ] || fail "EVENTUAL REPLICAS gave $reps distinct nodes"
ok "registers, LWW, counters, G-Set, 2P-Set, OR-Set, MV-Register and refusals on 5 nodes"

# 3. levels with two of a key's three replicas down
k=$(key_on 1 2 3) || fail "no key on nodes 1 2 3"
ks=$(key_on 1 2 3 evs) || fail "no key of evs on nodes 1 2 3"
expect OK 1 level all set "$k" before
"$SPECTRA" cluster stop --dir "$dir" --id 2 >/dev/null
"$SPECTRA" cluster stop --dir "$dir" --id 3 >/dev/null
sleep 1.5 # past suspect time: nodes 2 and 3 are known down
expect_prefix "TRYAGAIN 1 of 3 replicas reachable, level all needs 3" 1 level all set "$k" v
expect_prefix "TRYAGAIN 1 of 3 replicas reachable, level quorum needs 2" 1 level quorum set "$k" v
expect_prefix "TRYAGAIN" 4 level quorum get "$k"
expect OK 1 level one set "$k" after
expect after 1 level one get "$k"
ok "with 2 of 3 replicas down: QUORUM and ALL refused (TRYAGAIN), ONE served"
# A sloppy quorum counts the fallback nodes (4 and 5) that take the hints.
expect OK 1 level quorum set "$ks" sloppy
ok "with 2 of 3 replicas down a sloppy keyspace takes a QUORUM write on fallback nodes"

# 4. hinted handoff: more writes while nodes 2 and 3 are down, then back
for i in $(seq 1 200); do echo "LEVEL one SET ev:h$i v$i"; done | redis-cli -p "$(port 1)" >/dev/null
queued=$(info_field 1 ev_hints_queued)
[ "$queued" -gt 0 ] || fail "no hints queued at node 1"
"$SPECTRA" cluster start --dir "$dir" --id 2 >/dev/null
"$SPECTRA" cluster start --dir "$dir" --id 3 >/dev/null
ms=$(wait_converged 15 1 2 3 4 5) || fail "digests still differ 15 s after the replicas returned"
for i in 1 2 3 4 5; do
	[ "$(info_field "$i" ev_hints_pending)" = 0 ] || fail "node $i still holds hints"
done
delivered=$(info_field 1 ev_hints_delivered)
[ "$delivered" -ge "$queued" ] || fail "node 1 delivered $delivered of $queued hints"
expect after 2 level one get "$k"
expect after 3 level one get "$k"
expect sloppy 2 level one get "$ks"
expect sloppy 3 level one get "$ks"
ok "hinted handoff: $queued hints queued at node 1, $delivered delivered; digests agree after $ms ms"
"$SPECTRA" cluster down --dir "$dir" --timeout 10 >/dev/null

# ---- cluster B ----
dir=$work/b
start_cluster "$dir" --hint-max-age-ms 1 --anti-entropy-ms 0

# 5. blocking read repair
k=$(key_on 1 2 3) || fail "no key on nodes 1 2 3"
expect OK 1 level all set "$k" old
"$SPECTRA" cluster stop --dir "$dir" --id 3 >/dev/null
sleep 1.5
expect OK 1 level quorum set "$k" new
"$SPECTRA" cluster start --dir "$dir" --id 3 >/dev/null
for _ in $(seq 1 50); do
	[ "$(info_field 1 ev_peers_alive)" = 4 ] && break
	sleep 0.05
done
before=$(info_field 1 ev_read_repairs_blocking)
expect new 1 level all get "$k"
after=$(info_field 1 ev_read_repairs_blocking)
[ "$after" -gt "$before" ] || fail "the read at ALL repaired nothing (blocking repairs $before -> $after)"
expect new 3 level one get "$k"
ok "a read at ALL repairs a stale replica before answering (blocking repairs $before -> $after)"

# Anti-entropy on: the flags kept for 'cluster start' (one per line), and
# every node restarted with them.
awk 'prev == "--anti-entropy-ms" {$0 = "1500"} {print; prev = $0}' "$dir/spectrad.args" \
	>"$work/args" && mv "$work/args" "$dir/spectrad.args"
for i in 1 2 3 4 5; do
	"$SPECTRA" cluster stop --dir "$dir" --id "$i" >/dev/null
	"$SPECTRA" cluster start --dir "$dir" --id "$i" >/dev/null
done

# 6. anti-entropy alone (every hint is dropped: hint-max-age-ms 1)
"$SPECTRA" cluster stop --dir "$dir" --id 4 >/dev/null
sleep 1.5
for i in $(seq 1 300); do echo "LEVEL quorum SET ev:ae$i v$i"; done | redis-cli -p "$(port 1)" >/dev/null
"$SPECTRA" cluster start --dir "$dir" --id 4 >/dev/null
ms=$(wait_converged 10 1 2 3 4 5) || fail "anti-entropy did not converge within 10 s"
dropped=0 repaired=0
for i in 1 2 3 4 5; do
	dropped=$((dropped + $(info_field "$i" ev_hints_dropped)))
	repaired=$((repaired + $(info_field "$i" ev_ae_keys_repaired)))
done
[ "$repaired" -gt 0 ] || { for i in 1 2 3 4 5; do cli "$i" info eventual | grep -E "ae_|hints|keys|alive"; done; fail "no key repaired by anti-entropy"; }
n=$(for i in $(seq 1 300); do echo "LEVEL one GET ev:ae$i"; done | redis-cli -p "$(port 4)" | grep -c '^v')
[ "$n" = 300 ] || fail "node 4 reads $n of 300 keys at ONE after convergence"
ok "anti-entropy: node 4 caught up on 300 writes in $ms ms ($repaired keys repaired, $dropped hints dropped)"
