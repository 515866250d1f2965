#!/usr/bin/env bash
# test_cluster_cli: `spectra cluster up|down|status|add|remove|start|stop`
# against real spectrad processes.
#
# Help and usage errors for every subcommand (none may create anything);
# then a 3-node cluster's life on free ports: up (kept spectrad flags
# included), status in text and JSON, one node killed and started again,
# a second up that reuses the cluster, a refused up on taken ports, SET
# through one node and GET through another, a 4th node added and removed,
# down, and down again. Every node is stopped on exit, pass or fail.
#
# The refusal paths for a server without CLUSTER (the CLI's behaviour
# against an old spectrad) are kept but no longer taken: spectrad answers
# CLUSTER INFO, and a server that does not is a failure.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both), and
# redis-cli.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

# Every spectra command exits with this on a usage error (CLI_EXIT_USAGE
# in tools/cli.h).
USAGE=2

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-cluster-cli.XXXXXX")
dir=$work/cluster

# stop_all stops whatever any node directory under $work names, including
# nodes no longer in a cluster.conf.
stop_all() {
	local d p
	for d in "$work"/*/; do
		if [ -f "$d/cluster.conf" ]; then
			"$SPECTRA" cluster down --dir "$d" --timeout 5 >/dev/null 2>&1 || true
		fi
	done
	for p in "$work"/*/node-*/spectrad.pid; do
		if [ -f "$p" ]; then kill -9 "$(cat "$p")" 2>/dev/null || true; fi
	done
}

cleanup() {
	stop_all
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	for f in "$work"/out "$work"/err; do
		[ -f "$f" ] && { echo "--- $(basename "$f"):" >&2; cat "$f" >&2; }
	done
	exit 1
}

# run WANT CMD...: runs CMD with stdout in $work/out and stderr in
# $work/err, and fails unless it exits WANT.
run() {
	local want=$1 rc=0
	shift
	"$@" >"$work/out" 2>"$work/err" || rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, wanted $want"
}

has() {
	grep -qF -- "$2" "$work/$1" || fail "expected '$2' in $1"
}

hasnt() {
	! grep -qF -- "$2" "$work/$1" || fail "did not expect '$2' in $1"
}

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"

pid_of() {
	cat "$dir/node-$1/spectrad.pid" 2>/dev/null || true
}

echo "== help and usage errors"
for cmd in "" up down status add remove start stop; do
	# shellcheck disable=SC2086 # $cmd is a word or nothing on purpose
	run 0 "$SPECTRA" cluster $cmd --help
	has out "usage: spectra cluster"
done
run 0 "$SPECTRA" --help
has out "cluster"
run $USAGE "$SPECTRA" cluster
has err "usage: spectra cluster"
run $USAGE "$SPECTRA" cluster bogus
has err "spectra cluster: unknown command 'bogus'"
never=$work/never
run $USAGE "$SPECTRA" cluster up --dir "$never"
has err "--nodes is required for a new cluster"
has err "Run 'spectra cluster up --help'"
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 0
has err "--nodes: '0' is not a number in 1..64"
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 65
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes three
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 --base-port 65534
has err "go past port 65535"
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 --base-port 7000 --peer-base-port 7002
has err "overlap"
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 --base-port 0
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 --http-base-port 70000
has err "--http-base-port: '70000' is not a port"
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 --base-port 7000 --http-base-port 7001
has err "HTTP ports 7001..7003 overlap the client or peer ports"
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 --name "a b"
has err "--name: 'a b'"
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 -- --port 1
has err "--port is set for each node from cluster.conf"
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 -- --node_id=1
has err "--node-id is set for each node"
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 --wait soon
run $USAGE "$SPECTRA" cluster up --dir "$never" --nodes 3 stray
has err "unexpected argument 'stray'"
run $USAGE "$SPECTRA" cluster down --dir "$never" --timeout -1
run $USAGE "$SPECTRA" cluster status --dir "$never" --json=yes
run $USAGE "$SPECTRA" cluster add --dir "$never" --id 0
has err "--id: '0' is not a node id"
run $USAGE "$SPECTRA" cluster remove --dir "$never"
has err "--id is required"
run $USAGE "$SPECTRA" cluster start --dir "$never"
has err "--id is required"
run $USAGE "$SPECTRA" cluster stop --dir "$never" --id x
run $USAGE "$SPECTRA" cluster stop --dir "$never" --id 1 --kill=yes
run $USAGE "$SPECTRA" cluster stop --bogus
has err "spectra cluster stop: unknown flag '--bogus'"
[ ! -e "$never" ] || fail "a refused command created its directory"

echo "== no cluster in the directory"
run 1 "$SPECTRA" cluster status --dir "$never"
has err "no cluster in $never"
run 1 "$SPECTRA" cluster down --dir "$never"
has err "no cluster in $never"
run 1 "$SPECTRA" cluster start --id 1 --dir "$never"
[ ! -e "$never" ] || fail "a command on no cluster created its directory"

