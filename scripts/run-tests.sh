#!/usr/bin/env bash
# Run every test spectra has and print one closing line "N passed, N failed".
#
# Unit tests (tests/unit) and node tests (tests/cluster) are cmocka
# binaries; their "[  PASSED  ] n test(s)" / "[  FAILED  ] n test(s)" lines
# are summed. Shell tests (tests/cluster/*.sh) count one each. The fuzz
# targets get a short smoke run (FUZZ_RUNS inputs each), and the Raft
# simulator runs SIM_SEEDS seeds (one test). Set TESTS=pattern
# to run only matching binaries or scripts.
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
BIN=${BIN:-bin}
FUZZ_RUNS=${FUZZ_RUNS:-200000}
export SPECTRAD="$PWD/$BIN/spectrad" SPECTRA="$PWD/$BIN/spectra"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
LOGDIR="$BUILD/test-logs"
mkdir -p "$LOGDIR"

passed=0
failed=0
failures=()

matches() { [ -z "${TESTS:-}" ] || [[ "$1" == *${TESTS}* ]]; }

run_cmocka() {
	local bin=$1 name log
	name=$(basename "$bin")
	log="$LOGDIR/$name.log"
	matches "$name" || return 0
	local t0=$SECONDS
	"$bin" >"$log" 2>&1
	local rc=$?
	local p f
	p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
	f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	passed=$((passed + p))
	failed=$((failed + f))
	printf '%-32s %4d passed %4d failed  (%ds)\n' "$name" "$p" "$f" $((SECONDS - t0))
	if [ "$f" -ne 0 ]; then
		failures+=("$name")
		sed 's/^/    | /' "$log" | tail -n 60
	fi
}

run_script() {
	local script=$1 name log
	name=$(basename "$script")
	log="$LOGDIR/$name.log"
	matches "$name" || return 0
	local t0=$SECONDS
	if bash "$script" >"$log" 2>&1; then
		passed=$((passed + 1))
		printf '%-32s    1 passed    0 failed  (%ds)\n' "$name" $((SECONDS - t0))
	else
		failed=$((failed + 1))
		failures+=("$name")
		printf '%-32s    0 passed    1 failed  (%ds)\n' "$name" $((SECONDS - t0))
		sed 's/^/    | /' "$log" | tail -n 60
	fi
}

for b in "$BUILD"/tests/unit/test_*; do
	[ -x "$b" ] && [ "${b%.o}" = "$b" ] && [ "${b%.d}" = "$b" ] && run_cmocka "$b"
done
for b in "$BUILD"/tests/cluster/test_*; do
	[ -x "$b" ] && [ "${b%.o}" = "$b" ] && [ "${b%.d}" = "$b" ] && run_cmocka "$b"
done
for s in tests/cluster/test_*.sh; do
	[ -f "$s" ] && run_script "$s"
done
for f in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	matches "$name" || continue
	corpus="tests/fuzz/corpus/${name#fuzz_}"
	work=$(mktemp -d)
	t0=$SECONDS
	if "$f" -runs="$FUZZ_RUNS" -max_len=4096 "$work" "$corpus" >"$LOGDIR/$name.log" 2>&1; then
		passed=$((passed + 1))
		printf '%-32s    1 passed    0 failed  (%ds, %s inputs)\n' "$name" $((SECONDS - t0)) "$FUZZ_RUNS"
	else
		failed=$((failed + 1))
		failures+=("$name")
		printf '%-32s    0 passed    1 failed\n' "$name"
		tail -n 40 "$LOGDIR/$name.log" | sed 's/^/    | /'
	fi
	rm -rf "$work"
done

# The deterministic Raft simulator: SIM_SEEDS seeds of SIM_SECONDS
# simulated seconds each (make check runs fewer under the sanitizers; the
# full 1,000 run at -O2 in `make sim`).
sim="$BUILD/sim/raft_sim"
if [ -x "$sim" ] && matches raft_sim; then
	seeds=${SIM_SEEDS:-1000}
	t0=$SECONDS
	if "$sim" --seeds "1..$seeds" --sim-seconds "${SIM_SECONDS:-60}" -j 2 >"$LOGDIR/raft_sim.log" 2>&1; then
		passed=$((passed + 1))
		printf '%-32s    1 passed    0 failed  (%ds, %s seeds)\n' raft_sim $((SECONDS - t0)) "$seeds"
	else
		failed=$((failed + 1))
		failures+=(raft_sim)
		printf '%-32s    0 passed    1 failed\n' raft_sim
		tail -n 40 "$LOGDIR/raft_sim.log" | sed 's/^/    | /'
	fi
fi

if [ ${#failures[@]} -ne 0 ]; then
	# Again, at the very end: a CI record often keeps only the last lines.
	for f in "${failures[@]}"; do
		echo "---- last lines of $f's log:"
		tail -n 30 "$LOGDIR/$f.log" 2>/dev/null | sed 's/^/    | /'
	done
	echo "failing: ${failures[*]} (logs in $LOGDIR)"
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
