#!/usr/bin/env bash
# test_model: the model registry (MODEL.*) end to end, on a 3-node cluster
# of real spectrad processes.
#
#  1. every command and its replies, through leader and followers alike:
#     REGISTER (dense numbers in commit order), GET (latest, VERSION,
#     ALIAS; nil for what is absent; RESP2 flat array and RESP3 map),
#     VERSIONS (FROM, COUNT), ALIAS (IFNONE, IFVERSION, SCHEMA, the same
#     version again keeps its set time), UNALIAS, ALIASES; TYPE model,
#     WRONGTYPE both ways, SCAN TYPE model, DEL;
#  2. every error: bad options and numbers, a missing version, alias names
#     out of range, the 256-alias limit, the record size limit (the nodes
#     run with max-value-bytes 8192, so a record holds 131072 bytes), and
#     MODEL.* on a causal or an eventual keyspace;
#  3. MULTI/EXEC swaps an alias and a string key in one entry;
#  4. followers answer the same: linearizable and (once caught up) stale
#     reads of every model agree on every node;
#  5. a follower that missed 1500 registrations catches up by installing a
#     snapshot, which carries the model;
#  6. the promotion race (tests/lib/model_race.py): 20 rounds in which two
#     promoters on different nodes race MODEL.ALIAS m production <theirs>
#     IFVERSION <current> while a reader on every node polls MODEL.GET m
#     ALIAS production; the leader is killed -9 in round 8 with the race's
#     entries in flight. Exactly one promoter wins each round, no reader
#     sees the alias go back, and `spectra check` finds the recorded
#     history linearizable (and a copy with one stale read planted in it
#     not).
# Every node is stopped on exit, pass or fail.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both),
# redis-cli and /usr/bin/python3.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"
# shellcheck source=tests/lib/cluster.sh
source "$root/tests/lib/cluster.sh"
cluster_test model

t0=$SECONDS
base=$(free_base 3)
taken="$taken $base $((base + 1)) $((base + 2)) "
pbase=$(free_base 3)
taken="$taken $pbase $((pbase + 1)) $((pbase + 2)) "
"$SPECTRA" cluster up --nodes 3 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	--http-base-port 0 --wait 20 -- --admin-commands yes --election-timeout-ms 500 \
	--heartbeat-ms 50 --max-value-bytes 8192 --snapshot-every 200 --snapshot-interval-ms 0 \
	>"$work/up.out" 2>&1 || { cat "$work/up.out"; fail "cluster up"; }

# nr ID ARGS...: one command, its reply as redis-cli shows it to people
# ((nil), (integer) 1, "quoted", (empty array)), one line per element.
nr() {
	local id=$1
	shift
	timeout 10 redis-cli --no-raw -p "$(port "$id")" "$@" 2>&1 | tr -d '\r' || true
}

# expect_nr WANT ID ARGS...: nr's output must be WANT.
expect_nr() {
	local want=$1 id=$2 got
	shift 2
	got=$(nr "$id" "$@")
	[ "$got" = "$want" ] || fail "node $id: $*: want '$want', got '$got'"
}

info() { cli "$1" CLUSTER INFO | sed -n "s/^$2://p"; }

leader() {
	local i
	for _ in $(seq 1 100); do
		for i in 1 2 3; do
			if [ "$(info "$i" role)" = leader ]; then
				echo "$i"
				return
			fi
		done
		sleep 0.1
	done
	fail "no leader"
}

# caught_up: every node has applied the leader's commit index.
caught_up() {
	local l c i ok
	for _ in $(seq 1 100); do
		l=$(leader)
		c=$(info "$l" commit_index)
		ok=1
		for i in 1 2 3; do [ "$(info "$i" applied_index)" = "$c" ] || ok=0; done
		[ "$ok" = 0 ] || return 0
		sleep 0.1
	done
	fail "the nodes did not catch up"
}

L=$(leader)
F1=$((L % 3 + 1))
F2=$(((L + 1) % 3 + 1))
ok "3 nodes up, leader $L, followers $F1 and $F2"

