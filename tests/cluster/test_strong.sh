#!/usr/bin/env bash
# test_strong: the strong (Raft) engine end to end, on one 5-node cluster of
# real spectrad processes started by `spectra cluster up`.
#
#  1. any node serves: a SET through each node is seen by a linearizable GET
#     through every other node, and (eventually) by LEVEL stale GET;
#  2. a write acknowledged by the cluster survives killing any two of five
#     nodes: 500 keys, kill -9 the leader and a follower, 200 more through a
#     survivor, restart both, kill -9 two other nodes (the new leader among
#     them), restart them; every acknowledged key is read back through
#     every node, linearizable and then stale once all have caught up;
#  3. a follower stopped while 1500 writes compact the log past it catches
#     up by installing a snapshot;
#  4. revisions and conditional writes: GETREV, SET IFREV, CAS, MULTI/EXEC
#     as one entry (one revision);
#  5. keyspaces: create, list on every node, refusals, bad levels;
#  6. CLUSTER TRANSFER hands leadership to the named follower;
#  7. without a quorum a write fails with TRYAGAIN or UNKNOWN within the
#     request timeout, and the cluster serves again once nodes return;
#  8. DEBUG NET is refused by a node started without --admin-commands.
# Every node is stopped on exit, pass or fail.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both), and
# redis-cli.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

N=5
# --request-timeout-ms is left at its default: 2000 ms.
REQ_TIMEOUT=2

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-strong.XXXXXX")
dir=$work/cluster
solo=$work/solo

cleanup() {
	local p
	if [ -f "$dir/cluster.conf" ]; then
		"$SPECTRA" cluster down --dir "$dir" --timeout 5 >/dev/null 2>&1 || true
	fi
	if [ -f "$solo/node.conf" ]; then
		"$SPECTRA" node stop --dir "$solo" --timeout 5 >/dev/null 2>&1 || true
	fi
	for p in "$dir"/node-*/spectrad.pid "$solo"/spectrad.pid; do
		if [ -f "$p" ]; then kill -9 "$(cat "$p")" 2>/dev/null || true; fi
	done
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	local f
	echo "FAIL: $*" >&2
	for f in "$work"/out "$work"/err; do
		[ -s "$f" ] && { echo "--- $(basename "$f") (last 20 lines):" >&2; tail -n 20 "$f" >&2; }
	done
	for f in "$dir"/node-*/spectrad.log "$solo"/spectrad.log; do
		[ -f "$f" ] && { echo "--- $f (last 15 lines):" >&2; tail -n 15 "$f" >&2; }
	done
	exit 1
}

ok() { echo "ok - $*"; }

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"

port() { echo $(($1 + base - 1)); }

# cli ID ARGS...: one command to node ID; prints the reply (raw), or the
# connection error. Never fails the script by itself.
cli() {
	local id=$1
	shift
	timeout 10 redis-cli -p "$(port "$id")" "$@" 2>&1 | tr -d '\r' || true
}

# info ID FIELD: one CLUSTER INFO field of node ID (empty if it is down).
info() {
	cli "$1" CLUSTER INFO | sed -n "s/^$2://p"
}

running() {
	local p
	p=$(cat "$dir/node-$1/spectrad.pid" 2>/dev/null) || return 1
	[ -n "$p" ] && alive "$p"
}

up_ids() {
	local i
	for i in $(seq 1 $N); do if running "$i"; then echo "$i"; fi; done
}

# wait_leader [SECONDS]: prints the id of the leader once a running node
# says it is the leader and another running node agrees.
wait_leader() {
	local secs=${1:-10} end i j l
	end=$((SECONDS + secs))
	while [ "$SECONDS" -le "$end" ]; do
		for i in $(up_ids); do
			[ "$(info "$i" role)" = leader ] || continue
			for j in $(up_ids); do
				[ "$j" != "$i" ] || continue
				l=$(info "$j" leader_id)
				if [ "$l" = "$i" ]; then
					echo "$i"
					return
				fi
			done
		done
		sleep 0.1
	done
	"$SPECTRA" cluster status --dir "$dir" >"$work/out" 2>&1 || true
	fail "no leader agreed within ${secs}s"
}

