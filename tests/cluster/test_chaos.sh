#!/usr/bin/env bash
# test_chaos: `spectra chaos` end to end, on free ports.
#
# Usage errors exit 64. Then four runs against real spectrad clusters:
#  1. five nodes, ten clients, 60 s of kills, pauses and partitions: must
#     exit 0 (the history is linearizable and at least 3000 ops succeeded);
#  2. a short run with partitions only: must exit 0;
#  3. a run with too few successful ops for --min-ops: must exit 2;
#  4. the checker's self-test: a short run whose history gets one read
#     corrupted to a value nobody wrote must exit 1, so the pipeline is
#     shown able to fail.
# A run that fails keeps its directory (history, nemesis.log, node logs)
# and prints where it is; any node a crashed run left behind is killed.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both).
# CHAOS_DURATION shortens or lengthens the long run (default 60).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD
duration=${CHAOS_DURATION:-60}

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-chaos.XXXXXX")

# leftover_nodes kills any spectrad still named by a pidfile of a chaos
# directory that an output file in $work mentions.
leftover_nodes() {
	local d p
	for d in $(sed -n 's/^directory: //p' "$work"/*.out 2>/dev/null); do
		for p in "$d"/node-*/spectrad.pid; do
			[ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true
		done
	done
}

cleanup() {
	leftover_nodes
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# chaos NAME WANT ARGS...: runs spectra chaos ARGS with its output in
# $work/NAME.out, shows the summary, and fails unless it exits WANT.
chaos() {
	local name=$1 want=$2 rc=0
	shift 2
	echo "== spectra chaos $*"
	"$SPECTRA" chaos "$@" >"$work/$name.out" 2>&1 || rc=$?
	if [ "$rc" -ne "$want" ]; then
		tail -n 80 "$work/$name.out" >&2
		fail "'spectra chaos $*' exited $rc, wanted $want"
	fi
	sed -n '/---- spectra chaos: summary/,$p' "$work/$name.out"
}

# usage NAME ARGS...: spectra chaos ARGS must be refused with 64.
usage() {
	local rc=0
	"$SPECTRA" chaos "$@" >"$work/usage.out" 2>&1 || rc=$?
	[ "$rc" -eq 64 ] || { cat "$work/usage.out" >&2; fail "'spectra chaos $*' exited $rc, wanted 64"; }
}

"$SPECTRA" chaos --help >"$work/help.out" || fail "--help did not exit 0"
grep -qF -- "--nemesis" "$work/help.out" || fail "--help does not list --nemesis"
usage --nodes 0
usage --duration x
usage --nemesis kill,clock
usage --peer-base-port 30000
usage --bogus
usage -- --port 7000
usage -- --cluster-file=/x

chaos long 0 --nodes 5 --duration "$duration" --clients 10 --min-ops 3000
grep -q '^verdict:   linearizable' "$work/long.out" || fail "no linearizable verdict"
# Every kind of fault was injected at least once in a minute.
if [ "$duration" -ge 60 ]; then
	grep -Eq '^nemesis: +kill [1-9][0-9]*, pause [1-9][0-9]*, partition [1-9]' "$work/long.out" ||
		fail "a kind of fault was never injected"
fi

chaos partition 0 --nodes 5 --duration 8 --clients 10 --nemesis partition --interval-ms 1500 \
	--min-ops 200
grep -Eq '^nemesis: +kill 0, pause 0, partition [1-9]' "$work/partition.out" ||
	fail "the partition-only run injected something else, or nothing"

# Too few successful ops is not a pass.
chaos fewops 2 --nodes 3 --duration 2 --clients 2 --nemesis none --min-ops 1000000000
grep -q 'but only [0-9]* ops succeeded' "$work/fewops.out" || fail "too few ops: no such verdict"
kept=$(sed -n 's/^kept: *\([^ ]*\).*/\1/p' "$work/fewops.out")
[ -n "$kept" ] && rm -rf "$kept"

chaos selftest 1 --nodes 3 --duration 4 --clients 4 --nemesis none --self-test-bad
grep -q '^verdict:   VIOLATION' "$work/selftest.out" || fail "self-test: no violation reported"
grep -q 'never-written-by-chaos' "$work/selftest.out" || fail "self-test: the bad read is not shown"
# The failed run kept its directory; remove it, it is ours.
kept=$(sed -n 's/^kept: *\([^ ]*\).*/\1/p' "$work/selftest.out")
[ -n "$kept" ] && [ -f "$kept/history.jsonl" ] || fail "self-test: no kept directory with a history"
rm -rf "$kept"

echo "test_chaos: ok"