echo "== keyspaces"
expect OK "$F1" KEYSPACE CREATE models MODE strong
expect OK "$L" KEYSPACE CREATE feat MODE causal
expect OK "$F2" KEYSPACE CREATE ev MODE eventual RF 1
for i in 1 2 3; do
	for _ in $(seq 1 50); do
		[ "$(cli "$i" KEYSPACE LIST | grep -cxE 'models|feat|ev')" = 3 ] && break
		sleep 0.1
	done
done
expect "ERR MODEL.* commands need a strong keyspace; 'feat' is causal" "$F1" MODEL.GET feat:x
expect "ERR MODEL.* commands need a strong keyspace; 'feat' is causal" "$L" \
	MODEL.REGISTER feat:x s3://x
expect "ERR MODEL.* commands need a strong keyspace; 'ev' is eventual" "$F2" \
	MODEL.ALIAS ev:x production 1
expect "ERR MODEL.* commands need a strong keyspace; 'ev' is eventual" "$L" MODEL.ALIASES ev:x
ok "MODEL.* on a causal or an eventual keyspace is refused with its mode named"

echo "== 1. register and read"
K=models:fraud
expect_nr "(integer) 1" "$F1" MODEL.REGISTER $K s3://fraud/1 META '{"auc":0.91}' SCHEMA 3
expect_nr "(integer) 2" "$L" MODEL.REGISTER $K s3://fraud/2 SCHEMA 4
expect_nr "(integer) 3" "$F2" MODEL.REGISTER $K s3://fraud/3
mapfile -t g < <(cli "$F2" MODEL.GET $K)
[ "${#g[@]}" = 10 ] || fail "MODEL.GET $K (RESP2): ${#g[@]} lines: ${g[*]}"
[ "${g[*]:0:9}" = "version 3 uri s3://fraud/3 meta  schema 0 registered_ms" ] ||
	fail "MODEL.GET $K: '${g[*]}'"
ms3=${g[9]}
[[ "$ms3" =~ ^[0-9]{13}$ ]] || fail "registered_ms '$ms3'"
for i in 1 2 3; do
	[ "$(cli "$i" MODEL.GET $K | tr '\n' ' ')" = "$(printf '%s ' "${g[@]}")" ] ||
		fail "MODEL.GET $K on node $i: '$(cli "$i" MODEL.GET $K | tr '\n' ' ')'"
done
mapfile -t g1 < <(cli "$L" MODEL.GET $K VERSION 1)
[ "${g1[*]:0:9}" = 'version 1 uri s3://fraud/1 meta {"auc":0.91} schema 3 registered_ms' ] ||
	fail "MODEL.GET $K VERSION 1: '${g1[*]}'"
mapfile -t g2 < <(cli "$L" MODEL.GET $K VERSION 2)
{ [ "${g1[9]}" -le "${g2[9]}" ] && [ "${g2[9]}" -le "$ms3" ]; } ||
	fail "registered_ms not in commit order: ${g1[9]} ${g2[9]} $ms3"
r=$(timeout 10 redis-cli -3 --no-raw -p "$(port "$F1")" MODEL.GET $K VERSION 2 2>&1 | tr -d '\r')
want=$(printf '1# "version" => (integer) 2\n2# "uri" => "s3://fraud/2"\n3# "meta" => ""\n4# "schema" => (integer) 4\n5# "registered_ms" => (integer) %s' "${g2[9]}")
[ "$r" = "$want" ] || fail "MODEL.GET VERSION 2 in RESP3: '$r'"
expect_nr "(nil)" "$F1" MODEL.GET $K VERSION 4
expect_nr "(nil)" "$F1" MODEL.GET $K ALIAS production
expect_nr "(nil)" "$F2" MODEL.GET models:absent
expect_nr "(nil)" "$F2" MODEL.GET models:absent VERSION 1
ok "REGISTER numbers 1, 2, 3 through three nodes; GET latest (same on every node), VERSION n, nil for absent; RESP3 map"
[ "$(cli "$F1" MODEL.VERSIONS $K | grep -c '^version$')" = 3 ] || fail "MODEL.VERSIONS $K"
[ "$(cli "$F1" MODEL.VERSIONS $K FROM 2 COUNT 1 | tr '\n' ' ')" = "$(printf '%s ' "${g2[@]}")" ] ||
	fail "MODEL.VERSIONS $K FROM 2 COUNT 1: '$(cli "$F1" MODEL.VERSIONS $K FROM 2 COUNT 1)'"