# wait_caught_up [SECONDS]: every running node has applied the same index,
# and it is the leader's commit index.
wait_caught_up() {
	local secs=${1:-20} end i a first l c
	end=$((SECONDS + secs))
	while [ "$SECONDS" -le "$end" ]; do
		first=
		for i in $(up_ids); do
			a=$(info "$i" applied_index)
			if [ -z "$a" ]; then first=x; break; fi
			if [ -z "$first" ]; then first=$a; elif [ "$a" != "$first" ]; then first=x; break; fi
			if [ "$(info "$i" role)" = leader ]; then l=$i; c=$(info "$i" commit_index); fi
		done
		if [ -n "$first" ] && [ "$first" != x ] && [ -n "${l:-}" ] && [ "$c" = "$first" ]; then
			return
		fi
		l=
		sleep 0.2
	done
	"$SPECTRA" cluster status --dir "$dir" >"$work/out" 2>&1 || true
	fail "nodes did not catch up (equal applied_index) within ${secs}s"
}

follower_of() { # follower_of LEADER [EXCLUDED...]: a running node that is none of these
	local i x skip
	for i in $(up_ids); do
		skip=0
		for x in "$@"; do [ "$i" != "$x" ] || skip=1; done
		if [ "$skip" = 0 ]; then
			echo "$i"
			return
		fi
	done
	fail "no running node other than $*"
}

# batch ID SECS: sends the commands in $work/cmds (one a line) to node ID in
# one redis-cli session (a reply a line, --no-raw), replies in $work/replies.
batch() {
	timeout "$2" redis-cli --no-raw -p "$(port "$1")" <"$work/cmds" 2>&1 |
		tr -d '\r' >"$work/replies" || true
}

# write_kv ID KVFILE SECS: SETs every "key value" line of KVFILE through
# node ID, retrying keys that get TRYAGAIN, UNKNOWN or no reply (one value
# per key, so a retry is idempotent) until SECS seconds have passed. Each
# acknowledged pair is appended to $work/acked. Fails on any other reply
# and if a key is still not acknowledged at the end.
write_kv() {
	local id=$1 kv=$2 secs=$3 end k v r
	end=$((SECONDS + secs))
	cp "$kv" "$work/pending"
	while [ -s "$work/pending" ]; do
		[ "$SECONDS" -le "$end" ] ||
			fail "$(wc -l <"$work/pending") writes through node $id not acknowledged within ${secs}s"
		# One write first: while there is no leader each write waits the
		# request timeout, so a batch is sent only once one is accepted.
		read -r k v <"$work/pending"
		r=$(cli "$id" SET "$k" "$v")
		case "$r" in
		OK) ;;
		TRYAGAIN* | UNKNOWN* | "Could not connect"* | "Error:"*)
			sleep 0.2
			continue
			;;
		*) fail "SET $k through node $id: unexpected reply '$r'" ;;
		esac
		echo "$k $v" >>"$work/acked"
		tail -n +2 "$work/pending" >"$work/pending.next"
		mv "$work/pending.next" "$work/pending"
		[ -s "$work/pending" ] || break
		sed 's/^/SET /' "$work/pending" >"$work/cmds"
		batch "$id" 20
		# pair each "key value" with its reply (missing replies are empty)
		awk 'FILENAME == ARGV[1] { r[FNR] = $0; next } { print $1 "\t" $2 "\t" r[FNR] }' \
			"$work/replies" "$work/pending" >"$work/paired"
		awk -F'\t' '$3 == "OK" { print $1, $2 }' "$work/paired" >>"$work/acked"
		awk -F'\t' '$3 == "" || $3 ~ /TRYAGAIN|UNKNOWN/ { print $1, $2 }' "$work/paired" >"$work/pending.next"
		r=$(awk -F'\t' '$3 != "OK" && $3 != "" && $3 !~ /TRYAGAIN|UNKNOWN/' "$work/paired" | head -n 1)
		[ -z "$r" ] || fail "SET through node $id: unexpected reply: $r"
		mv "$work/pending.next" "$work/pending"
	done
}

