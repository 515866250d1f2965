#!/usr/bin/env bash
# test_chaos_causal: `spectra chaos --workload causal`, end to end, on free
# ports (spectra chaos picks them).
#
# Usage errors of the causal workload exit 64. Then:
#  1. a 30 s run on five nodes with a causal keyspace, ten sessions that
#     hop between nodes carrying their SESSION TOKEN, and a nemesis that
#     kills and partitions: it must exit 0 (converged within 30 s of the
#     last heal, every key the same at LEVEL local on every node, the
#     history accepted by `spectra check --model causal`, and at least
#     MIN_OK successful ops);
#  2. the self-test: a short run whose history has one read after its
#     session's own write turned into nil must exit 1.
# When `spectra check` has no --model causal yet, the runs cannot get a
# verdict (they exit 2, "checker is unavailable"): the test then asserts
# only what needs no checker (convergence, agreement) and says it skipped
# the rest. A failing run keeps its directory and prints where it is.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both).
# CHAOS_CZ_SCALE multiplies the duration (default 1).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD
scale=${CHAOS_CZ_SCALE:-1}
# Measured on 2 cores: 61k-143k ok ops in 30 s at -O2; under make check's
# sanitizers 18k-44k, the low end with 8 kills in the run. The floor shows
# the run did real work, not a speed: well under the sanitizer low, since
# a CI machine may be slower than the one measured (a CI run failed this
# test once with its reason cut off; ten runs here then all passed).
MIN_OK=${MIN_OK:-5000}

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-chaos-cz.XXXXXX")

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

usage() {
	local rc=0
	"$SPECTRA" chaos "$@" >"$work/usage.out" 2>&1 || rc=$?
	[ "$rc" -eq 64 ] || { cat "$work/usage.out" >&2; fail "'spectra chaos $*' exited $rc, wanted 64"; }
}

"$SPECTRA" chaos --help >"$work/help.out" || fail "--help did not exit 0"
grep -q 'causal' "$work/help.out" || fail "--help does not mention the causal workload"
usage --workload causal --level quorum
usage --workload causal --reads lease
usage --workload causal --check-timeout 5

# Does the checker know the causal model? A one-op history tells.
printf '%s\n' '{"process":1,"session":"s1","node":1,"op":"write","key":"cz:1","value":"s1-1","invoke":1,"complete":2,"result":"ok"}' \
	>"$work/probe.jsonl"
have_checker=1
"$SPECTRA" check --model causal "$work/probe.jsonl" >/dev/null 2>&1 || have_checker=0
if [ "$have_checker" = 0 ]; then
	echo "SKIP: 'spectra check --model causal' is not available: checker-dependent assertions skipped"
fi
want_ok=0
[ "$have_checker" = 1 ] || want_ok=2

chaos run "$want_ok" --workload causal --nodes 5 --clients 10 --keys 5 \
	--duration $((30 * scale)) --nemesis kill,partition --interval-ms 2000 \
	--converge-timeout 30 --min-ops "$MIN_OK"
line=$(grep -m1 '^converged in [0-9]* ms after the last heal' "$work/run.out") ||
	fail "run: no convergence reported"
echo "run: $line"
grep -Eq '^final: .* 0 reads failed, 0 keys with answers that differ' "$work/run.out" ||
	fail "run: the nodes do not agree at LEVEL local"
grep -Eq '^nemesis: +kill [1-9][0-9]*, pause [0-9]+, partition [1-9]' "$work/run.out" ||
	fail "run: the nemesis never killed or never partitioned"
grep -Eq '^workload: .* \([1-9][0-9]* hops\)' "$work/run.out" || fail "run: no session hopped"
# Regression: the ports chaos picks lie below the ephemeral range, so no
# outgoing connection can take a killed node's port before its restart.
low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
ports=$(sed -n 's/.*(ports \([0-9]*\)\.\., peers \([0-9]*\)\.\.).*/\1 \2/p' "$work/run.out" | head -n 1)
[ -n "$ports" ] || fail "run: no 'ports N.., peers M..' line"
for p in $ports; do
	[ $((p + 4)) -lt "$low" ] || fail "run: port range $p.. reaches the ephemeral range ($low..)"
done
grep -q 'FAILED' "$work/run.out" && fail "run: a restart failed: $(grep -m1 FAILED "$work/run.out")"
if [ "$have_checker" = 1 ]; then
	grep -q '^verdict:   consistent' "$work/run.out" || fail "run: no consistent verdict"
fi

if [ "$have_checker" = 1 ]; then
	chaos selftest 1 --workload causal --nodes 3 --duration 3 --clients 4 --keys 2 \
		--nemesis none --min-ops 10 --self-test-bad
	grep -q '^self-test: session .* now returns nil' "$work/selftest.out" ||
		fail "self-test: the corruption is not described"
	grep -q '^verdict:   VIOLATION: the causal checker rejects' "$work/selftest.out" ||
		fail "self-test: the checker's rejection is not the verdict"
	kept=$(sed -n 's/^kept: *\([^ ]*\).*/\1/p' "$work/selftest.out")
	[ -n "$kept" ] && [ -f "$kept/history.jsonl" ] && rm -rf "$kept"
else
	echo "SKIP: self-test (needs 'spectra check --model causal')"
fi

echo "test_chaos_causal: ok"