[ "$(cli "$F1" MODEL.VERSIONS $K COUNT 2 FROM 2 | grep -A1 -x version | grep -cxE '2|3')" = 2 ] ||
	fail "MODEL.VERSIONS $K COUNT 2 FROM 2"
expect_nr "(empty array)" "$F2" MODEL.VERSIONS $K FROM 4
expect_nr "(empty array)" "$F2" MODEL.VERSIONS models:absent
ok "VERSIONS: all, FROM/COUNT in either order, empty past the end and for an absent model"

echo "== aliases"
expect_nr "(integer) 1" "$F1" MODEL.ALIAS $K production 1 IFNONE
expect_nr "(integer) 0" "$F2" MODEL.ALIAS $K production 2 IFNONE
expect_nr "(integer) 0" "$L" MODEL.ALIAS $K production 2 IFVERSION 3
expect_nr "(integer) 1" "$F2" MODEL.ALIAS $K production 2 IFVERSION 1 SCHEMA 7
mapfile -t ga < <(cli "$F1" MODEL.GET $K ALIAS production)
[ "${ga[*]}" = "version 2 uri s3://fraud/2 meta  schema 7 registered_ms ${g2[9]} alias production" ] ||
	fail "MODEL.GET $K ALIAS production: '${ga[*]}'"
mapfile -t a1 < <(cli "$L" MODEL.ALIASES $K)
[ "${a1[*]:0:3}" = "production 2 7" ] || fail "MODEL.ALIASES $K: '${a1[*]}'"
expect_nr "(integer) 1" "$F1" MODEL.ALIAS $K production 2
mapfile -t a2 < <(cli "$L" MODEL.ALIASES $K)
[ "${a2[*]}" = "production 2 4 ${a1[3]}" ] ||
	fail "the same version again: want schema 4 and the set time kept, got '${a2[*]}' (was '${a1[*]}')"
expect_nr "(integer) 1" "$F2" MODEL.ALIAS $K canary 3 SCHEMA 5
[ "$(cli "$F2" MODEL.ALIASES $K | sed -n '1p;5p' | tr '\n' ' ')" = "canary production " ] ||
	fail "MODEL.ALIASES not by name: '$(cli "$F2" MODEL.ALIASES $K | tr '\n' ' ')'"
expect_nr "(integer) 0" "$L" MODEL.UNALIAS $K canary IFVERSION 2
expect_nr "(integer) 1" "$F1" MODEL.UNALIAS $K canary IFVERSION 3
expect_nr "(integer) 0" "$F1" MODEL.UNALIAS $K canary
expect_nr "(integer) 0" "$F1" MODEL.UNALIAS models:absent canary
expect_nr "(empty array)" "$F1" MODEL.ALIASES models:absent
expect_nr "(integer) 1" "$F2" MODEL.ALIAS $K canary 3
expect_nr "(integer) 1" "$F2" MODEL.UNALIAS $K canary
ok "ALIAS IFNONE / IFVERSION (true and false), SCHEMA, same version keeps its time; UNALIAS; ALIASES by name"

echo "== types"
expect model "$F1" TYPE $K
expect "WRONGTYPE Operation against a key holding the wrong kind of value" "$F1" GET $K
expect "WRONGTYPE Operation against a key holding the wrong kind of value" "$L" APPEND $K x
expect OK "$F2" SET models:str x
expect "WRONGTYPE Operation against a key holding the wrong kind of value" "$F2" MODEL.GET models:str
expect "WRONGTYPE Operation against a key holding the wrong kind of value" "$F1" \
	MODEL.REGISTER models:str s3://x