# check_kv ID KVFILE PREFIX SECS: reads every key of KVFILE through node ID
# (each GET prefixed by PREFIX, e.g. "LEVEL stale") and fails unless each has
# its value. TRYAGAIN/UNKNOWN replies are retried until SECS have passed; a
# wrong value or a missing key fails at once.
check_kv() {
	local id=$1 kv=$2 prefix=$3 secs=$4 end r bad
	end=$((SECONDS + secs))
	while :; do
		awk -v p="$prefix" '{ print (p == "" ? "" : p " ") "GET " $1 }' "$kv" >"$work/cmds"
		batch "$id" 20
		awk 'FILENAME == ARGV[1] { r[FNR] = $0; next } r[FNR] != "\"" $2 "\"" { print $1 "\t" $2 "\t" r[FNR] }' \
			"$work/replies" "$kv" >"$work/mismatch"
		r=$(awk -F'\t' '$3 != "" && $3 !~ /TRYAGAIN|UNKNOWN/' "$work/mismatch" | head -n 1)
		[ -z "$r" ] || fail "${prefix:+$prefix }GET through node $id: key, acknowledged value, reply: $r"
		bad=$(head -n 1 "$work/mismatch")
		[ -n "$bad" ] || return 0
		[ "$SECONDS" -le "$end" ] || fail "${prefix:+$prefix }GET through node $id still failing after ${secs}s ($bad)"
		sleep 0.3
	done
}

t0=$SECONDS
base=$(free_base $N)
peer=$(free_base $N)

echo "== up: 5 nodes on $base.. (peers $peer..)"
rc=0
timeout 60 "$SPECTRA" cluster up --nodes $N --dir "$dir" --base-port "$base" --peer-base-port "$peer" \
	--name strong --wait 20 -- --snapshot-every 200 --snapshot-interval-ms 0 --admin-commands yes \
	--election-timeout-ms 500 --heartbeat-ms 50 >"$work/out" 2>"$work/err" || rc=$?
[ "$rc" -eq 0 ] || fail "cluster up exited $rc"
if cli 1 CLUSTER INFO | grep -qi "unknown command"; then
	fail "spectrad has no CLUSTER INFO: not cluster-capable"
fi
leader=$(wait_leader 10)
ok "5-node cluster up, leader node $leader"

echo "== 1. any node serves"
for i in $(seq 1 $N); do
	r=$(cli "$i" SET "any:$i" "from-$i")
	[ "$r" = OK ] || fail "SET any:$i through node $i: '$r'"
	for j in $(seq 1 $N); do
		[ "$j" != "$i" ] || continue
		r=$(cli "$j" GET "any:$i")
		[ "$r" = "from-$i" ] || fail "GET any:$i through node $j after SET through node $i: '$r'"
	done
done
ok "a SET through each node is seen by a linearizable GET through every other node"
leader=$(wait_leader 10)
f=$(follower_of "$leader")
end=$((SECONDS + 5))
for i in $(seq 1 $N); do
	until [ "$(cli "$f" LEVEL stale GET "any:$i")" = "from-$i" ]; do
		[ "$SECONDS" -le "$end" ] || fail "LEVEL stale GET any:$i on follower $f never saw the write"
		sleep 0.1
	done
done
ok "LEVEL stale GET on follower $f sees every write"

# Regression: a pipeline's reads wait for its own earlier write; only the
# first 64 reads behind one write were once released, the rest timing out.
pf=$(follower_of "$(wait_leader 10)")
exec 3<>"/dev/tcp/127.0.0.1/$(port "$pf")"
# One write, so all 100 GETs arrive while the SET is still in flight.
req='SET pipe:k v1\r\n'
for _ in $(seq 100); do req+='GET pipe:k\r\n'; done
printf '%b' "$req" >&3
IFS= read -r -t 10 line <&3 || fail "pipelined SET: no answer"
[ "${line%$'\r'}" = "+OK" ] || fail "pipelined SET answered '$line'"
for i in $(seq 100); do
	IFS= read -r -t 10 line <&3 || fail "pipelined GET $i: no answer"
	[ "${line%$'\r'}" = '$2' ] || fail "pipelined GET $i answered '$line' (not its own write)"
	IFS= read -r -t 10 line <&3 || fail "pipelined GET $i: no value"
	[ "${line%$'\r'}" = v1 ] || fail "pipelined GET $i read '$line'"
