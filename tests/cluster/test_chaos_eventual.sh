#!/usr/bin/env bash
# test_chaos_eventual: `spectra chaos` with the eventual workloads, end to
# end, on free ports (spectra chaos picks them).
#
# Usage errors of the new flags exit 64. Then, each on five nodes with an
# eventual keyspace of RF 3, writes and reads at QUORUM, and a nemesis
# that kills, pauses and partitions (anti-entropy every 200 ms):
#  1. set: ORSET.ADD of unique elements for 45 s: no acknowledged add may
#     be lost, no element may appear that was never added;
#  2. counter: COUNTER.INCR for 30 s: each final value within the sum of
#     acknowledged increments and that plus the unknown ones;
#  3. lww: LWW.SET of unique values for 30 s: the final value was written,
#     by a write that did not fail, and is no older than any acknowledged
#     one;
# each must exit 0: the nodes converged within 10 s of the last heal,
# agree on every key read at ALL, the check passed, and enough ops
# succeeded. Each run's convergence time is printed. Then the check's
# self-test, once per workload: a short run whose agreed final state is
# corrupted (an acknowledged element dropped, 1000 added to a counter, an
# LWW value nobody wrote) must exit 1, so the check is shown able to fail.
# A run that fails keeps its directory (history, final.txt, nemesis.log,
# node logs) and prints where it is; any node a crashed run left behind
# is killed.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both).
# CHAOS_EV_SCALE multiplies the durations (default 1; 2 doubles them).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD
scale=${CHAOS_EV_SCALE:-1}

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-chaos-ev.XXXXXX")

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
	local name=$1 want=$2 rc=0 t0=$SECONDS
	shift 2
	echo "== spectra chaos $*"
	"$SPECTRA" chaos "$@" >"$work/$name.out" 2>&1 || rc=$?
	if [ "$rc" -ne "$want" ]; then
		tail -n 80 "$work/$name.out" >&2
		fail "'spectra chaos $*' exited $rc, wanted $want"
	fi
	sed -n '/---- spectra chaos: summary/,$p' "$work/$name.out"
	echo "   ($((SECONDS - t0)) s)"
}

# usage ARGS...: spectra chaos ARGS must be refused with 64.
usage() {
	local rc=0
	"$SPECTRA" chaos "$@" >"$work/usage.out" 2>&1 || rc=$?
	[ "$rc" -eq 64 ] || { cat "$work/usage.out" >&2; fail "'spectra chaos $*' exited $rc, wanted 64"; }
}

# converged NAME: prints the run's convergence time, failing without one.
converged() {
	local line
	line=$(grep -m1 '^converged in [0-9]* ms after the last heal' "$work/$1.out") ||
		fail "$1: no convergence reported"
	echo "$1: $line"
}

"$SPECTRA" chaos --help >"$work/help.out" || fail "--help did not exit 0"
for flag in --workload --level --converge-timeout; do
	grep -qF -- "$flag" "$work/help.out" || fail "--help does not list $flag"
done
usage --workload bogus
usage --workload set --level most
usage --workload counter --converge-timeout soon
usage --level quorum                  # register has no eventual level
usage --workload register --converge-timeout 5
usage --workload lww --reads lease    # eventual workloads read at quorum

# Flags every eventual run shares: five nodes, RF 3 (the tool's), a fault
# every ~2 s, anti-entropy five times a second.
common=(--nodes 5 --clients 10 --keys 5 --interval-ms 2000 --level quorum
	--converge-timeout 10)
node_flags=(-- --anti-entropy-ms 200)

chaos set 0 --workload set --duration $((45 * scale)) --min-ops 3000 "${common[@]}" \
	"${node_flags[@]}"
grep -q '^verdict:   consistent' "$work/set.out" || fail "set: no consistent verdict"
grep -Eq '^check: +[1-9][0-9]* acknowledged adds, 0 lost;.* 0 elements never added, 0 of failed' \
	"$work/set.out" || fail "set: the check line does not say 0 lost"
grep -Eq '^nemesis: +kill [1-9][0-9]*, pause [0-9]+, partition [1-9]' "$work/set.out" ||
	fail "set: the nemesis never killed or never partitioned"

chaos counter 0 --workload counter --duration $((30 * scale)) --min-ops 5000 "${common[@]}" \
	"${node_flags[@]}"
grep -Eq '^check: +[1-9][0-9]* acknowledged writes, [0-9]+ unknown; 0 of 5 keys wrong' \
	"$work/counter.out" || fail "counter: the check line does not say 0 keys wrong"

chaos lww 0 --workload lww --duration $((30 * scale)) --min-ops 5000 "${common[@]}" \
	"${node_flags[@]}"
grep -Eq '^check: +[1-9][0-9]* acknowledged writes, [0-9]+ unknown; 0 of 5 keys wrong' \
	"$work/lww.out" || fail "lww: the check line does not say 0 keys wrong"

for name in set counter lww; do
	converged "$name"
done

# The self-tests: the corrupted final state must be caught (exit 1).
declare -A shows=(
	[set]='violation: acknowledged add c[0-9]*-[0-9]* .* is missing from the final set'
	[counter]='violation: ev:0 = [0-9]*, outside \['
	[lww]='violation: ev:0 holds "never-written-by-chaos"'
)
for name in set counter lww; do
	chaos "selftest-$name" 1 --workload "$name" --nodes 3 --duration 2 --clients 4 \
		--nemesis none --min-ops 10 --self-test-bad
	grep -q "${shows[$name]}" "$work/selftest-$name.out" ||
		fail "self-test $name: the corruption is not reported"
	# The failed run kept its directory; remove it, it is ours.
	kept=$(sed -n 's/^kept: *\([^ ]*\).*/\1/p' "$work/selftest-$name.out")
	[ -n "$kept" ] && [ -f "$kept/history.jsonl" ] && [ -f "$kept/final.txt" ] ||
		fail "self-test $name: no kept directory with a history and final states"
	rm -rf "$kept"
done

echo "test_chaos_eventual: ok"