cli "$L" SCAN 0 TYPE model COUNT 1000 | grep -qx $K || fail "SCAN TYPE model does not list $K"
! cli "$L" SCAN 0 TYPE model COUNT 1000 | grep -qx models:str || fail "SCAN TYPE model lists a string"
expect_nr "(integer) 1" "$F1" MODEL.REGISTER models:tmp s3://tmp/1
expect_nr "(integer) 1" "$F2" DEL models:tmp
expect_nr "(nil)" "$L" MODEL.GET models:tmp
expect_nr "(integer) 1" "$F1" MODEL.REGISTER models:tmp s3://tmp/again
ok "TYPE model, WRONGTYPE both ways, SCAN TYPE model, DEL removes the whole model"

echo "== 2. errors"
long129=$(printf 'a%.0s' $(seq 1 129))
long4097=$(printf 'u%.0s' $(seq 1 4097))
e() { expect "$1" "$F1" "${@:2}"; }
e "ERR uri must be 1..4096 bytes" MODEL.REGISTER $K ''
e "ERR uri must be 1..4096 bytes" MODEL.REGISTER $K "$long4097"
e "ERR SCHEMA must be an integer >= 1" MODEL.REGISTER $K s3://x SCHEMA 0
e "ERR SCHEMA must be an integer >= 1" MODEL.REGISTER $K s3://x SCHEMA abc
e "ERR syntax error" MODEL.REGISTER $K s3://x META a META b
e "ERR syntax error" MODEL.REGISTER $K s3://x META
e "ERR syntax error" MODEL.REGISTER $K s3://x BOGUS 1
e "ERR wrong number of arguments for 'model.register' command" MODEL.REGISTER $K
e "ERR VERSION must be an integer >= 1" MODEL.GET $K VERSION 0
e "ERR VERSION must be an integer >= 1" MODEL.GET $K VERSION x
e "ERR syntax error" MODEL.GET $K BOGUS 1
e "ERR syntax error" MODEL.GET $K VERSION
e "ERR FROM must be an integer >= 1" MODEL.VERSIONS $K FROM 0
e "ERR COUNT must be 1..100000" MODEL.VERSIONS $K COUNT 0
e "ERR COUNT must be 1..100000" MODEL.VERSIONS $K COUNT 100001
e "ERR syntax error" MODEL.VERSIONS $K FROM 1 FROM 2
e "ERR model 'models:fraud' has no version 9" MODEL.ALIAS $K production 9
e "ERR model 'models:absent' has no version 1" MODEL.ALIAS models:absent production 1
e "ERR version must be an integer >= 1" MODEL.ALIAS $K production 0
e "ERR IFVERSION must be an integer >= 1" MODEL.ALIAS $K production 1 IFVERSION x
e "ERR syntax error" MODEL.ALIAS $K production 1 IFVERSION 1 IFNONE
e "ERR syntax error" MODEL.ALIAS $K production 1 IFNONE IFNONE
e "ERR SCHEMA must be an integer >= 1" MODEL.ALIAS $K production 1 SCHEMA -1
e "ERR alias names are 1..128 bytes" MODEL.ALIAS $K "$long129" 1
e "ERR alias names are 1..128 bytes" MODEL.ALIAS $K '' 1
e "ERR syntax error" MODEL.UNALIAS $K production IFVERSION
e "ERR IFVERSION must be an integer >= 1" MODEL.UNALIAS $K production IFVERSION 0
e "ERR wrong number of arguments for 'model.aliases' command" MODEL.ALIASES $K x
[ "$(cli "$L" MODEL.GET $K ALIAS production | sed -n 2p)" = 2 ] || fail "an error changed the alias"
ok "every bad option, number and name is an error, and changes nothing"