done
exec 3<&-
ok "a SET and 100 GETs pipelined through follower $pf: every GET reads the SET"

echo "== 2. acknowledged writes survive kill -9 of any two of five nodes"
: >"$work/acked"
for i in $(seq 1 500); do echo "dur:$i v$i-$RANDOM"; done >"$work/kv1"
sed 's/^/SET /' "$work/kv1" >"$work/cmds"
leader=$(wait_leader 10)
f=$(follower_of "$leader")
batch "$f" 30
[ "$(grep -cx OK "$work/replies")" -eq 500 ] ||
	{ cp "$work/replies" "$work/out"; fail "500 SETs through node $f: $(grep -cx OK "$work/replies") OK"; }
cat "$work/kv1" >>"$work/acked"
ok "500 writes through node $f acknowledged OK"
k1=$leader
k2=$(follower_of "$leader")
for i in $k1 $k2; do
	"$SPECTRA" cluster stop --id "$i" --kill --dir "$dir" >"$work/out" 2>&1 || fail "stop --kill node $i"
done
w=$(follower_of "$k1" "$k2")
for i in $(seq 501 700); do echo "dur:$i v$i-$RANDOM"; done >"$work/kv2"
t=$SECONDS
write_kv "$w" "$work/kv2" 10
ok "killed leader $k1 and node $k2; 200 more writes through node $w acknowledged in $((SECONDS - t))s"
for i in $k1 $k2; do
	"$SPECTRA" cluster start --id "$i" --dir "$dir" >"$work/out" 2>&1 || fail "start node $i"
done
leader=$(wait_leader 10)
k3=$leader
[ "$k3" != "$k1" ] && [ "$k3" != "$k2" ] || k3=$(follower_of "$k1" "$k2")
k4=$(follower_of "$k1" "$k2" "$k3")
for i in $k3 $k4; do
	"$SPECTRA" cluster stop --id "$i" --kill --dir "$dir" >"$work/out" 2>&1 || fail "stop --kill node $i"
done
for i in $k3 $k4; do
	"$SPECTRA" cluster start --id "$i" --dir "$dir" >"$work/out" 2>&1 || fail "start node $i"
done
ok "restarted $k1 and $k2, killed -9 and restarted $k3 and $k4 (leader then: $leader)"
wait_leader 10 >/dev/null
[ "$(wc -l <"$work/acked")" -eq 700 ] || fail "$(wc -l <"$work/acked") acknowledged writes, wanted 700"
for i in $(seq 1 $N); do check_kv "$i" "$work/acked" "" 10; done
ok "all 700 acknowledged keys read back through every node (linearizable)"
wait_caught_up 20
for i in $(seq 1 $N); do check_kv "$i" "$work/acked" "LEVEL stale" 0; done
ok "all 700 acknowledged keys read back through every node with LEVEL stale GET"

echo "== 3. snapshot catch-up"
leader=$(wait_leader 10)
f=$(follower_of "$leader")
"$SPECTRA" cluster stop --id "$f" --dir "$dir" >"$work/out" 2>&1 || fail "stop node $f"
taken0=$(info "$leader" snapshots_taken)
# The leader keeps a trail of 1024 entries behind each snapshot
# (compaction_trail in src/engine/strong/raft/core.c), so 1000 writes
# would be served to the follower from the log: 1500 compact past it.
for i in $(seq 1 1500); do echo "snap:$i s$i"; done >"$work/kv3"
sed 's/^/SET /' "$work/kv3" >"$work/cmds"
batch "$leader" 40
[ "$(grep -cx OK "$work/replies")" -eq 1500 ] ||
	{ cp "$work/replies" "$work/out"; fail "1500 SETs through leader $leader: $(grep -cx OK "$work/replies") OK"; }