echo "== up --nodes 3"
base=$(free_base 5)
peer=$(free_base 5)
# Run under $(...) as scripts do: up must return although the nodes live
# on (no node may hold the substitution's pipe).
rc=0
out=$(timeout 120 "$SPECTRA" cluster up --nodes 3 --dir "$dir" --base-port "$base" \
	--peer-base-port "$peer" --name test-cli --wait 20 -- --fsync batch 2>"$work/up.err") || rc=$?
echo "$out"
cat "$work/up.err"
[ "$rc" -ne 124 ] || fail "up hung"
# The guard: only a server whose CLUSTER INFO is an unknown command may
# skip the parts that need a leader.
capable=1
if redis-cli -p "$base" CLUSTER INFO 2>&1 | grep -qi "unknown command"; then
	fail "spectrad does not answer CLUSTER INFO"
fi
if [ "$capable" = 1 ]; then
	[ "$rc" -eq 0 ] || fail "up exited $rc"
	[[ "$out" == *"leader: node "* ]] || fail "up did not print the leader"
else
	[ "$rc" -eq 1 ] || fail "up against a server without CLUSTER exited $rc, wanted 1"
	grep -qF "not cluster-capable" "$work/up.err" || fail "up did not say why there is no leader"
fi
[[ "$out" == *"created $dir/cluster.conf (3 nodes)"* ]] || fail "up did not say it created the cluster"
for i in 1 2 3; do
	[[ "$out" == *"node $i "*"127.0.0.1:$((base + i - 1))"*"pid "*"$dir/node-$i"* ]] ||
		fail "up printed no line for node $i"
	p=$(pid_of "$i")
	if [ -z "$p" ] || ! alive "$p"; then fail "node $i is not running after up"; fi
	[ "$(redis-cli -p $((base + i - 1)) PING)" = PONG ] || fail "node $i does not answer"
	[ "$(redis-cli -p $((base + i - 1)) CONFIG GET fsync | tail -n 1)" = batch ] ||
		fail "node $i did not get the spectrad flags after --"
done
grep -qx "cluster test-cli" "$dir/cluster.conf" || fail "cluster.conf has no cluster line"
# HTTP ports default to the client ports + 2000.
grep -qx "node 2 127.0.0.1 $((base + 1)) $((peer + 1)) http=$((base + 2001))" "$dir/cluster.conf" ||
	fail "cluster.conf has no line for node 2: $(grep '^node 2 ' "$dir/cluster.conf")"
grep -qx "bootstrap 1 2 3" "$dir/cluster.conf" || fail "cluster.conf's bootstrap line is wrong"
[ "$(cat "$dir/spectrad.args")" = "$(printf -- '--fsync\nbatch')" ] || fail "spectrad.args is wrong"
# Each node directory works with `spectra node` too.
run 0 "$SPECTRA" node status --dir "$dir/node-1"
has out "address:  127.0.0.1:$base"

echo "== status"
if [ "$capable" = 1 ]; then
	run 0 "$SPECTRA" cluster status --dir "$dir"
	has out "leader: node "
	has out "members up 3/3"
	run 0 "$SPECTRA" cluster status --dir "$dir" --json
	has out "\"healthy\":true"
else
	run 1 "$SPECTRA" cluster status --dir "$dir"
	has out "no CLUSTER INFO"
	has out "leader: none agreed; members up 3/3"
	run 1 "$SPECTRA" cluster status --dir "$dir" --json
	has out "\"healthy\":false"
fi
has out "\"cluster\":\"test-cli\""
has out "\"up\":3,\"total\":3"
if command -v python3 >/dev/null; then
	python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["nodes"]) == 3 and all(n["running"] for n in d["nodes"]), d' \
		<"$work/out" || fail "status --json is not the JSON expected"
fi

echo "== stop --kill and start one node"
p2=$(pid_of 2)
run 0 "$SPECTRA" cluster stop --id 2 --kill --dir "$dir"
has out "node 2: killed (pid $p2)"
! alive "$p2" || fail "node 2 survived stop --kill"
[ ! -e "$dir/node-2/spectrad.pid" ] || fail "stop --kill left node 2's pidfile"
# Whether a leader is agreed right now depends on which node was it.
"$SPECTRA" cluster status --dir "$dir" >"$work/out" 2>"$work/err" || true
has out "members up 2/3"
if [ "$capable" = 1 ]; then
	# Two of three still make a majority: a leader again (node 2 may
	# have been it), within an election or two.
	ok=0
	for _ in $(seq 1 100); do
		if "$SPECTRA" cluster status --dir "$dir" >"$work/out" 2>&1; then ok=1; break; fi
		sleep 0.2
	done
	[ "$ok" = 1 ] || fail "no leader with 2 of 3 nodes up"