# 256 aliases, then no more; moving one of them still works.
expect_nr "(integer) 1" "$F2" MODEL.REGISTER models:many s3://many/1
for i in $(seq 1 256); do echo "MODEL.ALIAS models:many a$i 1"; done >"$work/cmds"
timeout 30 redis-cli -p "$(port "$F1")" <"$work/cmds" 2>&1 | tr -d '\r' >"$work/replies" || true
[ "$(grep -cx 1 "$work/replies")" = 256 ] || fail "256 aliases: $(sort "$work/replies" | uniq -c | head)"
e "ERR model 'models:many' has the most aliases a model may hold (256)" MODEL.ALIAS models:many a257 1
expect_nr "(integer) 2" "$F2" MODEL.REGISTER models:many s3://many/2
expect_nr "(integer) 1" "$L" MODEL.ALIAS models:many a7 2 IFVERSION 1
[ "$(cli "$L" MODEL.ALIASES models:many | grep -c '^a')" = 256 ] || fail "MODEL.ALIASES models:many"
ok "256 aliases; the 257th is refused; an existing one still moves"

# max-value-bytes 8192: a meta of 8193 bytes is refused, and a record stops
# at 16 x 8192 bytes: 16 versions of ~8 KB fit, the 17th does not.
meta=$(head -c 8000 /dev/zero | tr '\0' m)
e "ERR META is larger than max-value-bytes" MODEL.REGISTER models:big s3://big \
	META "$(head -c 8193 /dev/zero | tr '\0' m)"
for i in $(seq 1 17); do echo "MODEL.REGISTER models:big s3://big/$i META $meta"; done >"$work/cmds"
timeout 30 redis-cli -p "$(port "$F2")" <"$work/cmds" 2>&1 | tr -d '\r' >"$work/replies" || true
[ "$(head -n 16 "$work/replies" | tr '\n' ' ')" = "$(seq 1 16 | tr '\n' ' ')" ] ||
	fail "16 big versions: $(head -c 300 "$work/replies")"
[ "$(sed -n 17p "$work/replies")" = "ERR model 'models:big' would pass its size limit of 131072 bytes (16 x max-value-bytes, at most 64mb)" ] ||
	fail "the 17th big version: '$(sed -n 17p "$work/replies")'"
[ "$(cli "$L" MODEL.GET models:big | sed -n 2p)" = 16 ] || fail "models:big after the refusal"
ok "META over max-value-bytes refused; a record stops at 16 x max-value-bytes (16 versions, not 17)"

echo "== 3. MULTI/EXEC"
printf 'MULTI\nMODEL.ALIAS %s production 3 IFVERSION 2\nSET schemas:fraud 12\nMODEL.GET %s ALIAS production\nEXEC\n' \
	$K $K | timeout 10 redis-cli -p "$(port "$F2")" 2>&1 | tr -d '\r' >"$work/out" || true
[ "$(sed -n '1,4p' "$work/out" | tr '\n' ' ')" = "OK QUEUED QUEUED QUEUED " ] ||
	fail "MULTI: $(cat "$work/out")"
[ "$(sed -n '5,8p' "$work/out" | tr '\n' ' ')" = "1 OK version 3 " ] || fail "EXEC: $(cat "$work/out")"
[ "$(cli "$L" GET schemas:fraud)" = 12 ] || fail "GET schemas:fraud after EXEC"
[ "$(cli "$F1" MODEL.GET $K ALIAS production | sed -n 2p)" = 3 ] || fail "alias after EXEC"
ok "MULTI; MODEL.ALIAS ... IFVERSION 2; SET schemas:fraud 12; EXEC: both, in one entry"

echo "== 4. followers answer the same"
caught_up
for cmd in "MODEL.VERSIONS $K" "MODEL.ALIASES $K" "MODEL.GET $K ALIAS production" \
	"MODEL.ALIASES models:many" "MODEL.VERSIONS models:big COUNT 2"; do
	# shellcheck disable=SC2086 # the command's words
	want=$(cli "$L" $cmd | md5sum)
	for i in 1 2 3; do
		# shellcheck disable=SC2086
		[ "$(cli "$i" $cmd | md5sum)" = "$want" ] || fail "node $i: $cmd differs from the leader's"
		# shellcheck disable=SC2086
		[ "$(cli "$i" LEVEL stale $cmd | md5sum)" = "$want" ] ||
			fail "node $i: LEVEL stale $cmd differs from the leader's"
	done