taken1=$(info "$leader" snapshots_taken)
[ "$taken1" -ge $((taken0 + 6)) ] || fail "leader $leader took $((taken1 - taken0)) snapshots over 1500 writes (--snapshot-every 200)"
ok "node $f stopped; 1500 writes; leader $leader took $((taken1 - taken0)) snapshots"
"$SPECTRA" cluster start --id "$f" --dir "$dir" >"$work/out" 2>&1 || fail "start node $f"
end=$((SECONDS + 20))
while :; do
	la=$(info "$leader" applied_index)
	fa=$(info "$f" applied_index)
	[ -n "$la" ] && [ "$la" = "$fa" ] && break
	[ "$SECONDS" -le "$end" ] || fail "node $f applied_index $fa did not reach leader's $la within 20s"
	sleep 0.2
done
# It must go on following: one more write reaches it from the log.
[ "$(cli "$leader" SET snap:after one-more)" = OK ] || fail "SET snap:after through leader $leader"
end=$((SECONDS + 5))
while :; do
	la=$(info "$leader" applied_index)
	fa2=$(info "$f" applied_index)
	[ -n "$la" ] && [ "$la" = "$fa2" ] && break
	[ "$SECONDS" -le "$end" ] ||
		fail "after its catch-up node $f stopped following: applied_index $fa2, leader's $la"
	sleep 0.1
done
! grep -F "stops taking part" "$dir/node-$f/spectrad.log" >"$work/out" ||
	fail "node $f stopped taking part in Raft after its catch-up"
inst=$(info "$f" snapshots_installed)
[ "${inst:-0}" -ge 1 ] || fail "node $f caught up (applied $fa) but snapshots_installed is '$inst'"
head -n 1 "$work/kv3" >"$work/kv3s"
sed -n '750p;1500p' "$work/kv3" >>"$work/kv3s"
check_kv "$f" "$work/kv3s" "LEVEL stale" 0
ok "node $f caught up to applied_index $fa by installing $inst snapshot(s); stale reads see the data"

echo "== 4. revisions and conditional writes"
leader=$(wait_leader 10)
f=$(follower_of "$leader")
[ "$(cli "$f" SET rev:k one)" = OK ] || fail "SET rev:k"
mapfile -t gr < <(cli "$f" GETREV rev:k)
{ [ "${gr[0]:-}" = one ] && [[ "${gr[1]:-}" =~ ^[0-9]+$ ]]; } || fail "GETREV rev:k: '${gr[*]}'"
rev=${gr[1]}
[ -z "$(cli "$f" SET rev:k bad IFREV $((rev + 1000)))" ] || fail "SET IFREV with a wrong revision was not nil"
[ "$(cli "$leader" GET rev:k)" = one ] || fail "SET IFREV with a wrong revision changed the value"
[ "$(cli "$f" SET rev:k two IFREV "$rev")" = OK ] || fail "SET IFREV with the right revision was not OK"
mapfile -t gr < <(cli "$leader" GETREV rev:k)
{ [ "${gr[0]:-}" = two ] && [ "${gr[1]:-0}" -gt "$rev" ]; } || fail "GETREV after SET IFREV: '${gr[*]}' (was rev $rev)"
[ -z "$(cli "$f" SET rev:k bad IFREV "$rev")" ] || fail "SET IFREV with a stale revision was not nil"
[ "$(cli "$f" CAS rev:k two three)" = 1 ] || fail "CAS with the right value did not return 1"
[ "$(cli "$f" CAS rev:k two four)" = 0 ] || fail "CAS with a wrong value did not return 0"
[ "$(cli "$leader" GET rev:k)" = three ] || fail "GET after CAS: '$(cli "$leader" GET rev:k)'"
ok "GETREV, SET IFREV (right, wrong, stale revision), CAS (success, failure)"
printf 'MULTI\nSET model:a m1\nSET schema:a s1\nEXEC\n' | timeout 10 redis-cli --no-raw -p "$(port "$f")" \
	2>&1 | tr -d '\r' >"$work/out" || true