fi
run 0 "$SPECTRA" cluster stop --id 2 --dir "$dir"
has out "node 2: not running"
run 0 "$SPECTRA" cluster start --id 2 --dir "$dir"
has out "node 2 started (pid"
[ "$(redis-cli -p $((base + 1)) CONFIG GET fsync | tail -n 1)" = batch ] ||
	fail "a restarted node did not get the kept spectrad flags"
p2=$(pid_of 2)
run 0 "$SPECTRA" cluster start --id 2 --dir "$dir"
has out "node 2 already running (pid $p2)"
run 1 "$SPECTRA" cluster start --id 9 --dir "$dir"
has err "node 9 is not in $dir/cluster.conf"
run 1 "$SPECTRA" cluster stop --id 9 --dir "$dir"

echo "== up again reuses the cluster and leaves running nodes alone"
p1=$(pid_of 1)
run $((1 - capable)) "$SPECTRA" cluster up --dir "$dir" --nodes 5 --wait 20
has out "using the existing $dir/cluster.conf (3 nodes)"
has out "pid $p1"
hasnt out "node 4"

echo "== up on ports in use is refused"
run 1 "$SPECTRA" cluster up --nodes 1 --dir "$work/clash" --base-port "$base" \
	--peer-base-port "$(free_base 1)"
has err "something already answers on 127.0.0.1:$base"
[ ! -e "$work/clash/node-1/spectrad.pid" ] || fail "a node started on a taken port"

if [ "$capable" = 1 ]; then
	echo "== SET through one node, GET through another"
	[ "$(redis-cli -p "$base" SET model:prod resnet-50)" = OK ] || fail "SET via node 1 failed"
	[ "$(redis-cli -p $((base + 2)) GET model:prod)" = resnet-50 ] ||
		fail "GET via node 3 did not see the write made via node 1"

	echo "== add a 4th node, then remove it"
	run 0 "$SPECTRA" cluster add --dir "$dir"
	has out "node 4 added (127.0.0.1:$((base + 3)), peer port $((peer + 3))"
	# The new node continues the HTTP ports too.
	grep -qx "node 4 127.0.0.1 $((base + 3)) $((peer + 3)) http=$((base + 2003))" \
		"$dir/cluster.conf" || fail "cluster.conf has no line for node 4"
	grep -qx "bootstrap 1 2 3" "$dir/cluster.conf" || fail "node 4 was made a bootstrap node"
	p4=$(pid_of 4)
	if [ -z "$p4" ] || ! alive "$p4"; then fail "node 4 is not running"; fi
	run 1 "$SPECTRA" cluster add --dir "$dir" --id 4
	has err "node 4 is already in"
	run 0 "$SPECTRA" cluster remove --id 4 --dir "$dir"
	has out "node 4 removed from $dir/cluster.conf; its data stays in $dir/node-4"
	! grep -q "^node 4 " "$dir/cluster.conf" || fail "node 4's line is still in cluster.conf"
	! alive "$p4" || fail "node 4 still runs after remove"
	[ -d "$dir/node-4" ] || fail "remove deleted node 4's data"
	run 0 "$SPECTRA" cluster status --dir "$dir"
	has out "members up 3/3"
else
	echo "== add and remove are refused by a server without CLUSTER"
	cp "$dir/cluster.conf" "$work/conf.before"
	run 1 "$SPECTRA" cluster add --dir "$dir"
	has err "do not know CLUSTER ADD"
	has err "node 4 was not added"
	cmp -s "$dir/cluster.conf" "$work/conf.before" || fail "a refused add changed cluster.conf"
	[ ! -e "$dir/node-4/spectrad.pid" ] || fail "a refused add left node 4 running"
	run 1 "$SPECTRA" cluster remove --id 3 --dir "$dir"
	has err "do not know CLUSTER REMOVE"
	has err "nothing was changed"
	cmp -s "$dir/cluster.conf" "$work/conf.before" || fail "a refused remove changed cluster.conf"
	alive "$(pid_of 3)" || fail "a refused remove stopped node 3"
fi
run 1 "$SPECTRA" cluster remove --id 9 --dir "$dir"
has err "node 9 is not in"

echo "== down"
pids=$(for i in 1 2 3; do pid_of "$i"; done)
run 0 "$SPECTRA" cluster down --dir "$dir"
for i in 1 2 3; do has out "node $i: stopped (pid"; done
has out "cluster test-cli in $dir is down"
for p in $pids; do ! alive "$p" || fail "pid $p survived down"; done
for i in 1 2 3; do [ ! -e "$dir/node-$i/spectrad.pid" ] || fail "node $i's pidfile left"; done
run 0 "$SPECTRA" cluster down --dir "$dir"
for i in 1 2 3; do has out "node $i: not running"; done
run 1 "$SPECTRA" cluster status --dir "$dir"
has out "members up 0/3"
[ -f "$dir/cluster.conf" ] || fail "down removed cluster.conf"

echo "PASS test_cluster_cli"