done
ok "VERSIONS, ALIASES and GET ALIAS: the same on every node, linearizable and stale"

echo "== 5. snapshot catch-up"
"$SPECTRA" cluster stop --id "$F1" --dir "$dir" >"$work/out" 2>&1 || fail "stop node $F1"
for i in $(seq 1 1500); do echo "MODEL.REGISTER models:snap s3://snap/$i"; done >"$work/cmds"
timeout 60 redis-cli -p "$(port "$L")" <"$work/cmds" 2>&1 | tr -d '\r' >"$work/replies" || true
[ "$(tail -n 1 "$work/replies")" = 1500 ] || fail "1500 registrations: $(tail -n 3 "$work/replies")"
"$SPECTRA" cluster start --id "$F1" --dir "$dir" >"$work/out" 2>&1 || fail "start node $F1"
caught_up
[ "$(info "$F1" snapshots_installed)" -ge 1 ] || fail "node $F1 installed no snapshot"
[ "$(cli "$F1" LEVEL stale MODEL.GET models:snap | sed -n '2p;4p' | tr '\n' ' ')" = "1500 s3://snap/1500 " ] ||
	fail "node $F1 after the snapshot: '$(cli "$F1" LEVEL stale MODEL.GET models:snap | tr '\n' ' ')'"
[ "$(cli "$F1" LEVEL stale MODEL.GET $K ALIAS production | sed -n 2p)" = 3 ] ||
	fail "node $F1 after the snapshot: alias production"
ok "node $F1 missed 1500 registrations and caught up from a snapshot with the models in it"

echo "== 6. the promotion race"
ports="$(port 1),$(port 2),$(port 3)"
/usr/bin/python3 "$root/tests/lib/model_race.py" --ports "$ports" --dir "$dir" --spectra "$SPECTRA" \
	--rounds 20 --kill-round 8 --out "$work/race.jsonl" >"$work/race.out" 2>&1 ||
	{ cat "$work/race.out" >&2; fail "model_race.py"; }
cat "$work/race.out"
rc=0
"$SPECTRA" check --timeout 20 "$work/race.jsonl" >"$work/check.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$work/check.out" >&2; fail "spectra check exited $rc"; }
grep -q "verdict:  linearizable" "$work/check.out" || fail "no verdict: $(cat "$work/check.out")"
grep -E '^(ops|keys):' "$work/check.out" | sed 's/^/   /'
ok "the race's history ($(wc -l <"$work/race.jsonl") ops) is linearizable"
# The check is not vacuous: one read of version 1 after the race is over.
{
	cat "$work/race.jsonl"
	last=$(/usr/bin/python3 -c 'import json, sys
print(max(max(o["invoke"], o.get("complete") or 0) for o in map(json.loads, open(sys.argv[1]))))' \
		"$work/race.jsonl")
	printf '{"process":999,"op":"read","key":"m/production","value":"1","invoke":%d,"complete":%d,"result":"ok"}\n' \
		$((last + 1000000)) $((last + 1000100))
} >"$work/planted.jsonl"
rc=0
"$SPECTRA" check --timeout 20 "$work/planted.jsonl" >"$work/check.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$work/check.out" >&2; fail "a planted stale read: spectra check exited $rc, wanted 1"; }
ok "with a stale read planted after the race, spectra check finds it (exit 1)"
caught_up
want=$(cli "$L" MODEL.GET m ALIAS production | md5sum)
for i in 1 2 3; do
	[ "$(cli "$i" LEVEL stale MODEL.GET m ALIAS production | md5sum)" = "$want" ] ||
		fail "node $i: the alias after the race differs (stale read)"
done
ok "after the race every node, the restarted one included, holds the same alias"

echo "PASS test_model ($((SECONDS - t0))s)"