[ "$(grep -c QUEUED "$work/out")" -eq 2 ] || fail "MULTI/EXEC did not queue both SETs"
mapfile -t ga < <(cli "$f" GETREV model:a)
mapfile -t gb < <(cli "$f" GETREV schema:a)
{ [ "${ga[0]:-}" = m1 ] && [ "${gb[0]:-}" = s1 ]; } || fail "after EXEC: model:a '${ga[*]}', schema:a '${gb[*]}'"
[ "${ga[1]:-x}" = "${gb[1]:-y}" ] || fail "MULTI/EXEC: revisions differ (${ga[1]:-} vs ${gb[1]:-}): not one entry"
[ "${ga[1]}" -gt "${gr[1]}" ] || fail "MULTI/EXEC revision ${ga[1]} is not after ${gr[1]}"
ok "MULTI/EXEC of two SETs: both at revision ${ga[1]} (one entry)"

echo "== 5. keyspaces"
r=$(cli 1 KEYSPACE CREATE model MODE strong)
[ "$r" = OK ] || fail "KEYSPACE CREATE model MODE strong: '$r'"
end=$((SECONDS + 3))
for i in $(seq 1 $N); do
	until cli "$i" KEYSPACE LIST | grep -qx model; do
		[ "$SECONDS" -le "$end" ] || fail "KEYSPACE LIST on node $i: '$(cli "$i" KEYSPACE LIST | tr '\n' ' ')'"
		sleep 0.1
	done
done
ok "KEYSPACE CREATE model MODE strong; KEYSPACE LIST on every node shows it"
r=$(cli 3 KEYSPACE CREATE model MODE strong)
[[ "$r" == ERR*model* ]] || fail "creating keyspace model twice: '$r'"
r=$(cli 2 KEYSPACE CREATE f MODE bogus)
[[ "$r" == ERR*mode* ]] || fail "KEYSPACE CREATE f MODE bogus: '$r'"
! cli 2 KEYSPACE LIST | grep -qx f || fail "a refused KEYSPACE CREATE f was created"
[ "$(cli 4 KEYSPACE CREATE feat MODE strong READ lease)" = OK ] || fail "KEYSPACE CREATE feat MODE strong READ lease"
cli 4 KEYSPACE DESCRIBE feat | grep -qx lease || fail "KEYSPACE DESCRIBE feat: '$(cli 4 KEYSPACE DESCRIBE feat | tr '\n' ' ')'"
r=$(cli 1 LEVEL quorum GET model:x)
[[ "$r" == ERR*eventual* ]] || fail "LEVEL quorum GET on a strong key: '$r'"
r=$(cli 1 LEVEL causal GET model:x)
[[ "$r" == ERR*causal* ]] || fail "LEVEL causal GET on a strong key: '$r'"
r=$(cli 1 CONSISTENCY bogus)
[[ "$r" == ERR* ]] || fail "CONSISTENCY bogus: '$r'"
ok "create twice, MODE bogus, an eventual or causal level on a strong key, and CONSISTENCY bogus are errors ('$r')"

echo "== 6. leadership transfer"
leader=$(wait_leader 10)
tgt=$(follower_of "$leader")
via=$(follower_of "$leader" "$tgt")
r=$(cli "$via" CLUSTER TRANSFER "$tgt")
[ "$r" = OK ] || fail "CLUSTER TRANSFER $tgt through node $via: '$r'"
end=$((SECONDS + 3))
until [ "$(info "$tgt" role)" = leader ]; do
	[ "$SECONDS" -lt "$end" ] || fail "node $tgt is not leader 3s after CLUSTER TRANSFER (role $(info "$tgt" role))"
	sleep 0.05
done
[ "$(cli "$tgt" SET after:transfer 1)" = OK ] || fail "SET after transfer"
ok "CLUSTER TRANSFER $tgt (sent to node $via): node $tgt leads"

echo "== 7. no quorum"
leader=$(wait_leader 10)
s1=$(follower_of "$leader")
s2=$(follower_of "$leader" "$s1")
down=
for i in $(seq 1 $N); do [ "$i" = "$s1" ] || [ "$i" = "$s2" ] || down="$down $i"; done
for i in $down; do
	"$SPECTRA" cluster stop --id "$i" --dir "$dir" >"$work/out" 2>&1 || fail "stop node $i"
done
t=$SECONDS
r=$(cli "$s1" SET noquorum x)
el=$((SECONDS - t))
[[ "$r" == TRYAGAIN* || "$r" == UNKNOWN* ]] || fail "SET through node $s1 with nodes$down down: '$r'"
[ "$el" -le $((REQ_TIMEOUT + 3)) ] || fail "SET without a quorum took ${el}s"
r2=$(cli "$s2" SET noquorum y)
[[ "$r2" == TRYAGAIN* || "$r2" == UNKNOWN* ]] || fail "second SET through node $s2 without quorum: '$r2'"
ok "nodes$down stopped (leader $leader among them): SET fails in ${el}s: ${r%% *}, then ${r2%% *}"
# Regression: requests that waited for a leader were once sent on newest
# first, so a pipeline of INCRs got its answers in reverse. Pipeline 40
# INCRs while there is no quorum, bring the quorum back within the
# request timeout, and check the answers that came are in order.
exec 3<>"/dev/tcp/127.0.0.1/$(port "$s1")"
for _ in $(seq 40); do printf 'INCR pipe:ctr\r\n'; done >&3
for i in $down; do
	"$SPECTRA" cluster start --id "$i" --dir "$dir" >"$work/out" 2>&1 || fail "start node $i"
done
prev=0
ints=0
for _ in $(seq 40); do
	IFS= read -r -t 15 line <&3 || fail "pipelined INCR: no answer"
	line=${line%$'\r'}
	case $line in
	:*)
		[ "${line#:}" -gt "$prev" ] || fail "pipelined INCR answers out of order: ${line#:} after $prev"
		prev=${line#:}
		ints=$((ints + 1))
		;;
	-TRYAGAIN* | -UNKNOWN*) ;;
	*) fail "pipelined INCR: unexpected answer '$line'" ;;
	esac
done
exec 3<&-
ok "40 INCRs pipelined without a quorum: $ints answered in order once it returned"
echo "again:after quorum" >"$work/kv7"
t=$SECONDS
write_kv "$s1" "$work/kv7" 10
wait_leader 10 >/dev/null
[ "$(cli "$s2" GET again:after)" = quorum ] || fail "GET after quorum returned"
ok "nodes restarted: writes served again after $((SECONDS - t))s"
r=$(cli "$s1" DEBUG NET HEAL)
[ "$r" = OK ] || fail "DEBUG NET HEAL on an admin-commands node: '$r'"

echo "== 8. DEBUG NET needs --admin-commands"
sp=$(free_base 1)
spp=$(free_base 1)
"$SPECTRA" node start --dir "$solo" --port "$sp" -- --peer-port "$spp" >"$work/out" 2>&1 ||
	fail "standalone node start"
r=$(timeout 10 redis-cli -p "$sp" DEBUG NET HEAL 2>&1 | tr -d '\r' || true)
[[ "$r" == ERR*admin-commands* ]] || fail "DEBUG NET HEAL without admin commands: '$r'"
r=$(timeout 10 redis-cli -p "$sp" DEBUG NET PARTITION 1 2>&1 | tr -d '\r' || true)
[[ "$r" == ERR*admin-commands* ]] || fail "DEBUG NET PARTITION without admin commands: '$r'"
"$SPECTRA" node stop --dir "$solo" >"$work/out" 2>&1 || fail "standalone node stop"
ok "DEBUG NET HEAL/PARTITION refused, mentioning admin-commands"

! grep -F "stops taking part" "$dir"/node-*/spectrad.log >"$work/out" ||
	fail "a node stopped taking part in Raft"
"$SPECTRA" cluster status --dir "$dir" >"$work/out" 2>&1 || fail "cluster status at the end"
grep -qF "members up 5/5" "$work/out" || fail "not every member up at the end"
echo "PASS test_strong ($((SECONDS - t0))s)"
